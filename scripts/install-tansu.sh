#!/usr/bin/env bash
# Installs tansu 0.6.0 (a Kafka-compatible broker, from crates.io) once, then
# reuses it. Prints the path of the binary on stdout.
#
#   NBA_TOOLS_DIR   where tools are kept (default: ~/.cache/nba-tools)
#
# One fix is applied to the crates.io sources (scripts/tansu-auth-reauth.patch,
# in tansu-auth): tansu 0.6.0 grants every SASL session 60 s, then answers the
# re-authentication that librdkafka makes before it ends (KIP-368) with
# "Unsupported SASL mechanism", so every SASL connection failed once a minute
# and librdkafka, re-authenticating, sometimes crashed or stalled for a minute.
# The patch lets an authenticated connection authenticate again. The rest is
# tansu 0.6.0 with its published Cargo.lock.
#
# The first install compiles for 15-25 minutes on 2 cores.
set -euo pipefail
version=0.6.0
patch_file="$(cd "$(dirname "$0")" && pwd)/tansu-auth-reauth.patch"
tools=${NBA_TOOLS_DIR:-$HOME/.cache/nba-tools}
root="$tools/tansu-$version-reauth"
bin="$root/bin/tansu"
if [ ! -x "$bin" ]; then
  command -v curl >/dev/null || { echo "installing tansu needs curl: apt-get install curl" >&2; exit 1; }
  command -v patch >/dev/null || { echo "installing tansu needs patch: apt-get install patch" >&2; exit 1; }
  echo "installing tansu $version (with $patch_file) into $root (once; 15-25 min on 2 cores)..." >&2
  src=$(mktemp -d -t tansu-src.XXXXXX)
  for crate in tansu tansu-auth; do
    curl -sSfL "https://static.crates.io/crates/$crate/$crate-$version.crate" | tar -xz -C "$src"
  done
  patch -d "$src/tansu-auth-$version" -p1 <"$patch_file" >&2
  printf '\n[patch.crates-io]\ntansu-auth = { path = "../tansu-auth-%s" }\n' "$version" \
    >>"$src/tansu-$version/Cargo.toml"
  # cargo build, not cargo install: it keeps the published Cargo.lock (only
  # the patched crate's entry changes).
  (cd "$src/tansu-$version" && cargo build --release --features dynostore,libsql \
    --target-dir "$src/target" >&2)
  mkdir -p "$root/bin"
  cp "$src/target/release/tansu" "$bin.partial"
  mv "$bin.partial" "$bin"
  rm -rf "$src"
fi
echo "$bin"
