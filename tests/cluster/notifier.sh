#!/usr/bin/env bash
# hatchet_ready wake-ups go through the notifier process (pg_hatchet/src/wake.rs): a transaction that makes work
# ready is only marked, and after it commits the notifier sends one NOTIFY for all commits since its last one. These
# checks use a LISTENing psql session and look at who sent each notification and with which payload: the notifier
# (empty payload), or the producing session itself (payload = queue name) on the fallback paths.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")" || exit 2
source ../lib/scratch_cluster.sh
start_cluster notify_db || exit 2
passed=0; failed=0
ok() { echo "ok: $1"; passed=$((passed + 1)); }
bad() { echo "FAILED: $1"; failed=$((failed + 1)); }

notifier_pid() {
    psql -X -qtA -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_hatchet notifier'"
}
wait_for_notifier() {
    for _ in $(seq 1 100); do
        [[ -n "$(notifier_pid)" ]] && return 0
        sleep 0.1
    done
    return 1
}
# listen_while "SQL" [psql options]: run SQL in another session (from a file: each statement its own transaction
# unless the SQL says BEGIN) while a session LISTENs; print the notifications that session received during it and
# the 300 ms after it, one per line as "PID|payload".
listen_while() {
    local sql="$1"; shift
    local script producer
    script="$(mktemp)"; producer="$(mktemp)"
    chmod 644 "${producer}"
    printf '%s\n' "${sql}" >"${producer}"
    {
        echo "LISTEN hatchet_ready;"
        printf '\\! psql -X -q -v ON_ERROR_STOP=1 %s -f %s >/dev/null\n' "$*" "${producer}"
        echo "SELECT pg_sleep(0.3);"
    } >"${script}"
    psql -X -q -At -f "${script}" 2>&1 |
        sed -nE 's/^Asynchronous notification "hatchet_ready"( with payload "([^"]*)")? received from server process with PID ([0-9]+)\.$/\3|\2/p'
    rm -f "${script}" "${producer}"
}

wait_for_notifier || { echo "the notifier did not start"; exit 1; }
pid="$(notifier_pid)"
if [[ "$(psql -X -qtA -c "SELECT datname || '|' || application_name FROM pg_stat_activity WHERE pid = ${pid}")" \
      == "notify_db|pg_hatchet notifier" ]]; then
    ok "the notifier runs in hatchet.database_name, named in pg_stat_activity"
else
    bad "notifier not connected to notify_db as 'pg_hatchet notifier'"
fi

got="$(listen_while "SELECT hatchet.enqueue('nq')")"
if [[ "${got}" == "${pid}|" ]]; then
    ok "a committed enqueue is announced once, by the notifier, with an empty payload"
else
    bad "committed enqueue: expected exactly '${pid}|', got '${got}'"
fi

got="$(listen_while "BEGIN; SELECT hatchet.enqueue('nq'); ROLLBACK;")"
if [[ -z "${got}" ]]; then
    ok "a rolled-back enqueue is not announced"
else
    bad "rolled-back enqueue was announced: '${got}'"
fi

# 200 single-task transactions in a row: every one commits, and the last of them is followed by a notification.
before="$(psql -X -qtA -c "SELECT count(*) FROM hatchet.ready_queue WHERE queue = 'burst'")"
got="$(listen_while "$(printf "SELECT hatchet.enqueue('burst');\n%.0s" $(seq 1 200))")"
after="$(psql -X -qtA -c "SELECT count(*) FROM hatchet.ready_queue WHERE queue = 'burst'")"
n="$(grep -c . <<<"${got}")"
if [[ $((after - before)) == 200 && "${n}" -ge 1 && "${n}" -le 200 ]] && ! grep -qv "^${pid}|$" <<<"${got}"; then
    ok "200 enqueue transactions: all queued, ${n} notification(s), all from the notifier"
else
    bad "burst: queued $((after - before)), notifications '${got}'"
fi

got="$(listen_while "SET hatchet.deferred_notify = off; SELECT hatchet.enqueue('nq');")"
if [[ "${got}" =~ ^[0-9]+\|nq$ && "${got%%|*}" != "${pid}" ]]; then
    ok "with hatchet.deferred_notify = off the enqueuing session notifies itself, payload = queue"
else
    bad "deferred_notify off: expected one notification with payload nq from the producer, got '${got}'"
fi

# A session in another database: the notifier's NOTIFY would not reach its listeners, so it notifies itself.
psql -X -q -d postgres -c "CREATE DATABASE other_db" >/dev/null
psql -X -q -d other_db -c "CREATE EXTENSION pg_hatchet" >/dev/null
got="$(PGDATABASE=other_db listen_while "SELECT hatchet.enqueue('oq')" -d other_db)"
if [[ "${got}" =~ ^[0-9]+\|oq$ ]]; then
    ok "in a database without the notifier, an enqueue notifies itself"
else
    bad "other database: expected one notification with payload oq, got '${got}'"
fi

# Notifier gone (restarted by the postmaster after 1 s): enqueues notify directly meanwhile, nothing is lost.
psql -X -q -c "SELECT pg_terminate_backend(${pid})" >/dev/null
for _ in $(seq 1 50); do [[ "$(notifier_pid)" != "${pid}" ]] && break; sleep 0.01; done
got="$(listen_while "SELECT hatchet.enqueue('nq')")"
if [[ "$(notifier_pid)" == "" && "${got}" =~ ^[0-9]+\|nq$ ]] ||
   [[ -n "$(notifier_pid)" && -n "${got}" ]]; then
    ok "while the notifier restarts, an enqueue is still announced (${got//$'\n'/,})"
else
    bad "no notification while the notifier was down: '${got}'"
fi
if wait_for_notifier && new_pid="$(notifier_pid)" && [[ "${new_pid}" != "${pid}" ]]; then
    sleep 0.2
    got="$(listen_while "SELECT hatchet.enqueue('nq')")"
    if [[ "${got}" == "${new_pid}|" ]]; then
        ok "the restarted notifier takes over again"
    else
        bad "after restart: expected '${new_pid}|', got '${got}'"
    fi
else
    bad "the notifier was not restarted"
fi

echo "notifier: ${passed} passed, ${failed} failed"
[[ ${failed} -eq 0 ]]
