#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (with
# librdkafka's in-process mock cluster), then end to end on a real
# Kafka-compatible broker: scripts/e2e.sh (installs tansu once), the same over
# TLS and SASL with zstd input (scripts/e2e-security.sh), and with a schema
# registry (scripts/e2e-registry.sh: Karapace from ../shared/vendor and
# confluent-kafka from PyPI, installed once into ~/.cache/nba-tools), and a
# closed loop whose simulated customers answer the live decisions
# (scripts/e2e-closed-loop.sh), and a short latency curve under open-loop
# load (scripts/load-curve.sh at two low rates), the plumbing baseline's
# harness on a small backlog (scripts/relay-baseline.sh), and 30 s of mutation
# fuzzing of every stage's inputs (fuzz-stages). The Open
# Bandit Dataset sample is fetched from PyPI once (scripts/fetch-obd.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# From Debian, once: stunnel4 and openssl (the TLS terminator and certificates
# of e2e-security.sh), curl and patch (install-tansu.sh fetches tansu's
# sources and applies its fix; e2e-registry.sh talks to the registry with curl),
# and HdrHistogram's Java HistogramLogProcessor, to check our interval logs
# against it (e2e.sh skips that check without it), and libsasl2-dev, which the
# `gssapi` feature (Kerberos) builds against, and gdb, with which a
# mock-cluster test that hangs prints every thread's stack before failing.
if { ! command -v stunnel4 >/dev/null || ! command -v openssl >/dev/null || ! command -v curl >/dev/null \
  || ! command -v patch >/dev/null \
  || ! [ -f /usr/share/java/hdrhistogram.jar ] || ! [ -f /usr/include/sasl/sasl.h ] \
  || ! command -v gdb >/dev/null; } && command -v apt-get >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  packages="stunnel4 openssl curl patch libhdrhistogram-java default-jre-headless libsasl2-dev gdb"
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq $packages >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq $packages >/dev/null; } \
    || echo "warning: could not install $packages with apt-get; the end-to-end tests that need them will say so" >&2
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
NBA_OBD_DIR=$(scripts/fetch-obd.sh) cargo test --workspace --release
if [ -f /usr/include/sasl/sasl.h ]; then
  cargo test --release -p nba-kafka --features gssapi --test security
else
  echo "(GSSAPI clients not tested: libsasl2-dev is not installed)"
fi
scripts/e2e.sh
scripts/e2e-security.sh
scripts/e2e-registry.sh
scripts/e2e-closed-loop.sh
NBA_LOAD_RATES=100,200 NBA_LOAD_SECS=3 scripts/load-curve.sh
# The plumbing baseline's harness, on a small backlog (the figures in
# BENCHMARKS.md use 300,000).
NBA_RELAY_EVENTS=20000 scripts/relay-baseline.sh
# Mutated records of every topic a stage reads: no panic (the 10-minute run
# is in BENCHMARKS.md).
cargo run --release --quiet -p nba-benches --bin fuzz-stages -- --secs 30
