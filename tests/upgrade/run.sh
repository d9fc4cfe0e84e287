#!/usr/bin/env bash
# tests/upgrade/run.sh: the upgrade chain, from every released version to the current one (docs/releasing.md).
#
# The chain comes from files: the current version is pg_hatchet's (the workspace version, which the control file's
# @CARGO_VERSION@ takes), every sql/releases/pg_hatchet--X.sql is a release to start from, and
# sql/upgrades/pg_hatchet--A--B.sql are the steps. The installed files must be this checkout's (scripts/test.sh runs
# scripts/install-ext.sh first, which installs the releases and upgrades too). On a scratch cluster (pg_hatchet
# preloaded, background worker off so that the test moves time itself, through hatchet.run_maintenance()):
#   1. each release has a path of upgrade scripts to the current version (and Postgres sees the same path);
#   2. database `fresh`: CREATE EXTENSION pg_hatchet (the current version) and a catalog dump (catalog.sql);
#   3. per release X, database `upgraded_X`: CREATE EXTENSION pg_hatchet VERSION 'X', work in every state
#      (before.sql), ALTER EXTENSION pg_hatchet UPDATE, the catalog dump must equal fresh's (any difference is printed),
#      then all that work finishes through the current version (after.sql).
# Every check prints `check ok: NAME` or `check FAILED: NAME` (what scripts/test.sh counts); the last line is
# `upgrade: N passed, N failed`. The catalog dumps, their diffs and the server log are kept in tests/results/upgrade/.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
ROOT="${PWD}"
HERE="${ROOT}/tests/upgrade"
EXT=pg_hatchet
passed=0
failed=0

ok() {
    printf 'check ok: %s\n' "$1"
    passed=$((passed + 1))
}
bad() {
    printf 'check FAILED: %s\n' "$1"
    failed=$((failed + 1))
}
WORK=""
finish() {
    # The dumps, diffs and server log stay in tests/results/upgrade/ (git-ignored) for reading after the run.
    if [[ -n "${WORK}" && -d "${WORK}" ]]; then
        rm -rf "${ROOT}/tests/results/upgrade"
        mkdir -p "${ROOT}/tests/results"
        cp -r "${WORK}" "${ROOT}/tests/results/upgrade"
        cp "${SCRATCH_DIR}/postgres.log" "${ROOT}/tests/results/upgrade/"
    fi
    printf 'upgrade: %d passed, %d failed\n' "${passed}" "${failed}"
    [[ ${failed} -eq 0 ]]
    exit
}

# --- the chain, from files

# The version `CREATE EXTENSION pg_hatchet` installs: the control file's default_version, or pg_hatchet's Cargo
# version when that is @CARGO_VERSION@ (as cargo pgrx package fills it in).
current_version() {
    local v
    v="$(sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" "${ROOT}/${EXT}/${EXT}.control")"
    if [[ "${v}" == "@CARGO_VERSION@" ]]; then
        v="$(cargo metadata --no-deps --format-version 1 --manifest-path "${ROOT}/Cargo.toml" |
            python3 -c 'import json, sys
print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "pg_hatchet"))')"
    fi
    printf '%s\n' "${v}"
}

# upgrade_path FROM TO: the shortest chain of sql/upgrades scripts, printed as `FROM -> ... -> TO`, or nothing.
upgrade_path() {
    python3 - "$1" "$2" "${ROOT}/sql/upgrades" <<'EOF'
import os, re, sys
start, goal, folder = sys.argv[1:]
edges = {}
for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
    m = re.fullmatch(r"pg_hatchet--(.+?)--(.+)\.sql", name)
    if m:
        edges.setdefault(m.group(1), []).append(m.group(2))
paths, seen = [[start]], {start}
while paths:
    path = paths.pop(0)
    if path[-1] == goal:
        print(" -> ".join(path))
        break
    for nxt in edges.get(path[-1], []):
        if nxt not in seen:
            seen.add(nxt)
            paths.append(path + [nxt])
EOF
}

CURRENT="$(current_version)"
if [[ -z "${CURRENT}" ]]; then
    bad "current version found (control file or Cargo.toml)"
    finish
fi
RELEASES=()
for f in "${ROOT}"/sql/releases/${EXT}--*.sql; do
    [[ -f "${f}" ]] || continue
    f="${f##*/${EXT}--}"
    RELEASES+=("${f%.sql}")
