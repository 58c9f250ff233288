#!/usr/bin/env bash
# The latency curve of the live pipeline at set rates: tansu (in memory, 3
# partitions), the three stages of the retail example, and `nba load`, which
# sends interactions open-loop at each rate and times every next-best-action
# from when its trigger was due (corrected for coordinated omission).
#
#   NBA_LOAD_RATES  comma-separated interactions/s (default 250,500,1000,2000,4000)
#   NBA_LOAD_SECS   seconds per rate (default 20)
#   NBA_LOAD_OUT    directory for curve.json and curve.html (default: not kept)
#   NBA_LOAD_PORT   broker port (default 19292)
#   NBA_LOAD_KAFKA_CONFIG  librdkafka settings for every client, added to
#                   fetch.wait.max.ms=10 (e.g. linger.ms=0)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rates=${NBA_LOAD_RATES:-250,500,1000,2000,4000}
secs=${NBA_LOAD_SECS:-20}
port=${NBA_LOAD_PORT:-19292}

E2E_NAME=load-curve
# shellcheck source=scripts/e2e-lib.sh
source "$root/scripts/e2e-lib.sh"
out=${NBA_LOAD_OUT:-$work}
mkdir -p "$out"

EXTRA_KAFKA_CONFIG=${NBA_LOAD_KAFKA_CONFIG:-} start_retail_pipeline "$port"

echo "== nba load --rates $rates --secs $secs"
"$bin/nba" load --rates "$rates" --secs "$secs" --json --plot "$out/curve.html" 2>&1 \
  | grep -v CONFWARN | tee "$work/load.out"
tail -1 "$work/load.out" >"$out/curve.json"
missing=$(python3 -c 'import json,sys; print(sum(s["missing"] for s in json.load(open(sys.argv[1]))["steps"]))' "$out/curve.json")
[ "$missing" -eq 0 ] || { echo "$missing decisions never came back" >&2; exit 1; }
echo "load-curve OK ($out/curve.json)"
