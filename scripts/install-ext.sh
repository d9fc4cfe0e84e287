#!/usr/bin/env bash
# scripts/install-ext.sh [--debug]: build pg_hatchet with `cargo pgrx package` and install it into the system
# Postgres 15 by renaming each file into place.
#
# Why not `cargo pgrx install`: it rewrites pg_hatchet.so in place (same inode), and every running backend that has
# the library mapped (all of them: it is preloaded) dies with SIGBUS. A rename leaves running clusters on the old
# file until they restart, so installing never crashes a cluster that is up.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
profile_flag=()
[[ "${1:-}" == "--debug" ]] && profile_flag=(--debug)

target="${CARGO_TARGET_DIR:-${ROOT}/target}"
out="${target}/pg_hatchet-package"
rm -rf "${out}"
printf '+ cargo pgrx package %s--pg-config %s --out-dir %s\n' "${profile_flag[*]:+${profile_flag[*]} }" "${PG_CONFIG}" "${out}"
(cd "${ROOT}/pg_hatchet" && cargo pgrx package "${profile_flag[@]}" --pg-config "${PG_CONFIG}" --out-dir "${out}")

as_root=()
[[ ${EUID} -eq 0 ]] || as_root=(sudo)

# Every packaged file goes to the same path under /, through a temporary name in the destination directory.
(cd "${out}" && find . -type f) | while read -r rel; do
    dest="/${rel#./}"
    tmp="$(dirname "${dest}")/.$(basename "${dest}").$$"
    "${as_root[@]}" mkdir -p "$(dirname "${dest}")"
    "${as_root[@]}" cp "${out}/${rel}" "${tmp}"
    "${as_root[@]}" chmod 644 "${tmp}"
    [[ "${dest}" != *.so ]] || "${as_root[@]}" chmod 755 "${tmp}"
    "${as_root[@]}" mv -f "${tmp}" "${dest}"
    printf 'installed %s\n' "${dest}"
done
