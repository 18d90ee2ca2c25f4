-- 0005: when a fire happened, and the ranges of engine/limits.py as constraints.
--
-- triggered_at is when the engine fired (the book actor's wall clock); the exchange's time of
-- the tick that fired it is its own column, which a replay of old ticks puts years back (and
-- which a feed may not send at all: NULL).
ALTER TABLE alerts ADD COLUMN tick_time timestamptz NULL;

-- The ranges, stated in engine/limits.py and tied to it by tests/store/test_constraints.py
-- (which tries every number here at its boundary and one step past it):
--   a price is in [MIN_PRICE, MAX_PRICE] = [1E-18, 999999999999999999.999999999999999999] (NaN
--   and infinities are outside the range); a target is also a multiple of 1E-18
--   (PRICE_FRACTION_DIGITS = 18), a tick's price may have any precision (limits.tick_problem);
--   a name has at most NAME_MAX = 200 characters, a symbol at most SYMBOL_MAX = 32.
--
-- NOT VALID: a row stored before this migration is not checked, so it cannot stop the
-- migration (and with it every later start); the engine quarantines such a row at its start-up
-- load instead. But Postgres checks every CHECK against the new version of a row on UPDATE,
-- valid or not, so a constraint on a value that a fire or a delete leaves unchanged would make
-- an old row out of range impossible to fire (an old long name) or to delete (an old target the
-- book refuses). Those constraints bind a live ('created') row: every INSERT writes one, so
-- everything written from now on is checked, and a fire or a delete still takes any row out of
-- the live set. A triggered price is only ever written by a fire, which it binds directly.
ALTER TABLE alerts
    ADD CONSTRAINT alerts_target_price_limits CHECK (
        status <> 'created'
        OR (target_price BETWEEN 0.000000000000000001 AND 999999999999999999.999999999999999999
            AND target_price = round(target_price, 18))
    ) NOT VALID,
    ADD CONSTRAINT alerts_triggered_price_limits CHECK (
        triggered_price BETWEEN 0.000000000000000001 AND 999999999999999999.999999999999999999
    ) NOT VALID,
    ADD CONSTRAINT alerts_name_limits CHECK (status <> 'created' OR length(name) <= 200) NOT VALID,
    ADD CONSTRAINT alerts_symbol_limits CHECK (status <> 'created' OR length(symbol) <= 32)
        NOT VALID;
