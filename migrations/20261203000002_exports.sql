-- Asynchronous exports: one row per requested file. The queue task that produces it lives in
-- apalis.jobs (schema managed by apalis) and is inserted in the same transaction as this row.

CREATE TABLE exports (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'expired')),
    format          text NOT NULL,
    compression     text NOT NULL,
    filters         jsonb NOT NULL DEFAULT '{}',
    notify_email    boolean NOT NULL DEFAULT false,
    -- SHA-256 of the canonical request: finds identical requests and checks idempotency keys.
    request_hash    text NOT NULL,
    idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    task_id         text NOT NULL,
    file_name       text NOT NULL,
    -- The stored file, set when an attempt succeeds.
    object_key      text,
    -- The multipart upload of the attempt in progress (and its key), so a later attempt or
    -- the retention sweep can abort it.
    upload_id       text,
    upload_key      text,
    rows_done       bigint NOT NULL DEFAULT 0,
    rows_total      bigint,
    bytes_written   bigint NOT NULL DEFAULT 0,
    row_count       bigint,
    byte_size       bigint,
    sha256          text,
    error_code      text,
    error_message   text,
    attempts        integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    expires_at      timestamptz,
    -- Set by the email task before it sends, so two runs of it cannot both send.
    email_claimed_at timestamptz,
    email_sent_at   timestamptz
);

-- An Idempotency-Key is remembered per user for as long as its export exists.
CREATE UNIQUE INDEX exports_idempotency_key_idx
    ON exports (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- At most one queued or running export per identical request: the database settles races.
CREATE UNIQUE INDEX exports_active_request_idx
    ON exports (user_id, request_hash) WHERE status IN ('queued', 'running');
CREATE INDEX exports_user_created_idx ON exports (user_id, created_at DESC, id DESC);
CREATE INDEX exports_expiring_idx ON exports (expires_at) WHERE status = 'succeeded';
