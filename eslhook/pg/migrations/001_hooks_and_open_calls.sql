-- Hooks: each one the JSON document hooks.yaml and the API use (Hook.to_dict), so a
-- new hook field needs no schema change; position keeps their order.
CREATE TABLE hooks (
    id text PRIMARY KEY,
    position integer NOT NULL,
    document jsonb NOT NULL
);
-- One row: grows on every write; writers lock it (SELECT ... FOR UPDATE) so updates
-- from every instance are serialised, and compare it to spot another writer's change.
CREATE TABLE hooks_revision (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    revision bigint NOT NULL
);
INSERT INTO hooks_revision (revision) VALUES (0);

-- Open calls (eslhook/calls_store.py): one row per call believed open.
CREATE TABLE open_calls (
    switch text NOT NULL,
    call_id text NOT NULL,
    call jsonb NOT NULL,
    PRIMARY KEY (switch, call_id)
);
