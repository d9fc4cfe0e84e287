#!/usr/bin/env bash
# scripts/dev.sh: `make dev`. Set the machine up, install the extension into the system Postgres 15, then run
# `hatchet-server dev` (a local cluster with pg_hatchet preloaded, a dev token, gRPC + REST). Extra arguments go to
# `hatchet-server dev`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -d "${HOME}/.cargo/bin" && ":${PATH}:" != *":${HOME}/.cargo/bin:"* ]]; then
    export PATH="${HOME}/.cargo/bin:${PATH}"
fi

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config

bash scripts/setup.sh

# package + rename into place: a running cluster keeps its mapped library instead of crashing
PG_CONFIG="${PG_CONFIG}" bash scripts/install-ext.sh

printf 'dev: cargo run --release -p hatchet-server -- dev %s\n' "$*"
exec cargo run --release -p hatchet-server -- dev "$@"
