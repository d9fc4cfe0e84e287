# Sourced by the self-contained test scripts: a throwaway Postgres 15 cluster with pg_hatchet preloaded, run as the
# postgres user (Postgres refuses root), on a unix socket in its own directory, removed on exit.
#   start_cluster DBNAME [extra postgresql.conf lines...]   sets PGHOST PGPORT PGDATABASE PGUSER, creates DBNAME and
#                                                          the extension, waits for the background worker
#   start_cluster_without_preload                          the same cluster without shared_preload_libraries
#   restart_cluster                                        pg_ctl restart (same data directory)
#   stop_cluster                                           stop and remove everything (also run on EXIT)
PG_BIN="${HATCHET_PG_BIN_DIR:-/usr/lib/postgresql/15/bin}"
SCRATCH_DIR=""

_as_postgres() {
    if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_cluster() {
    _init_cluster "$@" || return 1
    psql -X -q -c "CREATE EXTENSION pg_hatchet" >/dev/null
    [[ " $* " == *"hatchet.enable_worker = off"* ]] || wait_for_worker
}

# A cluster that does not preload the library (to test that the extension refuses it).
start_cluster_without_preload() {
    PRELOAD="" _init_cluster scratch
}

_init_cluster() {
    local db="$1"; shift
    SCRATCH_DIR="$(mktemp -d /tmp/pg_hatchet-scratch.XXXXXX)"
    chmod 755 "${SCRATCH_DIR}"
    [[ "$(id -u)" == 0 ]] && chown postgres "${SCRATCH_DIR}"
    _as_postgres "${PG_BIN}/initdb" -D "${SCRATCH_DIR}/pgdata" -A trust -U postgres >/dev/null
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    {
        if [[ -n "${PRELOAD-pg_hatchet}" ]]; then echo "shared_preload_libraries = 'pg_hatchet'"; fi
        echo "hatchet.database_name = '${db}'"
        echo "port = ${port}"
        echo "unix_socket_directories = '${SCRATCH_DIR}'"
        echo "listen_addresses = ''"
        echo "fsync = off"
        echo "max_connections = 100"
        for line in "$@"; do echo "${line}"; done
    } >>"${SCRATCH_DIR}/pgdata/postgresql.conf"
    _as_postgres "${PG_BIN}/pg_ctl" -D "${SCRATCH_DIR}/pgdata" -l "${SCRATCH_DIR}/postgres.log" -w start >/dev/null
    export PGHOST="${SCRATCH_DIR}" PGPORT="${port}" PGUSER=postgres PGDATABASE="${db}"
    trap stop_cluster EXIT
    psql -X -q -d postgres -c "CREATE DATABASE \"${db}\"" >/dev/null
}

# The worker connects to hatchet.database_name, which did not exist at server start: it retries every 5 s.
wait_for_worker() {
    for _ in $(seq 1 100); do
        if [[ "$(psql -X -qtA -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_hatchet'")" == 1 ]]; then
            return 0
        fi
        sleep 0.2
    done
    echo "the pg_hatchet background worker did not start" >&2
    return 1
}

restart_cluster() {
    _as_postgres "${PG_BIN}/pg_ctl" -D "${SCRATCH_DIR}/pgdata" -l "${SCRATCH_DIR}/postgres.log" -w -m fast restart >/dev/null
    wait_for_worker
}

stop_cluster() {
    if [[ -n "${SCRATCH_DIR}" && -d "${SCRATCH_DIR}/pgdata" ]]; then
        _as_postgres "${PG_BIN}/pg_ctl" -D "${SCRATCH_DIR}/pgdata" -w -m immediate stop >/dev/null 2>&1 || true
        rm -rf "${SCRATCH_DIR}"
    fi
    SCRATCH_DIR=""
}
