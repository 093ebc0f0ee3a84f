#!/usr/bin/env bash
# Prepares a fresh machine for kdm: system packages (Debian), the Python virtualenv, and the
# local stack's Kafka jars and MariaDB server. Idempotent: a second run prints nothing and
# takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root for: $*"; exit 1; fi
}

apt_install() {
    local missing=()
    for pkg in "$@"; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]} from Debian's packages"
    local out
    out=$(mktemp)
    if ! { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$out" 2>&1; then
        cat "$out" >&2; rm -f "$out"; log "apt-get failed"; exit 1
    fi
    rm -f "$out"
}

need_cmd() { command -v "$1" >/dev/null 2>&1; }

pkgs=(mariadb-server mariadb-client)
need_cmd java || pkgs+=(default-jre-headless)
need_cmd mvn || pkgs+=(maven)
PY=${PYTHON:-python3}
need_cmd "$PY" || pkgs+=(python3)
# Debian's python3 lacks ensurepip until python3-venv is installed.
"$PY" -c "import ensurepip" 2>/dev/null || pkgs+=(python3-venv)
apt_install "${pkgs[@]}"

if [ ! -x .venv/bin/pip ]; then
    log "creating .venv"
    rm -rf .venv
    "$PY" -m venv .venv
fi
stamp=.venv/.kdm-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing kdm and its dependencies into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
    echo "$want" > "$stamp"
fi
.venv/bin/kdm stack install --quiet
