#!/usr/bin/env bash
# scripts/private-pg.sh DIR: a private copy of the system Postgres 15 installation in DIR, for testing one work tree's
# build while other work trees on the same machine test theirs. Postgres finds its files relative to its binaries,
# so the copy works where it is; install-ext.sh (through the layers) then installs into the copy, never into the
# system directories other clusters have mapped. Prints the two variables the test scripts read:
#
#   eval "$(bash scripts/private-pg.sh /tmp/mine-pg)"
#   SKIP_SETUP=1 bash scripts/test.sh sql upgrade e2e     # the pgrx layer still uses the system installation
#
# HATCHET_PG_BIN_DIR is read by scripts/test.sh, tests/lib/scratch_cluster.sh, the chaos and sdk-parity scripts,
# bench/ and hatchet-server (dev, and its tests); HATCHET_TEST_LOCK replaces the machine-wide test lock.
set -euo pipefail
dir="${1:?usage: scripts/private-pg.sh DIR}"
system=/usr/lib/postgresql/15
if [[ ! -x "${dir}/lib/postgresql/15/bin/postgres" ]]; then
    mkdir -p "${dir}/lib/postgresql" "${dir}/share/postgresql"
    cp -a "${system}" "${dir}/lib/postgresql/"
    cp -a /usr/share/postgresql/15 "${dir}/share/postgresql/"
    # The postgres user runs the servers: it must reach the copy.
    chmod -R a+rX "${dir}"
    chmod a+rwx "${dir}"
fi
bin="$(cd "${dir}/lib/postgresql/15/bin" && pwd)"
[[ "$("${bin}/pg_config" --sharedir)" == "$(cd "${dir}/share/postgresql/15" && pwd)" ]] ||
    { echo "private-pg: ${bin}/pg_config does not point into ${dir}" >&2; exit 1; }
printf 'export HATCHET_PG_BIN_DIR=%s\n' "${bin}"
printf 'export HATCHET_TEST_LOCK=%s\n' "$(cd "${dir}" && pwd)/test.lock"
