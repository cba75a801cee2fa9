#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh
cargo test --workspace --locked
# The runtime's own tests with its default features (the workspace run has `otel` on).
cargo test -p axion-runtime --locked
