-- Ops accounts read no thread and belong to no team (docs/staff.md, "Who sees what").
--
-- `confide staff add --role ops` used to require --team, so existing ops accounts are members
-- of a team, and that membership put them on the team's inbox, in "Assign to" and in its mail
-- (issue 12, finding 3). The application now ignores an ops account's teams; this removes them,
-- and any thread an ops account was assigned to is left unassigned (a restricted one stays
-- visible to the team's managers only). Safe to run again: it only deletes and clears.
DELETE FROM staff_teams st USING staff s WHERE s.id = st.staff_id AND s.role = 'ops';
UPDATE threads t SET assignee_id = NULL FROM staff s WHERE s.id = t.assignee_id AND s.role = 'ops';

-- Restricted threads are few; the restricted digests (sql.deadlines.queue_restricted_digests)
-- start from them instead of reading every running clock.
CREATE INDEX IF NOT EXISTS threads_restricted ON threads (team_id) WHERE restricted;
