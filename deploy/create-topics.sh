#!/usr/bin/env bash
# Creates nba's topics on a tansu broker: create-topics.sh [HOST:PORT] [PARTITIONS]
# (On Apache Kafka, use kafka-topics.sh --create with the same names.)
set -euo pipefail
broker=${1:-127.0.0.1:9092}
partitions=${2:-3}
tansu=${TANSU:-$("$(dirname "$0")/../scripts/install-tansu.sh")}
for t in nba.interactions.raw nba.interactions nba.decision-requests nba.rewards nba.next-best-actions nba.dlq nba.model-deltas; do
  "$tansu" topic create "$t" --partitions "$partitions" --broker "tcp://$broker"
done
# The feature-aggregator's changelog: compacted, as many partitions as nba.interactions.
"$tansu" topic create nba.customer-state --partitions "$partitions" --config cleanup.policy=compact \
  --broker "tcp://$broker"
# Catalog versions (`nba catalog publish`), compacted by deployment name; read
# whole by every feature-aggregator and model-updater.
"$tansu" topic create nba.catalog --partitions 1 --config cleanup.policy=compact \
  --broker "tcp://$broker"
