-- Lane leases (fleet mode): the instance that holds a (hook, call) lane's lease is the
-- only one that delivers it, so each call's webhooks stay in order across instances.
-- A lease is claimed in the batch that inserts the lane's deliveries (a new lane: its
-- enqueuer), renewed by its owner, and taken over by another instance once expired
-- (the owner died).  call_id '' for deliveries without a call, as in deliveries.
CREATE TABLE lanes (
    hook_id text NOT NULL,
    call_id text NOT NULL,
    owner text NOT NULL,               -- the instance name (fleet_instances.name)
    expires_at timestamptz NOT NULL,   -- the database's clock: one clock for all instances
    PRIMARY KEY (hook_id, call_id)
);
CREATE INDEX lanes_by_owner ON lanes (owner);
CREATE INDEX lanes_by_expiry ON lanes (expires_at);
