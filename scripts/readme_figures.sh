#!/usr/bin/env bash
# Make the README's pictures (docs/images/overlay.png, docs/images/training_curves.png,
# docs/images/evaluate.png): a short training on synthetic sparse data, then
# `spoco-zoo segment --overlay` and `spoco-zoo evaluate --figures` on a held-out image.
# STEPS (default 600) sets the training length; OUT (default runs/readme) the working folder;
# RUN=folder of an existing training run (with best.pt, config.yaml and metrics.csv) skips the training
# (its curves are redrawn from metrics.csv).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh
OUT=${OUT:-runs/readme}
STEPS=${STEPS:-600}
rm -rf "$OUT"
RUN=${RUN:-}
if [ -z "$RUN" ]; then
  RUN="$OUT/run"
  spoco-zoo train --out "$RUN" --steps "$STEPS" --object-fraction 0.1 --set val_every=100 --no-progress
fi
# a held-out image like the training data (its shape and density)
SHAPE_ARGS=$(python -c "import yaml; s=yaml.safe_load(open('$RUN/config.yaml'))['data']['synthetic']; \
print(' '.join(f'--shape {v}' for v in s['shape']), '--n-objects', s['n_objects'])")
# shellcheck disable=SC2086
spoco-zoo synthetic "$OUT/test_data" --n 1 --seed 4321 $SHAPE_ARGS
spoco-zoo segment "$OUT"/test_data/images/*.tif --checkpoint "$RUN/best.pt" --output "$OUT/segmentation" \
  --overlay --rois --no-progress
spoco-zoo evaluate "$OUT/segmentation" "$OUT/test_data/labels" --figures "$OUT/figures" \
  --images "$OUT/test_data/images"
mkdir -p docs/images
cp "$OUT"/segmentation/*_overlay.png docs/images/overlay.png
cp "$OUT"/figures/*.png docs/images/evaluate.png
python -c "from spoco_zoo.train.history import plot_history; plot_history('$RUN/metrics.csv', 'docs/images/training_curves.png')"
echo "wrote docs/images/overlay.png, docs/images/evaluate.png and docs/images/training_curves.png"
