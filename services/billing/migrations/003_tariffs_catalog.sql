-- Runs with search_path set to the billing schema (pgdb.Migrate).
--
-- The operator's price list as data (tariffs) and what the aggregator
-- subscribed per short code and per legal entity, with its history
-- (short_code_events, qualification_events, qualified_msisdns): the
-- monthly invoice follows from them (docs/billing.md).

-- A tariff is the whole price list of one version, as its JSON document,
-- in force on the days [valid_from, valid_to) (valid_to NULL: open). Two
-- versions never cover the same day, so the tariff of a day is never a
-- matter of choice.
CREATE TABLE tariffs (
    version     text        PRIMARY KEY,
    valid_from  date        NOT NULL,
    valid_to    date,
    document    jsonb       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tariffs_period CHECK (valid_to IS NULL OR valid_to > valid_from),
    CONSTRAINT tariffs_no_overlap EXCLUDE USING gist (daterange(valid_from, valid_to) WITH &&)
);

-- The history of each short code: its state on a day is the replay of its
-- events effective on or before that day, in (effective, id) order. A
-- mistaken event is not edited away, it is voided by a 'void' row naming
-- it: the history keeps both, as evidence of what was billed when.
CREATE TABLE short_code_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    short_code  text        NOT NULL CHECK (short_code ~ '^[0-9]{5}$'),
    kind        text        NOT NULL CHECK (kind IN ('activation', 'throughput_change', 'oadc_on', 'oadc_off',
                                                     'green_on', 'green_off', 'other_change', 'closure', 'void')),
    effective   date        NOT NULL,
    -- SMS/s subscribed from this event on: activation and throughput_change only.
    throughput  integer     CHECK (throughput > 0),
    -- The event a 'void' cancels; an event is voided at most once.
    voids       bigint      UNIQUE REFERENCES short_code_events (id),
    note        text        NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT short_code_events_throughput CHECK ((kind IN ('activation', 'throughput_change')) = (throughput IS NOT NULL)),
    CONSTRAINT short_code_events_voids CHECK ((kind = 'void') = (voids IS NOT NULL))
);

CREATE INDEX short_code_events_replay ON short_code_events (short_code, effective, id);

-- The basic-qualification subscription is per legal entity (raison
-- sociale), not per short code.
CREATE TABLE qualification_events (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    legal_entity text        NOT NULL CHECK (legal_entity <> ''),
    kind         text        NOT NULL CHECK (kind IN ('subscribe', 'unsubscribe')),
    effective    date        NOT NULL,
    note         text        NOT NULL DEFAULT '',
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX qualification_events_replay ON qualification_events (legal_entity, effective, id);

-- MSISDNs qualified by a legal entity in a month, as counted by the
-- operator's extranet. A correction is another row (negative to take some
-- back); the month's count is the sum, never below zero.
CREATE TABLE qualified_msisdns (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    legal_entity text        NOT NULL CHECK (legal_entity <> ''),
    month        date        NOT NULL CHECK (extract(day FROM month) = 1),
    msisdns      bigint      NOT NULL CHECK (msisdns <> 0),
    note         text        NOT NULL DEFAULT '',
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX qualified_msisdns_month ON qualified_msisdns (month, legal_entity);

-- The history tables are evidence of invoices already sent: never changed
-- nor removed.
CREATE FUNCTION catalog_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'billing.% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER short_code_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON short_code_events
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_append_only();
CREATE TRIGGER qualification_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON qualification_events
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_append_only();
CREATE TRIGGER qualified_msisdns_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON qualified_msisdns
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_append_only();

---- create above / drop below ----

DROP TABLE qualified_msisdns;
DROP TABLE qualification_events;
DROP TABLE short_code_events;
DROP FUNCTION catalog_append_only();
DROP TABLE tariffs;
