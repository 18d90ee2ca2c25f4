-- 0007: per-user limits decided in the database, and every filtered listing page in a few
-- milliseconds for an owner with 300,000 alerts (measured by `python -m benchmarks.listing`).
--
-- Tallies: how many of an owner's alerts are in each (status, exchange, symbol), kept by
-- statement triggers as 0004 keeps alert_count. They answer, from a handful of rows instead of
-- counting the owner's alerts: a filtered page's `count`, which (status, exchange, symbol)
-- streams a filtered page merges (engine/store/queries.py), and the live alerts and live
-- symbols the create limits compare against. A key whose count falls to zero is removed, so an
-- owner's `created` keys are exactly their live (exchange, symbol) pairs.
CREATE TABLE alert_tallies (
    owner_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status   text   NOT NULL,
    exchange text   NOT NULL,
    symbol   text   NOT NULL,
    n        bigint NOT NULL,  -- no CHECK: ON CONFLICT checks the -1 it proposes, not the sum
    PRIMARY KEY (owner_id, status, exchange, symbol)
);
INSERT INTO alert_tallies (owner_id, status, exchange, symbol, n)
SELECT owner_id, status, exchange, symbol, count(*) FROM alerts GROUP BY 1, 2, 3, 4;

-- Keys are changed in ascending key order, in every trigger, so that two transactions changing
-- tallies of one owner always lock them in the same order (no deadlock between them).
CREATE FUNCTION tally_inserted_alerts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_tallies AS t (owner_id, status, exchange, symbol, n)
    SELECT owner_id, status, exchange, symbol, count(*)
      FROM inserted_alerts
     GROUP BY 1, 2, 3, 4
     ORDER BY 1, 2, 3, 4
        ON CONFLICT (owner_id, status, exchange, symbol) DO UPDATE SET n = t.n + excluded.n;
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_tallied_on_insert AFTER INSERT ON alerts
    REFERENCING NEW TABLE AS inserted_alerts
    FOR EACH STATEMENT EXECUTE FUNCTION tally_inserted_alerts();

-- A fire or a delete moves an alert from one status to another: -1 on the old key, +1 on the
-- new one (any change of owner, exchange or symbol is tallied the same way).
CREATE FUNCTION tally_updated_alerts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    emptied record;
BEGIN
    FOR emptied IN
        WITH moved AS (
            SELECT o.owner_id AS old_owner, o.status AS old_status, o.exchange AS old_exchange,
                   o.symbol AS old_symbol, u.owner_id, u.status, u.exchange, u.symbol
              FROM old_alerts AS o
              JOIN new_alerts AS u USING (id)
             WHERE (o.owner_id, o.status, o.exchange, o.symbol)
                   IS DISTINCT FROM (u.owner_id, u.status, u.exchange, u.symbol)
        ), deltas AS (
            SELECT old_owner, old_status, old_exchange, old_symbol, -1 FROM moved
            UNION ALL
            SELECT owner_id, status, exchange, symbol, 1 FROM moved
        )
        INSERT INTO alert_tallies AS t (owner_id, status, exchange, symbol, n)
        SELECT d.*
          FROM (SELECT old_owner, old_status, old_exchange, old_symbol, sum(d.n)::bigint
                  FROM deltas AS d (old_owner, old_status, old_exchange, old_symbol, n)
                 GROUP BY 1, 2, 3, 4) AS d (owner_id, status, exchange, symbol, n)
         WHERE d.n <> 0
         ORDER BY 1, 2, 3, 4
            ON CONFLICT (owner_id, status, exchange, symbol) DO UPDATE SET n = t.n + excluded.n
        RETURNING t.owner_id, t.status, t.exchange, t.symbol, t.n
    LOOP
        IF emptied.n = 0 THEN
            DELETE FROM alert_tallies
             WHERE (owner_id, status, exchange, symbol)
                 = (emptied.owner_id, emptied.status, emptied.exchange, emptied.symbol)
               AND n = 0;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_tallied_on_update AFTER UPDATE ON alerts
    REFERENCING OLD TABLE AS old_alerts NEW TABLE AS new_alerts
    FOR EACH STATEMENT EXECUTE FUNCTION tally_updated_alerts();

