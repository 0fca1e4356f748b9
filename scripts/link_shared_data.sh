#!/usr/bin/env bash
# Link the offline datasets and forget lists from SHARED into the data root DEST (never copies
# dataset files into the repository). Does nothing when SHARED has no datasets.
set -euo pipefail
shared=${1:-../shared}
dest=${2:-data}
[ -d "$shared/datasets" ] || { echo "no $shared/datasets: using whatever is in $dest/"; exit 0; }
shared=$(cd "$shared" && pwd)
mkdir -p "$dest"
for name in MNIST FashionMNIST colorized-MNIST; do
  [ -e "$dest/$name" ] || ln -s "$shared/datasets/$name" "$dest/$name"
done
[ -e "$dest/forget_sets" ] || ln -s "$shared/forget_sets" "$dest/forget_sets"
