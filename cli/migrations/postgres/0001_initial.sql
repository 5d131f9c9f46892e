-- modelwatch's store on PostgreSQL, version 1: what SQLite's store.rs, watch.rs and
-- alerts.rs create in a SQLite file, with the same tables, keys and meaning.

-- One row per accepted summary; the primary key is the deduplication: a summary posted to
-- two collectors, or retried, is stored once per sending key.
CREATE TABLE windows (
    key_id       TEXT   NOT NULL DEFAULT '',
    deployment   TEXT   NOT NULL,
    window_start BIGINT NOT NULL,
    instance     BIGINT NOT NULL,
    sequence     BIGINT NOT NULL,
    window_ms    BIGINT NOT NULL,
    predictions  BIGINT NOT NULL,
    received_ms  BIGINT NOT NULL,
    body         BYTEA  NOT NULL,
    PRIMARY KEY (key_id, deployment, window_start, instance, sequence)
);
CREATE INDEX windows_by_time ON windows (deployment, window_start);

-- Hourly and daily merges of the windows.
CREATE TABLE rollups (
    resolution_ms   BIGINT NOT NULL,
    deployment      TEXT   NOT NULL,
    window_start    BIGINT NOT NULL,
    key_fingerprint BIGINT NOT NULL,
    windows         BIGINT NOT NULL,
    predictions     BIGINT NOT NULL,
    first_start     BIGINT NOT NULL,
    last_start      BIGINT NOT NULL,
    left_out        BIGINT NOT NULL DEFAULT 0,
    body            BYTEA  NOT NULL,
    PRIMARY KEY (resolution_ms, deployment, window_start, key_fingerprint)
);
CREATE TABLE pruned (resolution TEXT PRIMARY KEY, before_ms BIGINT NOT NULL);

-- Windows stored but not merged into their rollups yet, and not yet handed to the
-- incident evaluation: queues that any collector adds to and one drains.
CREATE TABLE unrolled (
    key_id       TEXT   NOT NULL,
    deployment   TEXT   NOT NULL,
    window_start BIGINT NOT NULL,
    instance     BIGINT NOT NULL,
    sequence     BIGINT NOT NULL,
    PRIMARY KEY (key_id, deployment, window_start, instance, sequence)
);
CREATE TABLE unevaluated (
    key_id       TEXT   NOT NULL,
    deployment   TEXT   NOT NULL,
    window_start BIGINT NOT NULL,
    instance     BIGINT NOT NULL,
    sequence     BIGINT NOT NULL,
    PRIMARY KEY (key_id, deployment, window_start, instance, sequence)
);

-- The incident engine's state per deployment.
CREATE TABLE monitors (
    deployment   TEXT   PRIMARY KEY,
    evaluated_to BIGINT NOT NULL,
    state        BYTEA  NOT NULL
);

-- The alert outbox and its deliveries per destination.
CREATE TABLE alert_outbox (
    seq         BIGSERIAL PRIMARY KEY,
    incident    TEXT   NOT NULL,
    event       TEXT   NOT NULL CHECK (event IN ('opened', 'closed')),
    deployment  TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    subject     TEXT   NOT NULL,
    text        TEXT   NOT NULL,
    opened_ms   BIGINT NOT NULL,
    closed_ms   BIGINT,
    webhook     TEXT   NOT NULL,
    enqueued_ms BIGINT NOT NULL,
    UNIQUE (incident, event)
);
CREATE TABLE alert_deliveries (
    destination TEXT   NOT NULL,
    seq         BIGINT NOT NULL REFERENCES alert_outbox (seq),
    state       TEXT   NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'refused')),
    attempts    BIGINT NOT NULL DEFAULT 0,
    done_ms     BIGINT,
    PRIMARY KEY (destination, seq)
);
CREATE INDEX alert_deliveries_pending ON alert_deliveries (state, destination, seq);
