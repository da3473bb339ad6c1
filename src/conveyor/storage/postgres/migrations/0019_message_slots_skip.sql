-- Sixteen message slots instead of four, and the pointer skips a slot that still holds rows.
--
-- Why: with four slots the pointer could only move into the next one, so a backlog in any
-- slot held it where it was once it came round (15 s later), and every message sent meanwhile
-- piled into the current slot, which cannot be truncated while current: under a held xmin
-- its consumed entries grew without bound and the claims that walk them crawled. Now the
-- pointer moves every few seconds into the next EMPTY slot (postgres_maintenance.py), so a
-- backlog holds only its own slots while the others keep rotating; with sixteen, over a
-- minute of backlog (at one slot per 5 s) fits before the pointer has nowhere to go.
-- `previous` names the slot the pointer left last: its rows get a slot's time to be acked,
-- and it takes the stragglers of the slots being emptied, so nothing is ever moved into the
-- current slot.
--
-- Additive: nodes of the previous version keep writing to the slot the pointer names and
-- move it only into the next slot when that one is empty (they never truncate s4..s15,
-- which they do not know; the new nodes do).

CREATE TABLE conveyor_messages_s4 PARTITION OF conveyor_messages FOR VALUES IN (4)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE conveyor_messages_s5 PARTITION OF conveyor_messages FOR VALUES IN (5)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE conveyor_messages_s6 PARTITION OF conveyor_messages FOR VALUES IN (6)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE conveyor_messages_s7 PARTITION OF conveyor_messages FOR VALUES IN (7)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE conveyor_messages_s8 PARTITION OF conveyor_messages FOR VALUES IN (8)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE conveyor_messages_s9 PARTITION OF conveyor_messages FOR VALUES IN (9)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE conveyor_messages_s10 PARTITION OF conveyor_messages FOR VALUES IN (10)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE conveyor_messages_s11 PARTITION OF conveyor_messages FOR VALUES IN (11)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE conveyor_messages_s12 PARTITION OF conveyor_messages FOR VALUES IN (12)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE conveyor_messages_s13 PARTITION OF conveyor_messages FOR VALUES IN (13)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE conveyor_messages_s14 PARTITION OF conveyor_messages FOR VALUES IN (14)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE conveyor_messages_s15 PARTITION OF conveyor_messages FOR VALUES IN (15)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);

ALTER TABLE conveyor_message_rotation ADD COLUMN previous smallint;

-- The unlogged table is one heap, not rotated: it is for fire-and-forget queues, and
-- conveyor VACUUMs it itself (postgres_maintenance.py: CHURNING).

-- The slot before the current one, as the four-slot rotation had it.
UPDATE conveyor_message_rotation SET previous = (slot + 3) % 4;
