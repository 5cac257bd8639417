-- Unqualified: proves the search_path outlives tern's RESET ALL.
CREATE TABLE receipt (
    message_id bigint NOT NULL REFERENCES message (id),
    status     text NOT NULL
);

COMMENT ON SCHEMA {{.schema}} IS 'pgdb test';
