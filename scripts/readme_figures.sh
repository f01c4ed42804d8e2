#!/usr/bin/env bash
# Make the README's pictures (docs/images/overlay.png, docs/images/training_curves.png):
# a short training on synthetic sparse data, then `spoco-zoo segment --overlay` on a held-out image.
# STEPS (default 600) sets the training length; OUT (default runs/readme) the working folder.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh
OUT=${OUT:-runs/readme}
STEPS=${STEPS:-600}
rm -rf "$OUT"
spoco-zoo train --out "$OUT" --steps "$STEPS" --object-fraction 0.1 --set val_every=100 --no-progress
spoco-zoo synthetic "$OUT/test_data" --n 1 --seed 4321
spoco-zoo segment "$OUT"/test_data/images/*.tif --checkpoint "$OUT/best.pt" --output "$OUT/segmentation" \
  --overlay --rois --no-progress
mkdir -p docs/images
cp "$OUT"/segmentation/*_overlay.png docs/images/overlay.png
cp "$OUT/training_curves.png" docs/images/training_curves.png
echo "wrote docs/images/overlay.png and docs/images/training_curves.png"
