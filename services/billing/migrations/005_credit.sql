-- Runs with search_path set to the billing schema (pgdb.Migrate).
-- Prepaid credit, in segments (docs/billing.md, "Prepaid credit"). A tenant with a
-- row in credit_accounts is prepaid; any other tenant is postpaid and never
-- checked. The account's counters move only in the same transaction as the
-- reservation rows they sum, so that
--   reserved = sum over open reservations of (segments - captured - released)
-- holds at every commit.
CREATE TABLE credit_accounts (
    tenant_id  text        PRIMARY KEY CHECK (tenant_id <> ''),
    topped_up  bigint      NOT NULL DEFAULT 0 CHECK (topped_up >= 0),
    captured   bigint      NOT NULL DEFAULT 0 CHECK (captured >= 0),
    reserved   bigint      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Top-ups are append-only: the balance is auditable from them and the
-- ledger. One per (tenant, reference), so a retried top-up adds nothing.
CREATE TABLE credit_topups (
    tenant_id  text        NOT NULL REFERENCES credit_accounts,
    reference  text        NOT NULL CHECK (reference <> ''),
    segments   bigint      NOT NULL CHECK (segments >= 0),
    note       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, reference)
);

CREATE FUNCTION credit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;

CREATE TRIGGER credit_topups_append_only BEFORE UPDATE OR DELETE ON credit_topups
    FOR EACH ROW EXECUTE FUNCTION credit_append_only();

-- One reservation per accepted message of a prepaid tenant: the primary key
-- makes a retried reservation harmless. closed_at is set when the rest of
-- the message was released at once (rejected, cancelled, never stored,
-- stale); nothing of it is in flight from then on.
CREATE TABLE credit_reservations (
    message_id text        PRIMARY KEY CHECK (message_id <> ''),
    tenant_id  text        NOT NULL REFERENCES credit_accounts,
    segments   integer     NOT NULL CHECK (segments BETWEEN 1 AND 255),
    captured   integer     NOT NULL DEFAULT 0 CHECK (captured >= 0),
    released   integer     NOT NULL DEFAULT 0 CHECK (released >= 0),
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    closed_at  timestamptz,
    CONSTRAINT credit_reservations_counts CHECK (captured + released <= segments)
);

-- The sweeper looks for open reservations long expired.
CREATE INDEX credit_reservations_open ON credit_reservations (expires_at) WHERE closed_at IS NULL;

-- Segments of reserved messages refused by the SMSC (a NACK: no ledger
-- entry): their credit is released once, whatever the redeliveries of the
-- NACK. Delivered, failed and expired segments need no such row: the
-- ledger's primary key settles each of them once.
CREATE TABLE credit_nacks (
    message_id    text        NOT NULL,
    segment_index integer     NOT NULL CHECK (segment_index >= 1),
    released_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, segment_index)
);

---- create above / drop below ----

DROP TABLE credit_nacks;
DROP TABLE credit_reservations;
DROP TABLE credit_topups;
DROP FUNCTION credit_append_only();
DROP TABLE credit_accounts;
