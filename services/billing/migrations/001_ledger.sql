-- Runs with search_path set to the billing schema (pgdb.Migrate).
-- One row per final segment report: the primary key is what makes a
-- redelivered or duplicated report impossible to bill twice.
CREATE TABLE ledger (
    message_id    text        NOT NULL,
    segment_index integer     NOT NULL CHECK (segment_index >= 1),
    tenant_id     text        NOT NULL,
    campaign_id   text,
    short_code    text        NOT NULL,
    state         text        NOT NULL CHECK (state IN ('delivered', 'failed', 'expired')),
    billable      boolean     NOT NULL,
    reported_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, segment_index),
    CONSTRAINT ledger_billable_delivered CHECK (billable = (state = 'delivered'))
);

-- Invoices are per tenant and period.
CREATE INDEX ledger_tenant_reported ON ledger (tenant_id, reported_at);

---- create above / drop below ----

DROP TABLE ledger;
