#!/usr/bin/env bash
# The whole benchmark in one command:
#
#   bash bench/run.sh [--size smoke|medium|full] [--systems a,b] [--scenarios x,y] [--reps N] [--reps-for name=N,...]
#
# Builds the SQL-path driver, installs the peers from their registries into bench/work/ (gitignored: npm packages
# pinned by bench/drivers/node/package-lock.json, PyPI packages by bench/drivers/python/requirements*.txt, Debian's
# redis-server), then runs bench/orchestrator/bench.py, which starts a scratch Postgres 15 cluster and writes
# bench/results/<date>-<size>/. Exit status 1 if any scenario x system run failed.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
WORK="$BENCH/work"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-bench}"
mkdir -p "$WORK"
say() { printf '[bench] %s\n' "$*"; }

# 1. The Rust driver for pg_hatchet and the SKIP LOCKED baseline (standalone crate, small dependency tree).
say "building hatchet-bench"
cargo build --release --quiet --manifest-path "$BENCH/Cargo.toml"

# 2. Node peers: Graphile Worker, pg-boss, and Hatchet's TypeScript SDK for the server scenario (exact versions from
#    the lock file; installed here, never at run time).
if ! cmp -s "$BENCH/drivers/node/package-lock.json" "$WORK/node/package-lock.json" 2>/dev/null \
   || [ ! -d "$WORK/node/node_modules" ]; then
  say "installing Graphile Worker, pg-boss and @hatchet-dev/typescript-sdk (npm)"
  mkdir -p "$WORK/node"
  cp "$BENCH/drivers/node/package.json" "$BENCH/drivers/node/package-lock.json" "$WORK/node/"
  (cd "$WORK/node" && npm ci --no-audit --no-fund --loglevel=error)
fi

# 3. Python peers: Procrastinate, Celery (+ the orchestrator's psycopg).
if [ ! -x "$WORK/venv/bin/python" ] || ! cmp -s "$BENCH/drivers/python/requirements.txt" "$WORK/venv/requirements.txt"; then
  say "installing Procrastinate and Celery (PyPI)"
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet --disable-pip-version-check -r "$BENCH/drivers/python/requirements.txt"
  cp "$BENCH/drivers/python/requirements.txt" "$WORK/venv/requirements.txt"
fi

# 4. Redis for Celery, from Debian.
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing redis-server (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null \
      || say "warning: redis-server could not be installed; Celery will be reported as not available"
  else
    say "warning: redis-server missing; Celery will be reported as not available"
  fi
fi

# 5. hatchet-server for the through-the-server scenario: a release build (a debug build is several times slower and
#    not what anyone deploys), into the same target dir. The smoke run only proves the path works, so it takes the
#    newest existing build instead of compiling one (release preferred); BENCH_HATCHET_SERVER overrides both.
size=smoke scenarios=""
prev=""
for a in "$@"; do
  case "$prev" in --size) size="$a" ;; --scenarios) scenarios="$a" ;; esac
  case "$a" in --size=*) size="${a#--size=}" ;; --scenarios=*) scenarios="${a#--scenarios=}" ;; esac
  prev="$a"
done
server="${BENCH_HATCHET_SERVER:-}"
if [ -z "$server" ] && [ "$size" != smoke ] && { [ -z "$scenarios" ] || [[ ",$scenarios," == *,server,* ]]; }; then
  say "building hatchet-server (release)"
  if cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p hatchet-server; then
    server="$CARGO_TARGET_DIR/release/hatchet-server"
    export BENCH_HATCHET_SERVER="$server"
  else
    say "warning: hatchet-server did not build; the server scenario uses an existing build if there is one"
  fi
fi
if [ -z "$server" ]; then
  server="$(ls -t "$ROOT"/target*/release/hatchet-server 2>/dev/null | head -1 || true)"
  [ -n "$server" ] || server="$(ls -t "$ROOT"/target*/debug/hatchet-server 2>/dev/null | head -1 || true)"
fi
[ -n "$server" ] || server="$(command -v hatchet-server || true)"
# 6. hatchet-sdk, only when there is a hatchet-server to talk to.
if [ -n "$server" ] && { [ ! -x "$WORK/venv-sdk/bin/python" ] \
     || ! cmp -s "$BENCH/drivers/python/requirements-sdk.txt" "$WORK/venv-sdk/requirements.txt"; }; then
  say "installing hatchet-sdk (PyPI) for the through-the-server scenario"
  python3 -m venv "$WORK/venv-sdk"
  "$WORK/venv-sdk/bin/pip" install --quiet --disable-pip-version-check -r "$BENCH/drivers/python/requirements-sdk.txt" \
    && cp "$BENCH/drivers/python/requirements-sdk.txt" "$WORK/venv-sdk/requirements.txt" \
    || say "warning: hatchet-sdk could not be installed; the server scenario will be skipped"
fi

cd "$ROOT"
exec "$WORK/venv/bin/python" "$BENCH/orchestrator/bench.py" --command "bash bench/run.sh $*" "$@"
