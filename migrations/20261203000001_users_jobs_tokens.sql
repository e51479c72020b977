-- Users, their job applications, and their personal API tokens.

CREATE TABLE users (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email      text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE jobs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL REFERENCES users (id),
    company_name     text NOT NULL,
    job_title        text NOT NULL,
    status           text NOT NULL
                     CHECK (status IN ('saved', 'applied', 'interview', 'offer', 'rejected')),
    source           text,
    location         text,
    is_remote        boolean NOT NULL DEFAULT false,
    job_url          text,
    job_description  text,
    salary_range_min integer,
    salary_range_max integer,
    ai_match_score   integer CHECK (ai_match_score BETWEEN 0 AND 100),
    ai_reasoning     text,
    ai_parsed_data   jsonb,
    notes            text,
    tags             text[] NOT NULL DEFAULT '{}',
    applied_at       timestamptz,
    interview_at     timestamptz,
    offer_at         timestamptz,
    rejected_at      timestamptz,
    scraped_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_synced_at   timestamptz,
    deleted_at       timestamptz
);

-- Serves every export: WHERE user_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC
-- (id breaks ties so the order is total and repeatable).
CREATE INDEX jobs_user_live_created_idx
    ON jobs (user_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

-- Personal tokens are stored only as the SHA-256 of the secret.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    token_hash   bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    token_prefix text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);
