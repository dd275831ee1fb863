#!/usr/bin/env bash
# Crash soak: many kill -9 cycles of tests/crash.rs against a release build.
#   benches/crash_soak.sh [cycles] [seeds]
# Each seed runs `cycles` cycles (clients drive transfers, votes, inserts and blocks; the server is killed with
# SIGKILL at a random moment, restarted, and checked). Prints each seed, so a failure can be repeated with
# LANEDB_CRASH_SEED.
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=${1:-50}
seeds=${2:-1}
for _ in $(seq "$seeds"); do
    seed=$RANDOM$RANDOM
    echo "seed $seed, $cycles cycles"
    LANEDB_CRASH_CYCLES=$cycles LANEDB_CRASH_SEED=$seed \
        cargo test --release --locked --test crash -- --nocapture 2>&1 | grep -E "^cycle|test result|panicked|lost|half"
done
