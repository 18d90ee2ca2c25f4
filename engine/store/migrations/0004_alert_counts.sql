-- 0004: the unfiltered listing's total without counting. Alert rows are never removed (a delete
-- is a status), so the number of a user's alerts only grows, by what each INSERT adds. Kept on
-- the user by a statement trigger, it makes a page cost the same for an owner with ten alerts or
-- a million: counting read every index entry of the owner (an owner with 2,100 alerts: ~0.3 ms
-- a page, more while the table's visibility map lags behind fresh inserts), and under a steady
-- load of lists those counts were most of the database's work.
ALTER TABLE users ADD COLUMN alert_count bigint NOT NULL DEFAULT 0;
UPDATE users SET alert_count = (SELECT count(*) FROM alerts WHERE alerts.owner_id = users.id);

-- One UPDATE per owner in the statement, in ascending owner id, so that two inserting
-- transactions always lock users rows in the same order (no deadlock between them). The
-- column is in no index, so each UPDATE is HOT.
CREATE FUNCTION count_inserted_alerts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    added record;
BEGIN
    FOR added IN
        SELECT owner_id, count(*) AS n FROM inserted_alerts GROUP BY owner_id ORDER BY owner_id
    LOOP
        UPDATE users SET alert_count = alert_count + added.n WHERE id = added.owner_id;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_counted AFTER INSERT ON alerts
    REFERENCING NEW TABLE AS inserted_alerts
    FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_alerts();
