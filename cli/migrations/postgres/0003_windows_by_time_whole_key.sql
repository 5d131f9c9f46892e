-- modelwatch's store on PostgreSQL, version 3: `windows_by_time` holds the whole key.
-- A window is read back by its key (the rollups, the watch's drain). Without statistics
-- (a fresh or busy table), the planner's generic plan chose `windows_by_time` for that
-- lookup over the primary key and filtered every window of the same deployment and
-- minute: a fleet's windows all share them, so each lookup read them all (10,000 windows
-- rolled up in 25 s instead of 2). With the whole key in it, either index finds the row
-- at once; scans by deployment and time still use its first two columns.
DROP INDEX windows_by_time;
CREATE INDEX windows_by_time ON windows (deployment, window_start, instance, sequence, key_id);
