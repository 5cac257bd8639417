-- Issue 5: a campaign's weight on its short code (CampaignSpec.weight),
-- carried by each of its messages (MessageAccepted.weight) so that
-- throttle shares the short code by weight. 0 means 1.
ALTER TABLE campaigns
    ADD COLUMN weight integer NOT NULL DEFAULT 0 CHECK (weight BETWEEN 0 AND 100);
