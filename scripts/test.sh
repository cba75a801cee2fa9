#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh
cargo test --workspace --locked
# The runtime as a service gets it (default features, no `edge`/`otel`): its unit tests and
# doc examples; its integration tests ran above.
cargo test -p axion-runtime --locked --lib
cargo test -p axion-runtime --locked --doc
