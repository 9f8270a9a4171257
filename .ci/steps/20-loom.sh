#!/usr/bin/env bash
# loom models of the pool core (crates/kpool/src/core/loom_tests.rs).
# A separate target dir keeps the --cfg kpool_loom build from invalidating
# the normal one. Builds in about a minute on 2 cores; the models run in seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
# Exhaustive by default (a few seconds); set LOOM_MAX_PREEMPTIONS=2 or 3 to bound larger models.
RUSTFLAGS="--cfg kpool_loom" cargo test -p kpool --release --lib --locked --target-dir target/loom loom
