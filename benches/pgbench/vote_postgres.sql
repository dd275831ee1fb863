\set phone random(2000000000, 9999999999)
\set contestant random(1, 6)
SELECT vote(:phone, :contestant, 2);
