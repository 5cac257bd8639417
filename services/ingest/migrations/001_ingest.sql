-- Runs with search_path set to the ingest schema (pgdb.Migrate); queries
-- name the schema (ingest.messages) since the pool's search_path is the
-- server's default.

-- A partner is a tenant: its id is a subject token (sms.accepted.<id>.…),
-- so no dot, star or space. Only the SHA-256 of its API key is kept.
CREATE TABLE partners (
    id             text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name           text        NOT NULL,
    api_key_sha256 bytea       NOT NULL UNIQUE CHECK (length(api_key_sha256) = 32),
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- The short codes a partner may send from and receives MOs on.
CREATE TABLE partner_short_codes (
    partner_id text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    short_code text NOT NULL CHECK (short_code ~ '^[0-9]{5}$'),
    PRIMARY KEY (partner_id, short_code)
);

CREATE INDEX partner_short_codes_short_code ON partner_short_codes (short_code);

-- state: receiving, scheduled, running, completed, cancelled (lower-case
-- CampaignState names). scheduled/running/completed are refined when read.
CREATE TABLE campaigns (
    id               uuid        PRIMARY KEY,
    tenant_id        text        NOT NULL REFERENCES partners (id),
    client_reference text        NOT NULL DEFAULT '',
    name             text        NOT NULL DEFAULT '',
    short_code       text        NOT NULL,
    brand            text        NOT NULL DEFAULT '',
    category         text        NOT NULL,
    sender           text        NOT NULL DEFAULT '',
    state            text        NOT NULL,
    accepted         bigint      NOT NULL DEFAULT 0,
    refused          bigint      NOT NULL DEFAULT 0,
    start_at         timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

CREATE UNIQUE INDEX campaigns_client_reference ON campaigns (tenant_id, client_reference)
    WHERE client_reference <> '';

-- One row per message. The recipient is never kept in clear: only its
-- masked form (shown to the partner) and its hash (numplan Hash: SHA-256 of
-- the E.164 form, the correlation key of every service). The text is not kept
-- either; it travels in the MessageAccepted event.
--
-- state is derived (services/ingest/state.go) from rejected, cancelled,
-- cleared and the segments' states, and stored for reads and counts.
-- Enum columns hold the lower-case proto names without prefix
-- (state 'queued', category 'marketing', encoding 'gsm7', reason 'opted_out').
-- No foreign key to campaigns or partners: the status view also records
-- messages it learns of from events alone.
CREATE TABLE messages (
    id               uuid        PRIMARY KEY,
    tenant_id        text        NOT NULL,
    campaign_id      uuid,
    client_reference text        NOT NULL DEFAULT '',
    short_code       text        NOT NULL,
    brand            text        NOT NULL DEFAULT '',
    category         text        NOT NULL,
    sender           text        NOT NULL DEFAULT '',
    recipient_masked text        NOT NULL,
    recipient_hash   text        NOT NULL,
    encoding         text        NOT NULL,
    segment_count    integer     NOT NULL,
    state            text        NOT NULL,
    rejected         boolean     NOT NULL DEFAULT false,
    cancelled        boolean     NOT NULL DEFAULT false,
    cleared          boolean     NOT NULL DEFAULT false,
    reason           text        NOT NULL DEFAULT '',
    reason_detail    text        NOT NULL DEFAULT '',
    accepted_at      timestamptz NOT NULL,
    not_before       timestamptz,
    expires_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

-- Idempotent SendMessage: one single message per partner reference.
CREATE UNIQUE INDEX messages_client_reference ON messages (tenant_id, client_reference)
    WHERE client_reference <> '' AND campaign_id IS NULL;

-- GetCampaign's counts by state.
CREATE INDEX messages_campaign_state ON messages (campaign_id, state)
    WHERE campaign_id IS NOT NULL;

-- Segment states only move forward (docs/messages.md); state as in messages.
CREATE TABLE segments (
    message_id     uuid        NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    idx            integer     NOT NULL CHECK (idx >= 1),
    state          text        NOT NULL,
    ucp_error_code text        NOT NULL DEFAULT '',
    submitted_at   timestamptz,
    done_at        timestamptz,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (message_id, idx)
);

---- create above / drop below ----

DROP TABLE segments;
DROP TABLE messages;
DROP TABLE campaigns;
DROP TABLE partner_short_codes;
DROP TABLE partners;
