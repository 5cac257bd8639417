-- Runs with search_path set to the billing schema (pgdb.Migrate).

-- An operator's monthly statement as imported, and the reconciliation of
-- it with the ledger made at import: kept, so that the report the
-- aggregator acted on can be read again whatever the ledger became since.
CREATE TABLE operator_statements (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    month          date        NOT NULL CHECK (extract(day FROM month) = 1),
    source         text        NOT NULL,
    imported_at    timestamptz NOT NULL DEFAULT now(),
    operator_total bigint      NOT NULL CHECK (operator_total >= 0),
    ledger_total   bigint      NOT NULL CHECK (ledger_total >= 0),
    -- Lines (day, short code) that do not match, for the list of imports.
    differing      bigint      NOT NULL CHECK (differing >= 0)
);

CREATE INDEX operator_statements_month ON operator_statements (month, id);

-- One row per (day, short code) that the statement or the ledger has.
-- operator_segments is NULL when the statement has no row for it: a day
-- missing from the statement is not the same as a day at zero.
CREATE TABLE reconciliation_lines (
    statement_id      bigint NOT NULL REFERENCES operator_statements (id) ON DELETE CASCADE,
    day               date   NOT NULL,
    short_code        text   NOT NULL,
    operator_segments bigint CHECK (operator_segments >= 0),
    ledger_segments   bigint NOT NULL CHECK (ledger_segments >= 0),
    -- Whether the short code is ours (catalog or ledger) at import.
    known             boolean NOT NULL,
    PRIMARY KEY (statement_id, day, short_code)
);

-- Price plans of the partners, versioned: a version is in force from
-- valid_from (a Europe/Paris day) until the next version's valid_from. A
-- closing version ends the plan. Never updated: a statement already sent
-- can always be recomputed.
CREATE TABLE partner_plans (
    tenant_id                text        NOT NULL,
    valid_from               date        NOT NULL,
    -- Price of one delivered segment in thousandths of a cent.
    segment_price_millicents bigint      NOT NULL CHECK (segment_price_millicents >= 0),
    monthly_fee_cents        bigint      NOT NULL CHECK (monthly_fee_cents >= 0),
    closed                   boolean     NOT NULL DEFAULT false,
    note                     text        NOT NULL DEFAULT '',
    created_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, valid_from),
    CONSTRAINT partner_plans_closed_free CHECK (NOT closed OR (segment_price_millicents = 0 AND monthly_fee_cents = 0))
);

-- Twice-yearly forecasts sent to the operator, per short code and half
-- year ('2027-H1'). A correction during the year is a new revision; the
-- report compares with the latest, the earlier ones stay for the record.
CREATE TABLE forecasts (
    period       text        NOT NULL CHECK (period ~ '^[0-9]{4}-H[12]$'),
    short_code   text        NOT NULL,
    revision     integer     NOT NULL CHECK (revision >= 1),
    note         text        NOT NULL DEFAULT '',
    submitted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (period, short_code, revision)
);

CREATE TABLE forecast_months (
    period     text    NOT NULL,
    short_code text    NOT NULL,
    revision   integer NOT NULL,
    month      date    NOT NULL CHECK (extract(day FROM month) = 1),
    -- Delivered segments expected in the month.
    volume     bigint  NOT NULL CHECK (volume >= 0),
    -- Peak throughput expected, SMS/s.
    throughput integer NOT NULL CHECK (throughput >= 0),
    PRIMARY KEY (period, short_code, revision, month),
    FOREIGN KEY (period, short_code, revision) REFERENCES forecasts (period, short_code, revision) ON DELETE CASCADE
);

---- create above / drop below ----

DROP TABLE forecast_months;
DROP TABLE forecasts;
DROP TABLE partner_plans;
DROP TABLE reconciliation_lines;
DROP TABLE operator_statements;
