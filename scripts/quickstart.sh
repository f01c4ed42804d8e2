#!/usr/bin/env bash
# Install spoco-zoo and run the main job end to end on built-in synthetic sparse data:
# train (10% of objects annotated) -> export (bioimage.io zip) -> validate -> segment -> evaluate.
set -euo pipefail
cd "$(dirname "$0")/.."
SPOCO_EXTRAS=${SPOCO_EXTRAS:-test}  # no GUI needed: the napari extra is for the plugin and its tests
. scripts/_env.sh
OUT=${OUT:-runs/quickstart}
rm -rf "$OUT"
# the CPU preset (spoco_zoo/presets.py); STEPS=N overrides its step budget
spoco-zoo train --preset cpu --out "$OUT" ${STEPS:+--steps "$STEPS"} --object-fraction 0.1
spoco-zoo export "$OUT/best.pt" --output "$OUT/model.zip" --no-validate  # validated by the next command
spoco-zoo validate "$OUT/model.zip"
spoco-zoo synthetic "$OUT/test_data" --n 3 --seed 1234
spoco-zoo segment "$OUT"/test_data/images/*.tif --model "$OUT/model.zip" --output "$OUT/segmentation"
spoco-zoo evaluate "$OUT/segmentation" "$OUT/test_data/labels" --csv "$OUT/scores.csv"
echo "done: checkpoint $OUT/best.pt, package $OUT/model.zip, labels in $OUT/segmentation"
