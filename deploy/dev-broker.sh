#!/usr/bin/env bash
# The local Kafka-compatible broker the tests use: installs tansu 0.6.0 once
# (scripts/install-tansu.sh), starts it on 127.0.0.1 and creates nba's topics
# (`nba topics create`, built here if need be).
#
#   deploy/dev-broker.sh start [PORT] [PARTITIONS] [DIR]   # default 9092 3 ./.dev-broker
#   deploy/dev-broker.sh stop [DIR]
#
# DIR keeps tansu.pid and tansu.log. Storage is in memory; set
# NBA_BROKER_STORAGE=sqlite to keep the data in DIR/tansu.db across restarts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-start}

case "$cmd" in
start)
  port=${2:-9092}
  partitions=${3:-3}
  dir=${4:-$root/.dev-broker}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  tansu=$("$root/scripts/install-tansu.sh")
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: pick another port (deploy/dev-broker.sh start PORT)" >&2
    exit 1
  fi
  storage=memory://tansu/
  # tansu 0.6.0 opens a sqlite path relative to its working directory (an
  # absolute one included), so it runs in DIR with a relative path.
  if [ "${NBA_BROKER_STORAGE:-memory}" = sqlite ]; then storage="sqlite://tansu.db"; fi
  (cd "$dir" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "$storage" >"$dir/tansu.log" 2>&1) &
  echo $! >"$dir/tansu.pid"
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  cargo build --release --quiet -p nba-cli --manifest-path "$root/Cargo.toml"
  "$root/target/release/nba" topics create --brokers "127.0.0.1:$port" --partitions "$partitions" \
    >>"$dir/tansu.log" 2>&1
  echo "tansu on 127.0.0.1:$port (pid $(cat "$dir/tansu.pid"), log $dir/tansu.log)" >&2
  ;;
stop)
  dir=${2:-$root/.dev-broker}
  if [ -f "$dir/tansu.pid" ]; then
    kill -TERM "$(cat "$dir/tansu.pid")" 2>/dev/null || true
    rm -f "$dir/tansu.pid"
  fi
  ;;
*)
  echo "usage: deploy/dev-broker.sh start [PORT] [PARTITIONS] [DIR] | stop [DIR]" >&2
  exit 2
  ;;
esac
