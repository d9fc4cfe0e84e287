-- measurement only: 30 more day partitions of every partitioned table (as a database keeping a month of history has)
SELECT count(*) FROM hatchet.maintain_partitions(days_ahead => 33);
