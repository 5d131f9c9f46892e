-- modelwatch's store on PostgreSQL, version 2: a stored window is noted in the rollup and
-- evaluation queues by a trigger, in the statement that stores it, instead of two more
-- statements (two more round trips) per summary. A duplicate (ON CONFLICT DO NOTHING)
-- inserts no row and so queues nothing, as before.
CREATE FUNCTION windows_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO unrolled (key_id, deployment, window_start, instance, sequence)
        VALUES (NEW.key_id, NEW.deployment, NEW.window_start, NEW.instance, NEW.sequence);
    INSERT INTO unevaluated (key_id, deployment, window_start, instance, sequence)
        VALUES (NEW.key_id, NEW.deployment, NEW.window_start, NEW.instance, NEW.sequence);
    RETURN NULL;
END
$$;
CREATE TRIGGER windows_queued AFTER INSERT ON windows
    FOR EACH ROW EXECUTE FUNCTION windows_queued();
