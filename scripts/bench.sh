#!/usr/bin/env bash
# Benchmarks of issue 7, one command, unattended, < 10 min on 2 cores (after `bash scripts/setup.sh`
# and with warm builds; the first run also compiles the bench binaries):
#   1. codegen: axion-gen generate vs protoc + tonic-prost-build (benches/protoc-route) on 420
#      googleapis files (npm google-proto-files 5.0.3, list in benches/codegen/corpus.txt),
#      wall time and peak RSS; and scaling on a file with 1k..8k custom options;
#   2. build: does a no-op `cargo build` rerun build.rs, does touching one .proto; timings;
#   3. transport (cargo bench --bench transport): generated Rust, NestJS and raw rdkafka on one
#      tansu broker per round, events, server RSS and CPU;
#   tree (not in the default run, ~3 min a round): both codegen routes on the whole
#      google-proto-files tree (8,017 files; axion-gen with --pattern-scheme package).
# BENCH_PARTS picks the parts (default "codegen build transport"; e.g. BENCH_PARTS="codegen tree").
# Each figure is the median of BENCH_ROUNDS runs (default 3; the transport: BENCH_TRANSPORT_ROUNDS,
# default 5, as its 64-in-flight figures swing most) with min–max; both sides of every ratio are
# measured in the same run. Results: $BENCH_OUT (default benches/results/):
# codegen.json/.md, build.json/.md, transport.json/.md, and summary.md (all of them).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
ROUNDS="${BENCH_ROUNDS:-3}"
TRANSPORT_ROUNDS="${BENCH_TRANSPORT_ROUNDS:-5}"
PARTS=" ${BENCH_PARTS:-codegen build transport} "
part() { [[ "$PARTS" == *" $1 "* ]]; }
OUT="${BENCH_OUT:-benches/results}"
TARGET="${CARGO_TARGET_DIR:-target}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
started=$SECONDS

for tool in protoc node tansu npm python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run bash scripts/setup.sh" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time (apt-get install time)" >&2; exit 1; }
[ -f tests/nest/dist/client.js ] || { echo "NestJS peer not built: run bash scripts/setup.sh" >&2; exit 1; }

