-- 0003: make a batch of fires cheaper still (measured by `triggerbook bench store`, with the
-- server's CPU time per fire read from /proc for the backend).
-- A fire's UPDATE is HOT only if the page holding the alert has room for the new row version.
-- A burst fires alerts created together, hence stored together: with fillfactor 80 only about
-- one alert in four of a full page found room, the others were non-HOT (a new entry in each of
-- the three indexes: 4 WAL records instead of 1). Half-empty pages keep room for every alert of
-- a page to fire in one transaction (a new version is ~16 bytes bigger than the old). It costs
-- table size (about 240 MB rather than 130 MB for a million alerts), which the start-up load,
-- bounded by parsing on our side, does not notice. Only pages written from now on use it.
ALTER TABLE alerts SET (fillfactor = 45);
-- The outbox's UNIQUE (alert_id, channel) does not decide anything: its only writer queues rows
-- for the alerts its own conditional UPDATE has just moved from 'created' to 'triggered', which
-- happens once per alert, and Store.record_fires passes each channel once. Its index cost ~1 us
-- a fire.
ALTER TABLE outbox DROP CONSTRAINT outbox_alert_id_channel_key;
