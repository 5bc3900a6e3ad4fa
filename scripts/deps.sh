#!/usr/bin/env bash
# Install, with apt-get, the Debian packages the tests need when they are missing.
# Called by `make test`; safe to run again (it installs nothing when all is there).
# --build: only what building needs (make run on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --build ]; then
    pkgs=(make gcc libssl-dev zlib1g-dev libbrotli-dev media-types)
else
pkgs=(make gcc clang libclang-rt-14-dev python3 python3-pytest curl wget git perl procps
      libssl-dev openssl) # HTTPS: the library, and the CLI the TLS tests make certificates with
# static sites: --compress (zlib, brotli) and the types of /etc/mime.types
pkgs+=(zlib1g-dev libbrotli-dev media-types)
# the browser tests (test_tls.py, test_static_sites.py): headless Chromium, and
# certutil to give it a throw-away NSS trust store holding the test CA
pkgs+=(chromium libnss3-tools)
# forkload's https tests compare its counts with h2load's
pkgs+=(nghttp2-client)
# gateways' tests may list more (one package per line)
for f in scripts/deps-*.txt; do
    [ -f "$f" ] || continue
    while read -r p; do
        p=${p%%#*}
        [ -n "${p// }" ] && pkgs+=("$p")
    done < "$f"
done
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