# The corpus (npm, pinned by benches/codegen/package-lock.json).
corpus_pkg=benches/codegen
stamp="$corpus_pkg/node_modules/.bench-lock-stamp"
if [ ! -f "$stamp" ] || ! cmp -s "$corpus_pkg/package-lock.json" "$stamp"; then
  log "npm ci in $corpus_pkg (google-proto-files)"
  (cd "$corpus_pkg" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$corpus_pkg/package-lock.json" "$stamp"
fi
CORPUS="$corpus_pkg/node_modules/google-proto-files"

log "building (not timed): axion-gen, benches/protoc-route, the transport bench"
cargo build --release --bin axion-gen -q
cargo build --release --locked -q --manifest-path benches/protoc-route/Cargo.toml \
  --target-dir "$TARGET/protoc-route"
if part transport; then
  cargo bench --bench transport --no-run -q 2>/dev/null || cargo bench --bench transport --no-run
fi
AXION="$TARGET/release/axion-gen"
PROTOC_ROUTE="$TARGET/protoc-route/release/protoc-route"

timed() { # label run -- command...: appends label, run, seconds, max RSS KB
  local label="$1" run="$2"; shift 3
  /usr/bin/time -f "%e\t%M" -o "$TMP/time" "$@" >"$TMP/log" 2>&1 \
    || { cat "$TMP/log" >&2; echo "failed: $*" >&2; exit 1; }
  printf '%s\t%s\t%s\n' "$label" "$run" "$(cat "$TMP/time")"
}

# 1. Codegen, alternating the routes each round.
if part codegen; then
log "codegen: $(wc -l < benches/codegen/corpus.txt) files, $ROUNDS rounds"
mapfile -t inputs < <(sed "s|^|$CORPUS/|" benches/codegen/corpus.txt)
: > "$OUT/codegen.tsv"
for run in $(seq 1 "$ROUNDS"); do
  rm -rf "$TMP/ax" "$TMP/pr"
  timed "axion-gen" "$run" -- "$AXION" generate --skip-unsupported --include "$CORPUS" \
    --out "$TMP/ax" "${inputs[@]}" >> "$OUT/codegen.tsv"
  timed "protoc + tonic-prost-build" "$run" -- "$PROTOC_ROUTE" "$TMP/pr" "$CORPUS" \
    benches/codegen/corpus.txt >> "$OUT/codegen.tsv"
  timed "protoc alone (descriptor set)" "$run" -- protoc -I "$CORPUS" --include_imports \
    -o "$TMP/set.pb" $(cat benches/codegen/corpus.txt) >> "$OUT/codegen.tsv"
done
log "codegen: files with many custom options"
: > "$OUT/options.tsv"
for n in 1000 2000 4000 8000; do
  mkdir -p "$TMP/opt$n"
  python3 benches/codegen/options_proto.py "$n" > "$TMP/opt$n/options.proto"
  for run in $(seq 1 "$ROUNDS"); do
    rm -rf "$TMP/optout"
    printf 'axion-gen\t%s\t' "$n" >> "$OUT/options.tsv"
    timed x "$run" -- "$AXION" generate --proto-dir "$TMP/opt$n" --out "$TMP/optout" \
      | cut -f2- >> "$OUT/options.tsv"
    printf 'protoc (descriptor set)\t%s\t' "$n" >> "$OUT/options.tsv"
    timed x "$run" -- protoc -I "$TMP/opt$n" -o "$TMP/opt.pb" options.proto \
      | cut -f2- >> "$OUT/options.tsv"
  done
done
python3 benches/stats.py codegen "$OUT" >/dev/null
fi

# The whole tree: every proto of the package but the google/protobuf/ copies (whose compiler
# test files import files the package lacks); API versions collide under the service scheme.
if part tree; then
  (cd "$CORPUS" && find google grafeas -name '*.proto' -not -path 'google/protobuf/*' | sort) \
    > "$TMP/tree.txt"
  mapfile -t tree < <(sed "s|^|$CORPUS/|" "$TMP/tree.txt")
  log "tree: $(wc -l < "$TMP/tree.txt") files, $ROUNDS rounds"
  : > "$OUT/tree.tsv"
  for run in $(seq 1 "$ROUNDS"); do
    rm -rf "$TMP/ax" "$TMP/pr"
    timed "axion-gen" "$run" -- "$AXION" generate --pattern-scheme package --skip-unsupported \
      --include "$CORPUS" --out "$TMP/ax" "${tree[@]}" >> "$OUT/tree.tsv"
    timed "protoc + tonic-prost-build" "$run" -- "$PROTOC_ROUTE" "$TMP/pr" "$CORPUS" \
      "$TMP/tree.txt" >> "$OUT/tree.tsv"
  done
  python3 benches/stats.py tree "$OUT" >/dev/null
fi

# 2. Build: no-op vs one touched .proto (its mtime is restored afterwards).
if part build; then
log "build: no-op and touched .proto, $ROUNDS rounds each"
cargo build -p axion-gen-cli --examples -q
proto=proto/axion/graph/v1/graph.proto
touch -r "$proto" "$TMP/mtime"
: > "$OUT/build.tsv"
build_once() { # case run
  local t0 t1 ran=0
  t0=$(date +%s.%N)
  cargo build -p axion-gen-cli --examples -v > "$TMP/build.log" 2>&1
  t1=$(date +%s.%N)
  grep -q "Running .*axion-gen-cli-[0-9a-f]*/build-script-build" "$TMP/build.log" && ran=1
  printf '%s\t%s\t%.2f\t%s\n' "$1" "$2" "$(echo "$t1 - $t0" | bc)" "$ran" >> "$OUT/build.tsv"
}
for run in $(seq 1 "$ROUNDS"); do
  build_once "no-op" "$run"
  touch "$proto"
  build_once "touch one .proto" "$run"
done
touch -r "$TMP/mtime" "$proto"
python3 benches/stats.py build "$OUT" >/dev/null
fi

# 3. Transport.
if part transport; then
  log "transport: $TRANSPORT_ROUNDS rounds"
  BENCH_ROUNDS="$TRANSPORT_ROUNDS" BENCH_JSON="$OUT/transport.json" \
    cargo bench --bench transport -q 2>"$TMP/transport.err" | tee "$OUT/transport.md" \
    || { cat "$TMP/transport.err" >&2; exit 1; }
fi

{
  echo "# Benchmark results ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $ROUNDS rounds, transport $TRANSPORT_ROUNDS; median (min–max))"
  echo
  if part codegen; then echo "## Codegen (420 googleapis files)"; echo; cat "$OUT/codegen.md"; echo; fi
  if part tree; then echo "## Codegen (the whole google-proto-files tree)"; echo; cat "$OUT/tree.md"; echo; fi
  if part build; then echo "## Build"; echo; cat "$OUT/build.md"; echo; fi
  if part transport; then echo "## Transport"; cat "$OUT/transport.md"; fi
  echo; echo "Total bench time: $(( SECONDS - started )) s"
} > "$OUT/summary.md"
cat "$OUT/summary.md"
log "done in $(( SECONDS - started )) s; results in $OUT"