-- The limits. For each position of the arrays (one create each): NULL when it may be written,
-- else why not: 'owner' (no such user), 'alerts' (the owner would pass max_alerts live alerts)
-- or 'symbols' (a live (exchange, symbol) pair the owner does not watch yet, past
-- max_symbols). Positions are decided in order, as if created one at a time: a refused create
-- takes no room. A NULL limit is no limit. The whole result is NULL when every position may be
-- written. Called by the create statement itself (queries.INSERT_ALERTS), so the decision and
-- the INSERT are one transaction.
--
-- The owners are locked first (FOR NO KEY UPDATE, as 0004's alert_count UPDATE locks them),
-- in ascending id, so that concurrent batches (of this process or of others on one database)
-- take turns per owner and never wait on each other in a cycle. The decision is the next
-- statement, with a snapshot taken after the locks: it sees every create committed by a batch
-- it waited for. Concurrent fires and deletes only ever free room (decided a little early:
-- conservative, never over the limit).
CREATE FUNCTION admit_alerts(
    owners bigint[], exchanges text[], symbols text[], max_alerts bigint, max_symbols bigint
) RETURNS text[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    verdicts text[];
BEGIN
    PERFORM 1 FROM users WHERE id = ANY (owners) ORDER BY id FOR NO KEY UPDATE;
    WITH asked AS (
        SELECT a.owner_id, a.exchange, a.symbol, a.n
          FROM unnest(owners, exchanges, symbols) WITH ORDINALITY AS a (owner_id, exchange, symbol, n)
    ), live AS (
        SELECT t.owner_id, t.exchange, t.symbol, t.n
          FROM alert_tallies AS t
         WHERE t.owner_id IN (SELECT owner_id FROM asked) AND t.status = 'created'
    ), owner_state AS (
        SELECT u.id AS owner_id,
               coalesce((SELECT sum(l.n) FROM live AS l WHERE l.owner_id = u.id), 0) AS alerts,
               (SELECT count(*) FROM live AS l WHERE l.owner_id = u.id) AS symbols
          FROM users AS u
         WHERE u.id IN (SELECT owner_id FROM asked)
    ), pairs AS (
        -- each (owner, exchange, symbol) of the batch: live already, or the rank of its first
        -- create among the owner's new pairs
        SELECT p.owner_id, p.exchange, p.symbol, p.live,
               row_number() OVER (PARTITION BY p.owner_id, p.live ORDER BY p.first) AS rank
          FROM (SELECT a.owner_id, a.exchange, a.symbol, min(a.n) AS first,
                       EXISTS (SELECT 1 FROM live AS l
                                WHERE (l.owner_id, l.exchange, l.symbol)
                                    = (a.owner_id, a.exchange, a.symbol)) AS live
                  FROM asked AS a
                 GROUP BY 1, 2, 3) AS p
    ), checked AS (
        SELECT a.n, s.owner_id IS NOT NULL AS known, s.alerts,
               p.live OR p.rank <= max_symbols - s.symbols AS symbol_ok
          FROM asked AS a
          LEFT JOIN owner_state AS s ON s.owner_id = a.owner_id
          JOIN pairs AS p ON (p.owner_id, p.exchange, p.symbol) = (a.owner_id, a.exchange, a.symbol)
    ), counted AS (
        -- the creates of the owner before this one that pass the symbol limit: until the alert
        -- limit is reached, exactly those are written
        SELECT c.*, count(*) FILTER (WHERE c.symbol_ok IS NOT FALSE) OVER (
                   PARTITION BY a.owner_id ORDER BY c.n
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
          FROM checked AS c
          JOIN asked AS a ON a.n = c.n
    )
    SELECT CASE WHEN bool_or(v.verdict IS NOT NULL) THEN array_agg(v.verdict ORDER BY v.n) END
      INTO verdicts
      FROM (SELECT c.n,
                   CASE WHEN NOT c.known THEN 'owner'
                        WHEN c.alerts + c.before >= max_alerts THEN 'alerts'
                        WHEN NOT c.symbol_ok THEN 'symbols'
                   END AS verdict
              FROM counted AS c) AS v;
    RETURN verdicts;
END
$$;

-- Listing indexes. A fire changes status, so any index holding status makes fires non-HOT
-- (0002): an entry per index per fire. Measured with `triggerbook bench store` (README). Each
-- gives its rows newest first for one exact (owner, status, exchange[, symbol]) key; a filtered
-- page merges the few keys its filter matches (the tallies say which), so it reads only the rows
-- up to its end, whatever the mix of the owner's alerts.
DROP INDEX alerts_owner_symbol;
CREATE INDEX alerts_owner_exchange ON alerts (owner_id, exchange, status, created_at DESC, id DESC);
CREATE INDEX alerts_owner_symbol
    ON alerts (owner_id, symbol, exchange, status, created_at DESC, id DESC);
