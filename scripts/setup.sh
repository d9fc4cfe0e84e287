#!/usr/bin/env bash
# scripts/setup.sh: bootstrap a bare Debian 12 machine for building and testing pg_hatchet.
#
# Idempotent: every step checks first and skips what is already there, so a second run takes about a second and
# touches no network. Safe to run unattended (CI=true, no stdin). Steps:
#   1. Debian packages (only the missing ones; `apt-get update` only if something is missing)
#   2. cargo-pgrx 0.18.0 (pgrx 0.19 needs rustc 1.96; we are on 1.95, see DESIGN.md "Platform facts")
#   3. `cargo pgrx init` against the system Postgres 15 (no downloads)
#   4. a Python venv at .venv with the end-to-end test requirements
#
# Run as root (CI) or as a user with sudo (a laptop).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PG_MAJOR=15
PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config"
PGRX_VERSION=0.18.0

# What the build and the tests need from Debian. bindgen (pgrx-pg-sys) needs libclang; tonic's build script needs
# protoc; `cargo pgrx test --runas postgres` needs sudo; pg_regress comes with postgresql-server-dev. The dashboard's
# browser tests (tests/e2e/test_dashboard.py) drive Debian's chromium through its chromium-driver: no browser is
# ever downloaded.
APT_PACKAGES=(
    postgresql-"${PG_MAJOR}"
    postgresql-server-dev-"${PG_MAJOR}"
    libclang-dev
    clang
    gcc
    libc6-dev
    make
    sudo
    pkg-config
    libssl-dev
    protobuf-compiler
    ca-certificates
    chromium
    chromium-driver
)

# Python packages for the end-to-end layer (tests/e2e). Add to this list; the venv is refreshed when it changes.
PY_REQUIREMENTS=(
    hatchet-sdk==1.43.1
    pytest
    pytest-asyncio==1.5.0
    aiosmtpd==1.4.6
    fastapi==0.163.2
    uvicorn==0.54.0
    httpx==0.28.1
    psycopg[binary]==3.3.9
    selenium==4.51.0
    # hatchet-sdk's HatchetInstrumentor (tests/e2e/test_traces.py): the OpenTelemetry SDK and its OTLP gRPC exporter
    opentelemetry-sdk==1.45.2
    opentelemetry-exporter-otlp-proto-grpc==1.45.2
    opentelemetry-instrumentation==0.66b2
)

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [[ ${EUID} -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -- "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

install_apt_packages() {
    local missing=() pkg
    local wanted=("${APT_PACKAGES[@]}")
    # `python3 -m venv` needs ensurepip, which Debian ships separately in python3-venv.
    if ! command -v python3 >/dev/null 2>&1; then
        wanted+=(python3 python3-venv)
    elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        wanted+=(python3-venv)
    fi
    for pkg in "${wanted[@]}"; do
        is_installed "${pkg}" || missing+=("${pkg}")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "apt packages: all present"
        return
    fi
    say "apt packages: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

check_rust() {
    if [[ -d "${HOME}/.cargo/bin" && ":${PATH}:" != *":${HOME}/.cargo/bin:"* ]]; then
        export PATH="${HOME}/.cargo/bin:${PATH}"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust 1.95 (rustup) first"
    say "rust: $(rustc --version)"
    local component
    for component in rustfmt clippy; do
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            say "rust: adding component ${component}"
            rustup component add "${component}" </dev/null || die "rust component ${component} is missing"
        fi
    done
}

install_cargo_pgrx() {
    local have
    have="$(cargo pgrx --version 2>/dev/null || true)"
    if [[ "${have}" == "cargo-pgrx ${PGRX_VERSION}" ]]; then
        say "cargo-pgrx: ${PGRX_VERSION} present"
        return
    fi
    say "cargo-pgrx: installing ${PGRX_VERSION} (found: ${have:-none}; takes about 5 minutes)"
    cargo install cargo-pgrx --version "${PGRX_VERSION}" --locked </dev/null
}

init_pgrx() {
    local config="${PGRX_HOME:-${HOME}/.pgrx}/config.toml"
    if [[ -f "${config}" ]] && grep -Eq "^pg${PG_MAJOR}[[:space:]]*=" "${config}"; then
        say "pgrx: pg${PG_MAJOR} already configured in ${config}"
        return
    fi
    [[ -x "${PG_CONFIG}" ]] || die "${PG_CONFIG} not found (postgresql-server-dev-${PG_MAJOR} missing?)"
    say "pgrx: cargo pgrx init --pg${PG_MAJOR} ${PG_CONFIG}"
    cargo pgrx init --pg"${PG_MAJOR}" "${PG_CONFIG}" </dev/null
}

# Create .venv if needed and install PY_REQUIREMENTS. A stamp file records what was installed so that a rerun
# with unchanged requirements costs nothing and needs no network.
install_python_requirements() {
    local venv=.venv stamp=.venv/.requirements
    local wanted
    wanted="$(printf '%s\n' "${PY_REQUIREMENTS[@]}")"
    if [[ ! -x "${venv}/bin/python" ]]; then
        say "python: creating ${venv}"
        python3 -m venv "${venv}"
    fi
    if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${wanted}" ]]; then
        say "python: ${venv} up to date (${PY_REQUIREMENTS[*]})"
        return
    fi
    say "python: pip install ${PY_REQUIREMENTS[*]}"
    "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_REQUIREMENTS[@]}" </dev/null
    printf '%s\n' "${wanted}" >"${stamp}"
}

install_apt_packages
check_rust
install_cargo_pgrx
init_pgrx
install_python_requirements
say "done"
