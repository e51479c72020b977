-- Scheduled backups: a schedule makes an export at each occurrence of its cadence, in its
-- time zone. Each occurrence is a row of export_schedule_runs, unique per (schedule,
-- instant), written in the same transaction that advances next_run_at and queues the export:
-- however many schedulers tick, an occurrence runs once.

CREATE TABLE export_schedules (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    format       text NOT NULL,
    compression  text NOT NULL,
    filters      jsonb NOT NULL DEFAULT '{}',
    -- The JSON form: {"weekly": {"weekday": "monday", "time": "08:00"}} and the like.
    cadence      jsonb NOT NULL,
    timezone     text NOT NULL,
    keep_last    integer NOT NULL CHECK (keep_last BETWEEN 1 AND 365),
    notify_email boolean NOT NULL,
    mode         text NOT NULL CHECK (mode IN ('full', 'incremental')),
    paused       boolean NOT NULL DEFAULT false,
    -- The next occurrence not yet run (meaningless while paused; recomputed on resume).
    next_run_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX export_schedules_user_idx ON export_schedules (user_id, created_at);
-- What the scheduler's tick scans.
CREATE INDEX export_schedules_due_idx ON export_schedules (next_run_at) WHERE NOT paused;

CREATE TABLE export_schedule_runs (
    id            uuid PRIMARY KEY,
    schedule_id   uuid NOT NULL REFERENCES export_schedules (id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The occurrence (or, for a manual run, the moment it was asked for).
    scheduled_for timestamptz NOT NULL,
    trigger       text NOT NULL CHECK (trigger IN ('schedule', 'manual', 'missed')),
    export_id     uuid,
    -- For an incremental run: jobs updated at or after this instant.
    since         timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (schedule_id, scheduled_for)
);

CREATE INDEX export_schedule_runs_history_idx
    ON export_schedule_runs (schedule_id, scheduled_for DESC, id DESC);

-- A scheduled backup is an export with its schedule. While the schedule keeps it (it is
-- among the newest keep_last) its expires_at is NULL; deleting the schedule hands its
-- backups over to the ordinary retention.
ALTER TABLE exports ADD COLUMN schedule_id uuid REFERENCES export_schedules (id) ON DELETE SET NULL;
CREATE INDEX exports_schedule_idx ON exports (schedule_id, created_at DESC, id DESC)
    WHERE schedule_id IS NOT NULL;

ALTER TABLE export_schedule_runs
    ADD CONSTRAINT export_schedule_runs_export_fk
    FOREIGN KEY (export_id) REFERENCES exports (id) ON DELETE SET NULL;
