#!/usr/bin/env bash
# scripts/install-ext.sh [--debug]: build pg_hatchet with `cargo pgrx package` and install it into the system
# Postgres 15 by renaming each file into place.
#
# Why not `cargo pgrx install`: it rewrites pg_hatchet.so in place (same inode), and every running backend that has
# the library mapped (all of them: it is preloaded) dies with SIGBUS. A rename leaves running clusters on the old
# file until they restart, so installing never crashes a cluster that is up.
#
# Besides the packaged files (the library, the control file and the current version's generated install script) it
# installs the frozen install scripts of released versions (sql/releases/pg_hatchet--X.sql) and the upgrade scripts
# (sql/upgrades/pg_hatchet--A--B.sql), and removes any other pg_hatchet--*.sql from the extension directory, so that
# the versions and upgrade paths Postgres offers are exactly this checkout's (docs/releasing.md).
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

# The releases and upgrades go into the package's extension directory, beside the generated script (which wins over
# a release of the same version: the current version is always the generated one).
ext_dir="$("${PG_CONFIG}" --sharedir)/extension"
shopt -s nullglob
for script in "${ROOT}"/sql/releases/pg_hatchet--*.sql "${ROOT}"/sql/upgrades/pg_hatchet--*--*.sql; do
    [[ -e "${out}${ext_dir}/${script##*/}" ]] || cp "${script}" "${out}${ext_dir}/"
done
shopt -u nullglob

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

# Scripts of versions or upgrades this checkout does not have (deleted, renamed, or another branch's) would offer
# Postgres paths the checkout cannot vouch for.
for installed in "${ext_dir}"/pg_hatchet--*.sql; do
    [[ -e "${installed}" && ! -e "${out}${ext_dir}/${installed##*/}" ]] || continue
    "${as_root[@]}" rm -f "${installed}"
    printf 'removed %s\n' "${installed}"
done
