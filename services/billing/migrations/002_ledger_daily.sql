-- Runs with search_path set to the billing schema (pgdb.Migrate).
--
-- Final segments per civil day in Europe/Paris (the operator bills by its
-- month), short code, tenant and state: what an invoice, a statement and a
-- reconciliation read, so that none of them scans the ledger.
--
-- The aggregate is kept by statement triggers on the ledger, in the very
-- transaction that inserts the rows, and only from the rows really inserted
-- (the transition table holds no row skipped by ON CONFLICT DO NOTHING): a
-- duplicated or redelivered report counts nowhere, whoever writes the
-- ledger. The ledger is append-only, so the aggregate cannot drift from it.
LOCK TABLE ledger IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE ledger_daily (
    day        date   NOT NULL,
    short_code text   NOT NULL,
    tenant_id  text   NOT NULL,
    state      text   NOT NULL CHECK (state IN ('delivered', 'failed', 'expired')),
    segments   bigint NOT NULL CHECK (segments > 0),
    PRIMARY KEY (day, short_code, tenant_id, state)
);

-- Rows are added in key order so that two replicas committing batches
-- of the same day and short code lock them in the same order (no
-- deadlock).
CREATE FUNCTION ledger_daily_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO billing.ledger_daily AS d (day, short_code, tenant_id, state, segments)
    SELECT (n.reported_at AT TIME ZONE 'Europe/Paris')::date, n.short_code, n.tenant_id, n.state, count(*)
    FROM new_rows n
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (day, short_code, tenant_id, state)
    DO UPDATE SET segments = d.segments + excluded.segments;
    RETURN NULL;
END
$$;

CREATE TRIGGER ledger_daily_add
    AFTER INSERT ON ledger
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_daily_add();

-- An entry once written is the evidence of an invoice line: it is never
-- changed nor removed, and the aggregate relies on it.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'billing.ledger is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER ledger_append_only
    BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

CREATE TRIGGER ledger_no_truncate
    BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

-- The rows written before this migration.
INSERT INTO ledger_daily (day, short_code, tenant_id, state, segments)
SELECT (reported_at AT TIME ZONE 'Europe/Paris')::date, short_code, tenant_id, state, count(*)
FROM ledger
GROUP BY 1, 2, 3, 4;

---- create above / drop below ----

DROP TRIGGER ledger_no_truncate ON ledger;
DROP TRIGGER ledger_append_only ON ledger;
DROP FUNCTION ledger_append_only();
DROP TRIGGER ledger_daily_add ON ledger;
DROP FUNCTION ledger_daily_add();
DROP TABLE ledger_daily;
