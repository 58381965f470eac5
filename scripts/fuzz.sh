#!/usr/bin/env bash
# Runs every fuzz target (fuzz/libfuzzer, cargo-fuzz + libFuzzer, coverage-guided) for
# SECONDS each (default 60), starting from the seed corpus built from the real agent
# fixtures (fuzz/src/lib.rs, seeds). CI runs it with a short time; run it longer by hand:
#   bash scripts/fuzz.sh 600            # ten minutes per target
#   bash scripts/fuzz.sh 60 v2_body     # one target
# A crash stops the run (exit 1); its input is in fuzz/libfuzzer/artifacts/<target>/:
# fix the bug, then copy the input to fuzz/regressions/<target>/ (cargo test replays it).
# cargo-fuzz is installed once into ${SQUALL_CACHE:-~/.cache/squall}/cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(v2_body v1_body payload alert_config)

cache=${SQUALL_CACHE:-$HOME/.cache/squall}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  if [ ! -x "$cache/cargo-fuzz/bin/cargo-fuzz" ]; then
    echo "installing cargo-fuzz into $cache/cargo-fuzz" >&2
    cargo install cargo-fuzz --version 0.13.2 --locked --root "$cache/cargo-fuzz" >&2
  fi
  export PATH="$cache/cargo-fuzz/bin:$PATH"
fi

target_dir=${CARGO_TARGET_DIR:-target}
corpus="$target_dir/fuzz-corpus"
cargo run -q --locked -p squall-fuzz --bin seed-corpus -- "$corpus"
# cargo-fuzz passes nightly-only flags to rustc; this machine has one stable toolchain.
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${seconds}s"
  # Safe Rust: no address sanitizer needed to find panics, overflows and hangs (debug
  # assertions are on). -rss_limit_mb: a decompression bomb that got through would show.
  set +e
  cargo fuzz run --fuzz-dir fuzz/libfuzzer --target-dir "$target_dir/libfuzzer" \
    --sanitizer none "$t" "$corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 2>&1 \
    | grep -v -e '^#[0-9]' -e '^"' -e 'ecommended dictionary' -e 'NEW_FUNC' -e '^INFO'
  status=${PIPESTATUS[0]}
  set -e
  [ "$status" -eq 0 ] || { echo "fuzz $t: failed (exit $status; see above)"; exit 1; }
done
