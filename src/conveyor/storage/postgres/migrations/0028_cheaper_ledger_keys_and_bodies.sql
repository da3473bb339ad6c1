-- Three costs of the database server's in the million (issue 17), none changing a result.
--
-- The ledger's ids compared byte by byte: every btree descent on conveyor_deliveries' key
-- compared text ids with the database's collation, through strcoll and a locale look-up
-- (1.8% of the server's CPU in a perf profile of the million on a C.UTF-8 database, 0.8%
-- after). An id is an opaque key; "C" orders it by bytes, as SQLite does.
-- Changing a text column's collation rebuilds its indexes, not the table (the ledger is
-- locked meanwhile: 0.8 s for a million rows here).
ALTER TABLE conveyor_deliveries ALTER COLUMN id TYPE text COLLATE "C";
ALTER TABLE conveyor_delivery_events ALTER COLUMN delivery_id TYPE text COLLATE "C";

-- Room on each page for a row's two new versions (`begin`'s `sending`, then `finish`'s
-- outcome with its provider id), so that both are HOT updates (no index entries, no new
-- page): at fillfactor 70, 5,000 rows put 1,000 at a time and begun and finished 100 at a
-- time (as a lane does) left their page 2,437 times with 40-character provider ids; at 50,
-- 1,101; at 45, 173; at 40, none (750 with 120-character ids; at 35, none). In 250-row
-- statements the two updates cost 11 us a notification at 45 against 16 at 70. The table
-- takes more pages for the same rows, and stops growing by the versions that moved. Pages
-- written before keep their layout.
ALTER TABLE conveyor_deliveries SET (fillfactor = 40);

-- Message bodies (a notification envelope is tens of kB) compressed with lz4 where the
-- server was built with it: pglz_compress was 5.5% of the server's CPU in the same profile,
-- lz4 0.4%. Rows already stored keep their compression; both are read alike. The
-- setting does not pass from a partitioned table to its partitions: each slot, and the
-- unlogged queues' table, is set by name.
DO $$
DECLARE
    t regclass;
BEGIN
    IF EXISTS (SELECT FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        FOR t IN SELECT c.oid FROM pg_class c
                 WHERE c.relname LIKE 'conveyor\_messages%' AND c.relkind IN ('r', 'p')
                   AND c.relnamespace = (SELECT relnamespace FROM pg_class
                                         WHERE oid = 'conveyor_messages'::regclass)
        LOOP
            EXECUTE format('ALTER TABLE %s ALTER COLUMN body SET COMPRESSION lz4, '
                           'ALTER COLUMN attributes SET COMPRESSION lz4', t);
        END LOOP;
    END IF;
END $$;
