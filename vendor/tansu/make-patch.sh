#!/usr/bin/env bash
# Writes axion.patch: every vendored source file that differs from its crates.io 0.6.0 original
# (fetched into cargo's registry cache first). Run it after changing a vendored crate.
set -euo pipefail
cd "$(dirname "$0")"
crates=(tansu-broker tansu-storage tansu-cli)
fetch=$(mktemp -d)
trap 'rm -rf "$fetch"' EXIT
mkdir -p "$fetch/src" && echo 'fn main() {}' > "$fetch/src/main.rs"
{
  printf '[package]\nname = "fetch-originals"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n'
  for c in "${crates[@]}"; do printf '%s = "=0.6.0"\n' "$c"; done
} > "$fetch/Cargo.toml"
cargo fetch --quiet --manifest-path "$fetch/Cargo.toml"
registry=$(dirname "$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/tansu-broker-0.6.0 | head -1)")
: > axion.patch
for c in "${crates[@]}"; do
  (cd "$c" && find . -type f -name '*.rs' | LC_ALL=C sort) | while read -r f; do
    f=${f#./}
    original="$registry/$c-0.6.0/$f"
    if [ -f "$original" ] && ! cmp -s "$original" "$c/$f"; then
      diff -u --label "a/$c/$f" --label "b/$c/$f" "$original" "$c/$f" >> axion.patch || true
    fi
  done
done
echo "axion.patch: $(grep -c '^+++ ' axion.patch) files"
