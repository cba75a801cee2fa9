#!/usr/bin/env bash
# CI smoke run of the cargo-fuzz targets (fuzz/): each runs FUZZ_SECONDS (default 45) with a
# fixed seed, on one core, from the committed corpus. Any crash fails the script (libFuzzer
# exits non-zero and leaves the input in fuzz/artifacts/<target>/).
#
# Uses nightly (AddressSanitizer) when rustup has it. Without nightly it runs on stable with
# `--sanitizer none` (cargo-fuzz supports that on stable: no -Z flags; coverage-guided all the
# same, and panics, hangs and huge allocations are what Rust code gets wrong), and says so;
# RUSTC_BOOTSTRAP=1 covers any -Z flag an older cargo-fuzz still passes. A failure to build
# fails the script: it never skips silently.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds="${FUZZ_SECONDS:-45}"
targets=(decode_message model_from_descriptors load_proto_text)

log() { printf '[fuzz-smoke] %s\n' "$*"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "cargo install cargo-fuzz (first time only)"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

if rustup run nightly rustc --version >/dev/null 2>&1; then
  fuzz=(cargo +nightly fuzz)
  build_flags=()
  log "toolchain: $(rustup run nightly rustc --version), AddressSanitizer"
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
  build_flags=(--sanitizer none)
  log "WARNING: no nightly toolchain; stable + RUSTC_BOOTSTRAP=1, --sanitizer none"
fi

cd fuzz
"${fuzz[@]}" build "${build_flags[@]}"
for target in "${targets[@]}"; do
  # New inputs go to a scratch dir, so the committed corpus stays as it is.
  scratch="$(mktemp -d)"
  log "$target: ${seconds}s"
  status=0
  "${fuzz[@]}" run "${build_flags[@]}" "$target" "$scratch" "corpus/$target" -- \
    -seed=1 -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 -print_final_stats=1 \
    >"$scratch.log" 2>&1 || status=$?
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$scratch.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$scratch.log"
  fi
  rm -f "$scratch.log"
  rm -rf "$scratch"
  if [ "$status" -ne 0 ]; then
    log "$target FAILED (exit $status): see fuzz/artifacts/$target/"
    exit 1
  fi
done
log "ok"
