#!/usr/bin/env bash
# Fetches the Open Bandit Dataset sample (ZOZOTOWN, CC BY 4.0) from the obp
# 0.5.7 source distribution on PyPI (1.3 MB; no other network) and extracts its
# CSVs. Prints the directory holding random/ and bts/ on stdout.
#
#   NBA_DATA_DIR   where to keep it (default: ~/.cache/nba-data)
set -euo pipefail
data=${NBA_DATA_DIR:-$HOME/.cache/nba-data}
obd="$data/obp-0.5.7/obp/dataset/obd"
if [ ! -f "$obd/random/all/all.csv" ]; then
  mkdir -p "$data"
  python3 -m pip download --quiet --no-deps --no-binary :all: --ignore-requires-python \
    obp==0.5.7 -d "$data" >&2
  tar -xzf "$data/obp-0.5.7.tar.gz" -C "$data" obp-0.5.7/obp/dataset/obd
fi
echo "$obd"
