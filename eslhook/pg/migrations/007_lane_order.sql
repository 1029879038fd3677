-- Only adds (a column; an index replaced by a wider one): older instances keep working.
-- A lane is read in the order of its events' sequence (the payload's: in fleet mode
-- the switch's Event-Sequence), then commit order.  An instance that joined a call
-- late may commit a later event before another instance commits the earlier one it
-- alone heard; the later one is held a moment (queue.py JOIN_HOLD_SECONDS), and the
-- lane then starts with the earlier one.
ALTER TABLE deliveries ADD COLUMN sequence bigint;
CREATE INDEX deliveries_pending_ordered ON deliveries (hook_id, call_id, sequence, seq)
    WHERE state = 'pending';
DROP INDEX deliveries_pending;
