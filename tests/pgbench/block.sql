\set aid random(1, :accounts)
BEGIN;
SELECT abalance FROM accounts WHERE aid = :aid;
SELECT count(*) FROM history WHERE aid = :aid;
INSERT INTO history (aid, delta, tag, kind) VALUES (:aid, 0, :tag, 2);
INSERT INTO history (aid, delta, tag, kind) VALUES (:aid, 0, :tag, 2);
COMMIT;
