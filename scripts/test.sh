#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (with
# librdkafka's in-process mock cluster), then the end-to-end test on a real
# Kafka-compatible broker (scripts/e2e.sh; installs tansu once).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --release
scripts/e2e.sh
