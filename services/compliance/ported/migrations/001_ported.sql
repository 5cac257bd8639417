-- Ported numbers: the operator a number is on now, when it is not the
-- ARCEP block holder. msisdn is the E.164 number as an integer (the digits
-- after "+", 33612345678): 8 bytes, and the order the replicas' snapshot
-- is sorted in.
CREATE TABLE numbers (
    msisdn     bigint      PRIMARY KEY CHECK (msisdn > 0),
    operator   text        NOT NULL CHECK (operator <> ''),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per committed import; the newest is the table's version. The
-- replicas compare it with the version of their snapshot.
CREATE TABLE versions (
    version     bigint      PRIMARY KEY,
    mode        text        NOT NULL CHECK (mode IN ('full', 'incremental')),
    source      text        NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    size        bigint      NOT NULL,
    upserted    bigint      NOT NULL,
    deleted     bigint      NOT NULL,
    refused     bigint      NOT NULL
);
