#!/usr/bin/env bash
# Smoke run of the benchmark (benches/): every cell for a few milliseconds, so
# the harness and every pool adapter keep compiling and working. It never
# measures anything: the real run is `cargo run --release -p kpool-bench`.
# Dev profile: CI's test step has already built the dependencies that way.
# It fails if kpool leaves a task stuck or gets an error in any cell.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --locked -p kpool-bench -- --quick --grace-ms 1000 --json target/kpool-bench/smoke.json > /dev/null
echo "bench smoke: ok"
