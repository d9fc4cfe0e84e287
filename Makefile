# Entry points. The scripts do the work; see the header of scripts/test.sh for the test layers.
.PHONY: dev test test-sql test-pgrx test-regress test-isolation test-chaos fmt lint setup

## dev: set up, install the extension, run `hatchet-server dev`
dev:
	bash scripts/dev.sh

## test: every layer (fmt, clippy, unit, pgrx, sql, cluster, upgrade, e2e, chaos, bench); last line `N passed, N failed`
test:
	bash scripts/test.sh

## test-sql: install the extension, pg_regress + isolation specs on a scratch cluster
test-sql:
	bash scripts/test.sh sql

test-regress:
	bash scripts/test.sh regress

test-isolation:
	bash scripts/test.sh isolation

## test-pgrx: cargo pgrx test pg15 (#[pg_test]s)
test-pgrx:
	bash scripts/test.sh pgrx

## test-chaos: the chaos suite's short run (3 server replicas, SDK workers, every fault kind once, history checker)
test-chaos:
	bash scripts/test.sh chaos

## fmt: format the workspace
fmt:
	cargo fmt --all

## lint: rustfmt check and clippy -D warnings
lint:
	bash scripts/test.sh fmt clippy

setup:
	bash scripts/setup.sh
