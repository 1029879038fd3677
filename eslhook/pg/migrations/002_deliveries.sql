-- Deliveries (eslhook/delivery/store.py): the columns of the SQLite spool's table, plus
-- what sharing them between instances needs.
--
-- Each instance has a number (fleet_instances) and makes its delivery ids in its own
-- range, number * 2^40 + 1 ..., so ids from several instances never collide.
CREATE TABLE fleet_instances (
    name text PRIMARY KEY,             -- hostname:state_dir, or as configured
    number integer NOT NULL UNIQUE
);
CREATE SEQUENCE fleet_instance_numbers MINVALUE 0 START 0;

CREATE TABLE deliveries (
    id bigint PRIMARY KEY,
    seq bigserial NOT NULL,            -- commit order: a lane is read in this order
    hook_id text NOT NULL,
    account_id text NOT NULL,
    call_id text NOT NULL,             -- '' when the payload has none
    event_id text,
    hook_event text,
    webhook_id text NOT NULL,
    payload text NOT NULL,             -- JSON, as sent (text: kept byte for byte)
    created double precision NOT NULL,
    attempts integer NOT NULL,
    next_attempt double precision,
    state text NOT NULL,
    finished double precision,
    trigger text NOT NULL DEFAULT 'event',
    once boolean NOT NULL DEFAULT false   -- a call event's delivery: one per (hook, event)
);
-- Exactly once into the queue: every instance hears every event and enqueues it; the
-- first insert of a (hook, event) wins, the others are no-ops (ON CONFLICT DO NOTHING).
-- Copies (replay, resend) repeat an event on purpose: once is false for them.
CREATE UNIQUE INDEX deliveries_once ON deliveries (hook_id, event_id) WHERE once;
CREATE INDEX deliveries_pending ON deliveries (hook_id, call_id, seq) WHERE state = 'pending';
CREATE INDEX deliveries_by_hook_time ON deliveries (hook_id, created);
CREATE INDEX deliveries_finished ON deliveries (finished) WHERE state <> 'pending';

CREATE TABLE attempts (
    id bigserial PRIMARY KEY,
    account_id text NOT NULL,
    hook_id text NOT NULL,
    delivery_id bigint NOT NULL,
    webhook_id text NOT NULL,
    event_id text,
    call_id text,
    hook_event text,
    uri text NOT NULL,
    method text NOT NULL,
    attempt integer NOT NULL,
    result text NOT NULL,              -- success | failure
    reason text NOT NULL,
    response_code integer,
    response_body text,
    retries_left integer NOT NULL,
    timestamp double precision NOT NULL,
    trigger text NOT NULL DEFAULT 'event',
    request_headers text NOT NULL DEFAULT '{}',   -- JSON, values redacted
    request_body text NOT NULL DEFAULT '',        -- its first REQUEST_BODY_KEPT_BYTES
    request_body_size integer NOT NULL DEFAULT 0
);
CREATE INDEX attempts_by_account ON attempts (account_id, id);
CREATE INDEX attempts_by_hook ON attempts (hook_id, id);
CREATE INDEX attempts_by_time ON attempts (timestamp);
