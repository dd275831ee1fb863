\set aid random(1, :accounts)
\set delta random(-5000, 5000)
UPDATE accounts SET abalance = abalance + :delta WHERE aid = :aid;
INSERT INTO history (aid, delta, tag, kind) VALUES (:aid, :delta, :tag, 1);
SELECT count(*) AS seen FROM history WHERE aid = :aid AND kind = 1 \gset
\if :seen < 1
  SELECT 1 / 0;
\endif
SELECT abalance FROM accounts WHERE aid = :aid;
