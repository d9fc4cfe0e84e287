#!/usr/bin/env bash
# pg_hatchet only works preloaded: in a cluster without shared_preload_libraries = 'pg_hatchet', CREATE EXTENSION
# (which loads the library) must fail with a clear error and a hint, and leave nothing behind.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")" || exit 2
source ../lib/scratch_cluster.sh
start_cluster_without_preload || exit 2
passed=0; failed=0
out="$(psql -X -q -c 'CREATE EXTENSION pg_hatchet' 2>&1)"
if grep -q 'pg_hatchet must be loaded via shared_preload_libraries' <<<"${out}" &&
   grep -q 'HINT:  Add pg_hatchet to shared_preload_libraries' <<<"${out}"; then
    echo "ok: CREATE EXTENSION without preloading fails with the error and hint"; passed=$((passed + 1))
else
    echo "FAILED: unexpected output: ${out}"; failed=$((failed + 1))
fi
if [[ "$(psql -X -qtA -c "SELECT count(*) FROM pg_extension WHERE extname = 'pg_hatchet'")" == 0 &&
      "$(psql -X -qtA -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'hatchet'")" == 0 ]]; then
    echo "ok: nothing was created"; passed=$((passed + 1))
else
    echo "FAILED: the failed CREATE EXTENSION left objects behind"; failed=$((failed + 1))
fi
echo "preload: ${passed} passed, ${failed} failed"
[[ ${failed} -eq 0 ]]
