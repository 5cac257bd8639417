-- Issue 4: what the partner declared about a text (sector, attestations,
-- the STOP mention ingest appended) and compliance's decision on each
-- message, so that GetMessage explains it and GetCampaign counts it.

-- The partner's declarations are kept as proof of what was declared when
-- the message was accepted: a campaign's messages inherit its spec's.
ALTER TABLE campaigns
    ADD COLUMN sector                      text    NOT NULL DEFAULT '',
    ADD COLUMN stop_informed_at_collection boolean NOT NULL DEFAULT false,
    ADD COLUMN free_claim_substantiated    boolean NOT NULL DEFAULT false,
    ADD COLUMN append_stop_mention         boolean NOT NULL DEFAULT false;

-- decision_outcome is '' until compliance decided, else the lower-case
-- DecisionOutcome name ('accepted', 'deferred', 'refused');
-- decision_reason a Reason name as in reason ('opted_out').
ALTER TABLE messages
    ADD COLUMN sector                      text        NOT NULL DEFAULT '',
    ADD COLUMN stop_informed_at_collection boolean     NOT NULL DEFAULT false,
    ADD COLUMN free_claim_substantiated    boolean     NOT NULL DEFAULT false,
    ADD COLUMN stop_mention_appended       boolean     NOT NULL DEFAULT false,
    ADD COLUMN decision_outcome            text        NOT NULL DEFAULT '',
    ADD COLUMN decision_reason             text        NOT NULL DEFAULT '',
    ADD COLUMN decision_rule               text        NOT NULL DEFAULT '',
    ADD COLUMN decision_source             text        NOT NULL DEFAULT '',
    ADD COLUMN decision_detail             text        NOT NULL DEFAULT '',
    ADD COLUMN decision_not_before         timestamptz,
    ADD COLUMN decision_policy_version     text        NOT NULL DEFAULT '',
    ADD COLUMN decided_at                  timestamptz;

-- The campaign report: how many of a campaign's messages compliance
-- refused, by reason, and deferred (reason ''), kept by the projection in
-- the transaction that records each decision (services/ingest/report.go),
-- so that GetCampaign reads a few rows whatever the campaign's size, where
-- counting the messages would read every refused or deferred one (a whole
-- 1 M-recipient campaign submitted after the window closed). Each count is
-- split over shards (by message id) so that the projection's concurrent
-- workers, all deciding messages of the same campaign with mostly the same
-- outcome, seldom wait for each other's row lock. No foreign key: the
-- status view also records messages it learns of from events alone.
CREATE TABLE campaign_decisions (
    campaign_id uuid     NOT NULL,
    outcome     text     NOT NULL,
    reason      text     NOT NULL,
    shard       smallint NOT NULL,
    count       bigint   NOT NULL,
    PRIMARY KEY (campaign_id, outcome, reason, shard)
);

---- create above / drop below ----

DROP TABLE campaign_decisions;
ALTER TABLE messages
    DROP COLUMN sector,
    DROP COLUMN stop_informed_at_collection,
    DROP COLUMN free_claim_substantiated,
    DROP COLUMN stop_mention_appended,
    DROP COLUMN decision_outcome,
    DROP COLUMN decision_reason,
    DROP COLUMN decision_rule,
    DROP COLUMN decision_source,
    DROP COLUMN decision_detail,
    DROP COLUMN decision_not_before,
    DROP COLUMN decision_policy_version,
    DROP COLUMN decided_at;
ALTER TABLE campaigns
    DROP COLUMN sector,
    DROP COLUMN stop_informed_at_collection,
    DROP COLUMN free_claim_substantiated,
    DROP COLUMN append_stop_mention;
