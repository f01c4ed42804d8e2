"""Real data first: SPOCO vs the classical pipeline on a real fluorescence nuclei image.

The shared development image (``../shared/data/nuclei-dsb2018-left``: 512x256 pixels of a 2018
Data Science Bowl image with dense labels) is split in two: the **top** 256 rows train, the
**bottom** 256 rows are scored with every nucleus's ground truth. Each run trains as a user would,
``spoco-zoo train --preset PRESET --images top.tif --labels top_labels.tif --object-fraction F``
(no validation images: the trainer sets part of the annotations aside itself), and segments the
bottom with the checkpoint's recommended segmentation (``spoco-zoo segment --checkpoint``'s steps).
The classical pipeline (blur + Otsu + distance watershed, :mod:`spoco_zoo.baselines`) is scored
on the same bottom half with its defaults and with the best of a small grid tuned on that half
itself (an upper bound for a user who tunes by eye).

    python benchmarks/real_nuclei.py                          # 100 % and 10 %, the cpu preset
    python benchmarks/real_nuclei.py --runs 0.1 --steps 600   # a quick look
    python benchmarks/real_nuclei.py --reuse                  # re-score existing checkpoints

Every model is scored twice: with its recommended clustering (mean-shift of the embeddings inside
the foreground channel) and with ``--method watershed`` (the foreground channel split by shape).
Prints one table (SBD, mAP, AP50, objects found) with the classical rows beside the trained ones;
``--json`` writes the same figures. Nothing here is needed by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nuclei-dsb2018-left"
#: Rows of the shared image that train; the rest is scored.
SPLIT_ROW = 256


def split_data(data: Path, out: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """Write the training (top) half to ``out``; return its paths and the bottom image and labels."""
    import tifffile
    from skimage.segmentation import relabel_sequential

    image = tifffile.imread(data / "image.tif")
    labels = tifffile.imread(data / "labels.tif")
    out.mkdir(parents=True, exist_ok=True)
    train_image, train_labels = out / "top.tif", out / "top_labels.tif"
    tifffile.imwrite(train_image, image[:SPLIT_ROW])
    tifffile.imwrite(train_labels, relabel_sequential(labels[:SPLIT_ROW])[0].astype(np.uint16))
    test_labels = relabel_sequential(labels[SPLIT_ROW:])[0].astype(np.int64)
    return train_image, train_labels, image[SPLIT_ROW:], test_labels


def train(fraction: float, args: argparse.Namespace, images: Path, labels: Path, env: dict[str, str]) -> float:
    out = args.out / f"spoco-{fraction:g}"
    if (out / "best.pt").exists() and args.reuse:
        print(f"[{fraction:g}] reusing {out / 'best.pt'}", flush=True)
        return float("nan")
    cmd = [sys.executable, "-m", "spoco_zoo.cli.main", "train", "--preset", args.preset, "--out", str(out)]
    cmd += ["--images", str(images), "--labels", str(labels), "--object-fraction", str(fraction), "--no-progress"]
    if args.steps is not None:
        cmd += ["--steps", str(args.steps)]
    for item in args.set:
        cmd += ["--set", item]
    out.mkdir(parents=True, exist_ok=True)
    print(f"[{fraction:g}] {' '.join(cmd[2:])}", flush=True)
    tick = time.perf_counter()
    with open(out / "train.log", "wb") as log:
        code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - tick
    print(f"[{fraction:g}] trained in {seconds:.0f} s: {'ok' if code == 0 else f'FAILED, see {out}/train.log'}")
    return seconds


def segment(checkpoint: Path, image: np.ndarray, device: str, method: str | None = None) -> np.ndarray:
    """``spoco-zoo segment --checkpoint [--method METHOD]``'s labels of one raw 2D image."""
    from spoco_zoo.cluster import cluster_embeddings
    from spoco_zoo.data.normalize import normalize
    from spoco_zoo.inference import predict_embeddings
    from spoco_zoo.train.checkpoint import load_model

    model, config = load_model(checkpoint)
    normalised = normalize(image[None].astype(np.float32), config.data.normalization)
    emb = predict_embeddings(model, normalised, None, 0, model.size_step, device)
    return cluster_embeddings(emb, **config.recommended_clustering(method))


def scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from spoco_zoo.metrics import evaluate_instances

    result = evaluate_instances(pred, truth)
    return {"sbd": result["sbd"], "map": result["map"], "ap50": result["ap50"], "objects": float(pred.max())}


def classical_rows(image: np.ndarray, truth: np.ndarray) -> dict[str, dict[str, float]]:
    from spoco_zoo.baselines import classical_segmentation

    rows = {"classical (defaults)": scores(classical_segmentation(image), truth)}
    grid = [(s, d) for s in (1.0, 2.0) for d in (3, 4, 5, 7)]
    tuned = {p: scores(classical_segmentation(image, sigma=p[0], min_distance=p[1]), truth) for p in grid}
    best = max(grid, key=lambda p: tuned[p]["sbd"] + tuned[p]["map"])
    rows[f"classical, tuned on the scored half (sigma {best[0]:g}, min_distance {best[1]})"] = tuned[best]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="folder with image.tif and labels.tif")
    parser.add_argument("--preset", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--steps", type=int, default=None, help="step budget per run (default: the preset's)")
    parser.add_argument("--runs", default="1.0,0.1", help="comma-separated annotated fractions")
    parser.add_argument("--set", action="append", default=[], help="config override passed to every run")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained side by side")
    parser.add_argument("--out", type=Path, default=Path("runs/real_nuclei"))
    parser.add_argument("--reuse", action="store_true", help="score existing checkpoints without training")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not (args.data / "image.tif").exists():
        parser.error(f"{args.data}: no image.tif (the shared development image); pass --data")

    started = time.perf_counter()
    train_image, train_labels, test_image, truth = split_data(args.data, args.out / "data")
    fractions = [float(f) for f in args.runs.split(",") if f.strip()]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, args.jobs))))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        seconds = dict(zip(fractions, pool.map(lambda f: train(f, args, train_image, train_labels, env), fractions)))

    rows: dict[str, dict[str, Any]] = classical_rows(test_image.astype(np.float32), truth)
    for fraction in fractions:
        checkpoint = args.out / f"spoco-{fraction:g}" / "best.pt"
        if checkpoint.exists():
            pred = segment(checkpoint, test_image, args.device)
            rows[f"spoco-zoo, {100 * fraction:g} % of the nuclei annotated"] = {
                **scores(pred, truth),
                "train_s": seconds[fraction],
            }
            # the same model's foreground channel split by shape (segment --method watershed)
            pred = segment(checkpoint, test_image, args.device, "watershed")
            rows[f"same model, --method watershed ({100 * fraction:g} %)"] = scores(pred, truth)
    print()
    print(
        f"real nuclei (DSB2018): trained on rows 0-{SPLIT_ROW - 1}, scored on rows {SPLIT_ROW}-511 "
        f"({int(truth.max())} nuclei); preset {args.preset}, steps {args.steps or 'preset default'}"
    )
    print("| method | SBD | mAP | AP50 | objects | train s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, row in rows.items():
        train_s = row.get("train_s", float("nan"))
        print(
            f"| {name} | {row['sbd']:.3f} | {row['map']:.3f} | {row['ap50']:.3f} | {row['objects']:.0f} | "
            f"{'' if np.isnan(train_s) else f'{train_s:.0f}'} |"
        )
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
