-- Changes a key (not only adds): stop the instances from before it, then migrate.
-- Each instance saves its own view of the open calls (it replaces only its rows), so
-- two instances saving at once never undo each other; a starting instance reads the
-- union (per call the copy with the latest sequence): the calls any instance knew.
ALTER TABLE open_calls ADD COLUMN instance text NOT NULL DEFAULT '';
ALTER TABLE open_calls DROP CONSTRAINT open_calls_pkey;
ALTER TABLE open_calls ADD PRIMARY KEY (instance, switch, call_id);