done
printf 'current version %s; released versions: %s\n' "${CURRENT}" "${RELEASES[*]:-none}"
if [[ ${#RELEASES[@]} -eq 0 ]]; then
    bad "at least one released version in sql/releases/"
    finish
fi

STARTS=() # the releases with a path to the current version
for x in "${RELEASES[@]}"; do
    if [[ "${x}" == "${CURRENT}" ]]; then
        bad "sql/releases/${EXT}--${x}.sql is the current version: a released version is frozen, bump the version"
        continue
    fi
    path="$(upgrade_path "${x}" "${CURRENT}")"
    if [[ -n "${path}" ]]; then
        ok "upgrade path ${path}"
        STARTS+=("${x}")
    else
        bad "upgrade path from ${x} to ${CURRENT}: no sql/upgrades/${EXT}--${x}--....sql chain reaches ${CURRENT}"
    fi
done

# --- the cluster

# shellcheck source=../lib/scratch_cluster.sh
source "${ROOT}/tests/lib/scratch_cluster.sh"
# _init_cluster: the scratch cluster without creating the extension (start_cluster creates the current version);
# the worker is off: the checks call hatchet.run_maintenance() themselves.
if ! _init_cluster fresh "hatchet.enable_worker = off" "lc_messages = 'C'"; then
    bad "scratch cluster starts"
    finish
fi
WORK="${SCRATCH_DIR}/upgrade"
mkdir -p "${WORK}"

# sql DB [psql args...]: psql without .psqlrc, stopping at the first error.
sql() {
    local db=$1
    shift
    psql -X -q -v ON_ERROR_STOP=1 -d "${db}" "$@"
}

# run_checks DB FILE LABEL: run a check file; show and count its check lines; a psql error is a failed check.
run_checks() {
    local db=$1 file=$2 label=$3 line stem
    stem="${WORK}/${db}.$(basename "${file}" .sql)"
    local out="${stem}.out" err="${stem}.err"
    sql "${db}" -f "${file}" >"${out}" 2>"${err}"
    local rc=$?
    while IFS= read -r line; do
        case "${line}" in
            "check ok: "*) ok "${line#check ok: }" ;;
            "check FAILED: "*) bad "${line#check FAILED: }" ;;
        esac
    done <"${out}"
    if [[ ${rc} -eq 0 ]]; then
        ok "${label} ran to the end"
    else
        bad "${label} ran to the end (psql exit ${rc}):"
        cat "${err}"
    fi
}

# The current version, fresh.
if sql fresh -c "CREATE EXTENSION ${EXT}" 2>"${WORK}/fresh.err" &&
    [[ "$(sql fresh -tAc "SELECT extversion FROM pg_extension WHERE extname = '${EXT}'")" == "${CURRENT}" ]]; then
    ok "CREATE EXTENSION ${EXT} installs ${CURRENT}"
else
    bad "CREATE EXTENSION ${EXT} installs ${CURRENT}"
    cat "${WORK}/fresh.err"
    finish
fi
if ! sql fresh -f "${HERE}/catalog.sql" >"${WORK}/fresh.catalog" 2>"${WORK}/fresh.catalog.err" ||
    ! grep -q "^extension ${EXT}:" "${WORK}/fresh.catalog"; then
    bad "catalog of the fresh install"
    cat "${WORK}/fresh.catalog.err"
    finish
fi
printf 'catalog of a fresh %s: %d lines\n' "${CURRENT}" "$(wc -l <"${WORK}/fresh.catalog")"

for x in "${STARTS[@]}"; do
    db="upgraded_${x//[^0-9A-Za-z]/_}"
    printf -- '--- from %s (database %s)\n' "${x}" "${db}"
    sql postgres -c "CREATE DATABASE ${db}" >/dev/null
    paths="$(sql postgres -tAc "SELECT path FROM pg_extension_update_paths('${EXT}')
                                 WHERE source = '${x}' AND target = '${CURRENT}'")"
    if [[ -n "${paths}" ]]; then
        ok "${x}: Postgres finds the update path ${paths}"
    else
        bad "${x}: Postgres finds an update path to ${CURRENT} (are this checkout's scripts installed?)"
        continue
    fi
    if ! sql "${db}" -c "CREATE EXTENSION ${EXT} VERSION '${x}'" 2>"${WORK}/${db}.create.err"; then
        bad "${x}: CREATE EXTENSION ${EXT} VERSION '${x}' (with the current library)"
        cat "${WORK}/${db}.create.err"
        continue
    fi
    ok "${x}: CREATE EXTENSION ${EXT} VERSION '${x}' (with the current library)"
    run_checks "${db}" "${HERE}/before.sql" "${x}: work in every state"
    if ! sql "${db}" -c "ALTER EXTENSION ${EXT} UPDATE" 2>"${WORK}/${db}.update.err"; then
        bad "${x}: ALTER EXTENSION ${EXT} UPDATE"
        cat "${WORK}/${db}.update.err"
        continue
    fi
    got="$(sql "${db}" -tAc "SELECT extversion FROM pg_extension WHERE extname = '${EXT}'")"
    if [[ "${got}" == "${CURRENT}" ]]; then
        ok "${x}: ALTER EXTENSION ${EXT} UPDATE reaches ${CURRENT}"
    else
        bad "${x}: ALTER EXTENSION ${EXT} UPDATE reaches ${CURRENT} (extversion ${got})"
    fi
    if sql "${db}" -f "${HERE}/catalog.sql" >"${WORK}/${db}.catalog" 2>"${WORK}/${db}.catalog.err"; then
        if diff -u --label "fresh ${CURRENT}" --label "${x} upgraded to ${CURRENT}" \
            "${WORK}/fresh.catalog" "${WORK}/${db}.catalog" >"${WORK}/${db}.diff"; then
            ok "${x}: catalog after the upgrade equals a fresh install ($(wc -l <"${WORK}/fresh.catalog") lines)"
        else
            bad "${x}: catalog after the upgrade equals a fresh install; the differences:"
            cat "${WORK}/${db}.diff"
        fi
    else
        bad "${x}: catalog after the upgrade"
        cat "${WORK}/${db}.catalog.err"
    fi
    run_checks "${db}" "${HERE}/after.sql" "${x}: the work finishes after the upgrade"
done

# A crash hides behind passing checks (a backend dying in C code is only in the server log).
if grep -Eq 'PANIC|terminated by signal|terminated by exception' "${SCRATCH_DIR}/postgres.log"; then
    bad "no crash in the server log:"
    grep -E 'PANIC|terminated by signal|terminated by exception' "${SCRATCH_DIR}/postgres.log"
else
    ok "no crash in the server log"
fi
finish
