-- Each ingest replica looks for orphaned uploads (orphans.go) every 30 s:
-- campaigns still 'receiving' and not marked alive lately. Campaigns pile
-- up for years and few are ever receiving at once: the index holds those
-- few, so the look is one short index scan, not a scan of every campaign.
CREATE INDEX campaigns_receiving ON campaigns (updated_at) WHERE state = 'receiving';
