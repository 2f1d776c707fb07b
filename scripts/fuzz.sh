#!/usr/bin/env bash
# Coverage-guided fuzzing of the decoders that read outside bytes (fuzz/, cargo fuzz with
# libFuzzer), each target for a bounded time:
#
#   scripts/fuzz.sh [TARGET...] [--seconds N]
#
# FUZZ_SEED=N fixes libFuzzer's random seed (CI sets 1, so that what passes on a machine passes
# there again: the same binary and seeds mutate the same way); unset, each run draws its own.
# Without a TARGET every target runs; N defaults to 60 seconds per target (CI runs 20). Each
# target starts from its committed seeds (fuzz/seeds/TARGET) and the corpus earlier runs grew on
# this machine (fuzz/corpus/TARGET, not committed). A crash stops the script with a non-zero
# status and leaves the input in fuzz/artifacts/TARGET/; reproduce it with
# `cargo fuzz run TARGET fuzz/artifacts/TARGET/<file>` from fuzz/ (with RUSTC_BOOTSTRAP=1).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=60
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done

if ! command -v cargo-fuzz >/dev/null; then
  echo "== installing cargo-fuzz"
  cargo install --locked cargo-fuzz --version 0.13.2
fi

# cargo fuzz passes unstable `-Z` flags to rustc; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP. No sanitizer: the workspace forbids unsafe code, so what the fuzzer looks
# for is panics, which need none, and the targets run several times faster without one.
export RUSTC_BOOTSTRAP=1
flags=(--sanitizer none)

if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list)
fi

echo "== building fuzz targets"
cargo fuzz build "${flags[@]}"

passed=0
for target in "${targets[@]}"; do
  echo "== fuzzing $target for ${seconds}s"
  mkdir -p "corpus/$target"
  cargo fuzz run "${flags[@]}" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 -seed="${FUZZ_SEED:-0}"
  passed=$((passed + 1))
done
echo "fuzz: $passed passed, 0 failed"
