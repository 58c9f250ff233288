#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (with
# librdkafka's in-process mock cluster), then the end-to-end test on a real
# Kafka-compatible broker (scripts/e2e.sh; installs tansu once) and the same over
# TLS and SASL with zstd input (scripts/e2e-security.sh; needs Debian's stunnel4,
# which .ci/run installs) and with a schema registry (scripts/e2e-registry.sh:
# Karapace from ../shared/vendor and confluent-kafka from PyPI, installed once
# into ~/.cache/nba-tools). The Open Bandit
# Dataset sample is fetched from PyPI once (scripts/fetch-obd.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
NBA_OBD_DIR=$(scripts/fetch-obd.sh) cargo test --workspace --release
scripts/e2e.sh
scripts/e2e-security.sh
scripts/e2e-registry.sh
