-- 0006: each exchange's list of traded symbols, as last fetched (engine/feeds/symbols.py).
--
-- One row per exchange, the whole list in one array: a refresh replaces it in one statement, and
-- the start-up load reads a handful of rows. Kept so that a restart without network still knows
-- which symbols each exchange trades (and still refuses alerts on symbols it does not).
-- fetched_at is when the list was fetched (the next refresh is due symbols_refresh_s after it);
-- source is the URL it came from, for the operator.
CREATE TABLE exchange_symbols (
    exchange   text        PRIMARY KEY CHECK (length(exchange) BETWEEN 1 AND 64),
    symbols    text[]      NOT NULL CHECK (cardinality(symbols) > 0),
    fetched_at timestamptz NOT NULL DEFAULT now(),
    source     text        NOT NULL DEFAULT ''
);
