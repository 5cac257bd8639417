CREATE TABLE message (
    id     bigserial PRIMARY KEY,
    msisdn text NOT NULL
);
