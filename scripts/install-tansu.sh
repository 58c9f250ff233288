#!/usr/bin/env bash
# Installs tansu 0.6.0 (a Kafka-compatible broker, from crates.io) once, then
# reuses it. Prints the path of the binary on stdout.
#
#   NBA_TOOLS_DIR   where tools are kept (default: ~/.cache/nba-tools)
#
# The first install compiles for 15-25 minutes on 2 cores.
set -euo pipefail
version=0.6.0
tools=${NBA_TOOLS_DIR:-$HOME/.cache/nba-tools}
root="$tools/tansu-$version"
bin="$root/bin/tansu"
if [ ! -x "$bin" ]; then
  mkdir -p "$tools"
  echo "installing tansu $version into $root (once; 15-25 min on 2 cores)..." >&2
  cargo install tansu --version "$version" --locked --features dynostore,libsql \
    --root "$root" >&2
fi
echo "$bin"
