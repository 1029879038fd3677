-- Changes a key (not only adds): instances from before 005 cannot commit after it.
-- The key a call event is enqueued once under, per hook, whichever instance enqueues
-- it (pg/deliveries_sql.py once_key): the event_id, except for the events a channel
-- fires at most once (create, answer, destroy), keyed by the call, so a reconciled
-- create or destroy made by an instance after its restart never doubles the real one
-- another instance heard.  Rows enqueued before keep their event_id as the key.
ALTER TABLE deliveries ADD COLUMN once_key text;
UPDATE deliveries SET once_key = event_id WHERE once;
DROP INDEX deliveries_once;
ALTER TABLE deliveries DROP COLUMN once;     -- it said once_key IS NOT NULL
CREATE UNIQUE INDEX deliveries_once_key ON deliveries (hook_id, once_key)
    WHERE once_key IS NOT NULL;
