-- SQL consumers and registered workers both claim
SELECT count(*) FROM hatchet.dequeue('stress', 'pgbench', 4);
SELECT count(*) FROM hatchet.assign(max_tasks => 4);
