"""Instance-segmentation accuracy: sparse vs dense training, both annotation conventions, 2D and 3D.

Every run trains with ``spoco-zoo train --preset PRESET`` (the command a user runs) under one
fixed step budget, then scores *fresh* held-out synthetic images -- generated with a seed no
training run uses, in the run's synthetic style -- with the model's default segmentation (the
recommended clustering stored in its checkpoint, as ``spoco-zoo segment --checkpoint`` runs it). A
classical pipeline (blur, Otsu threshold, distance-transform watershed;
:func:`spoco_zoo.baselines.classical_segmentation`, its two parameters chosen on separate tuning
images of the same style) is scored on the same images. The ``2d-nuclei-*`` rows train and test on
the ``nuclei`` style (like real fluorescence nuclei: mostly background, soft edges, dim and bright
objects, uneven illumination, clumps), the others on the ``crowded`` default. The large-image row
segments one 2048x2048 image with the 10 % model and compares it with that model's figure on the
256x256 images.

    python benchmarks/accuracy.py --preset cpu --jobs 2            # all runs, 2 CPU cores
    python benchmarks/accuracy.py --preset gpu --jobs 6            # one GPU, six runs side by side
    python benchmarks/accuracy.py --runs 2d-0.1 --steps 300 --no-large --n-test 2   # a quick look
    python benchmarks/accuracy.py --runs 2d-nuclei-0.1 --steps 20 --no-large --n-test 1 --n-tune 1 \
        --set model.depth=2 --set model.base_features=4                              # a smoke test

Prints one table (SBD, mAP, AP50 per run and the classical baseline), the sparse/dense SBD
ratios and the large-image row; ``--json`` writes the same figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Seed of the held-out test images (training uses the synthetic config's seed, 0).
TEST_SEED = 4242
#: Seed of the images the classical baseline's parameters are chosen on.
TUNE_SEED = 777
#: Objects per 512x512 training image of the nuclei style: the density of the real DSB 2018 image
#: (73 nuclei in 512x256, about 22 px across); 36 per 256x256 test image.
NUCLEI_OBJECTS = 144
NUCLEI = ["data.synthetic.style=nuclei", f"data.synthetic.n_objects={NUCLEI_OBJECTS}"]
#: Anisotropic volumes: z step 3x the pixel size. Training volumes of 64 slices (192 deep in pixels) hold
#: 240 objects, the isotropic density (80 per 64x128x128); patches of 32 slices (96 pixels deep), so a crop
#: rarely touches a z border (16-slice crops of 48-slice volumes scored 0.588 / 0.139 at 10 %).
ANISOTROPY = 3.0
ANISOTROPIC = [
    f"data.voxel_size=[{ANISOTROPY:g},1,1]",
    "data.patch_shape=[32,64,64]",
    "data.synthetic.shape=[64,128,128]",
    "data.synthetic.n_objects=240",
]
#: Held-out volumes (shape, objects) of the size rows: the isotropic density, 40 objects per 32x128x128.
VOLUME_SIZES = [((32, 256, 256), 160), ((64, 128, 128), 80), ((64, 256, 256), 320), ((128, 512, 512), 2560)]
#: Volumes at least this large are segmented block-wise (``spoco-zoo segment --blockwise``'s route).
BLOCKWISE_VOXELS = 32 * 1024 * 1024
#: Largest grid the synthetic generator makes a held-out volume on (an anisotropic volume is made on a grid
#: ``anisotropy`` times deeper): the 128x512x512 volume at z step 3 would need 384x512x512 (over 24 GB).
MAX_GENERATED_VOXELS = 1 << 26


@dataclass
class Run:
    """One training run of the benchmark."""

    name: str
    fraction: float
    convention: str = "objects_and_background"
    dims: int = 2
    extra: list[str] = field(default_factory=list)
    #: Synthetic style of the held-out and tuning images (training's comes from ``extra``).
    style: str = "crowded"
    #: Volumes: the ``z`` step over the pixel size of the training, held-out and tuning volumes.
    anisotropy: float = 1.0

    @property
    def data(self) -> str:
        """Which held-out images the run is scored on, e.g. ``"2D crowded"``, ``"3D crowded z3"``."""
        return f"{self.dims}D {self.style}" + (f" z{self.anisotropy:g}" if self.anisotropy != 1 else "")


RUNS = [
    Run("2d-nuclei-0.1", 0.1, extra=list(NUCLEI), style="nuclei"),
    Run("2d-nuclei-1.0", 1.0, extra=list(NUCLEI), style="nuclei"),
    Run("2d-0.1", 0.1),
    Run("2d-0.3", 0.3),
    Run("2d-1.0", 1.0),
    Run("2d-0.1-objects-only", 0.1, convention="objects_only"),
    Run("3d-0.1", 0.1, dims=3),
    Run("3d-1.0", 1.0, dims=3),
    Run("3d-z3-0.1", 0.1, dims=3, extra=list(ANISOTROPIC), anisotropy=ANISOTROPY),
    Run("3d-z3-1.0", 1.0, dims=3, extra=list(ANISOTROPIC), anisotropy=ANISOTROPY),
]
#: Each loss choice switched against the default at 10 % (``--ablations``).
ABLATIONS = [
    Run("2d-0.1-pixel-anchor", 0.1, extra=["loss.instance_anchor=pixel"]),
    Run("2d-0.1-no-consistency", 0.1, extra=["loss.consistency_weight=0"]),
    Run("2d-0.1-no-unlabeled-push", 0.1, extra=["loss.unlabeled_push_weight=0"]),
    Run("2d-0.1-no-instance", 0.1, extra=["loss.instance_weight=0"]),
]


def train_command(
    run: Run, preset: str, out: Path, steps: int | None, overrides: tuple[str, ...] | list[str] = ()
) -> list[str]:
    cmd = [sys.executable, "-m", "spoco_zoo.cli.main", "train", "--preset", preset, "--out", str(out)]
    cmd += ["--object-fraction", str(run.fraction), "--label-convention", run.convention, "--no-progress"]
    if run.dims == 3:
        cmd.append("--3d")
    if steps is not None:
        cmd += ["--steps", str(steps)]
    for item in [*run.extra, *overrides]:
        cmd += ["--set", item]
    return cmd


def train_all(runs: list[Run], args: argparse.Namespace) -> dict[str, float]:
    """Train every run (``args.jobs`` at a time); returns wall seconds per run."""
    env = dict(os.environ)
    threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    env.setdefault("OMP_NUM_THREADS", str(threads))
    pending = list(runs)
    active: list[tuple[Run, subprocess.Popen[bytes], float, Any]] = []
    seconds: dict[str, float] = {}
    while pending or active:
        while pending and len(active) < args.jobs:
            run = pending.pop(0)
            out = args.out / run.name
            if (out / "best.pt").exists() and args.reuse:
                print(f"[{run.name}] reusing {out / 'best.pt'}", flush=True)
                continue
            out.mkdir(parents=True, exist_ok=True)
            log = open(out / "train.log", "wb")  # noqa: SIM115 - closed when the process ends
            cmd = train_command(run, args.preset, out, args.steps, args.overrides)
            print(f"[{run.name}] {' '.join(cmd[2:])}", flush=True)
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            active.append((run, proc, time.perf_counter(), log))
        time.sleep(2)
        for item in list(active):
            run, proc, started, log = item
            if proc.poll() is None:
                continue
            log.close()
            active.remove(item)
            seconds[run.name] = time.perf_counter() - started
            status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode}, see {log.name})"
            print(f"[{run.name}] trained in {seconds[run.name]:.0f} s: {status}", flush=True)
    return seconds


def test_images(
    dims: int, style: str, n: int, seed: int, shape: list[int] | None = None, anisotropy: float = 1.0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` synthetic images of ``style`` (256x256 or 32x128x128; nuclei: the training density; anisotropic
    volumes: 32 slices of ``anisotropy`` pixels, so ``anisotropy`` times the objects)."""
    from spoco_zoo.data.synthetic import make_synthetic_dataset

    n_objects = NUCLEI_OBJECTS // 4 if style == "nuclei" and dims == 2 else round(40 * anisotropy)
    default = [256, 256] if dims == 2 else [32, 128, 128]
    return make_synthetic_dataset(n, shape or default, n_objects, seed, style=style, anisotropy=anisotropy)


def segment(checkpoint: Path, image: np.ndarray, device: str) -> np.ndarray:
    """The default segmentation of one raw image: ``spoco-zoo segment --checkpoint``'s steps (the
    network's tiles and halo, the recommended clustering stored with the weights); volumes of
    :data:`BLOCKWISE_VOXELS` or more through ``--blockwise``'s route (block by block, stitched)."""
    from spoco_zoo.segmentation import load_segmenter, segment_with_checkpoint

    segmenter = load_segmenter(checkpoint)
    if image.ndim == 3 and image.size >= BLOCKWISE_VOXELS:
        from spoco_zoo.blockwise.volume import segment_volume

        out = np.zeros(image.shape, np.int32)
        clustering = segmenter.clustering
        segment_volume(
            segmenter.net,
            image[None],
            segmenter.config.data.normalization,
            clustering.method,
            {k: v for k, v in clustering.as_dict().items() if k != "method"},
            out,
            channel_axis=True,
            halo=segmenter.halo,
            device=device,
        )
        return out
    labels, _ = segment_with_checkpoint(segmenter, image[None], device=device)
    return labels


def mean_scores(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([r[key] for r in results])) for key in ("sbd", "map", "ap50")}


def classical_scores(
    dims: int, style: str, images: list[tuple[np.ndarray, np.ndarray]], n_tune: int, anisotropy: float = 1.0
) -> dict[str, Any]:
    """The classical baseline on ``images``, its parameters chosen on separate tuning images of ``style``
    (anisotropic volumes: blur and distances in physical units, the voxel size known)."""
    from spoco_zoo.baselines import classical_segmentation
    from spoco_zoo.metrics import evaluate_instances

    tuning = test_images(dims, style, n_tune, TUNE_SEED, anisotropy=anisotropy)
    grid = [(sigma, distance) for sigma in (1.0, 2.0, 3.0) for distance in (5, 8, 12, 16)]
    spacing = None if anisotropy == 1 else (anisotropy, 1.0, 1.0)

    def score(params: tuple[float, int], data: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
        sigma, distance = params
        results = [
            evaluate_instances(classical_segmentation(img, sigma=sigma, min_distance=distance, spacing=spacing), gt)
            for img, gt in data
        ]
        return mean_scores(results)

    best = max(grid, key=lambda p: sum(score(p, tuning)[k] for k in ("sbd", "map")))
    return {"sigma": best[0], "min_distance": best[1], **score(best, images)}


def evaluate_run(run: Run, checkpoint: Path, images: list[tuple[np.ndarray, np.ndarray]], device: str) -> dict:
    from spoco_zoo.metrics import evaluate_instances

    return mean_scores([evaluate_instances(segment(checkpoint, img, device), gt) for img, gt in images])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--steps", type=int, default=None, help="step budget per run (default: the preset's)")
    parser.add_argument("--runs", default=",".join(r.name for r in RUNS), help="comma-separated run names")
    parser.add_argument("--ablations", action="store_true", help="also the loss ablations at 10 %%")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained side by side")
    parser.add_argument("--out", type=Path, default=Path("runs/accuracy"))
    parser.add_argument("--n-test", type=int, default=4, help="held-out images per dimensionality")
    parser.add_argument("--n-tune", type=int, default=2, help="images the classical parameters are chosen on")
    parser.add_argument("--large", action=argparse.BooleanOptionalAction, default=True, help="2048x2048 row")
    parser.add_argument(
        "--sizes-3d",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the 10 %% 3D models on larger volumes (32x256x256 .. 128x512x512)",
    )
    parser.add_argument("--max-size-3d", type=int, default=512, help="largest extent of those volumes")
    parser.add_argument("--reuse", action="store_true", help="score existing OUT/<run>/best.pt without training")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override passed to every training run (repeatable), e.g. --set model.depth=2",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    known = RUNS + ABLATIONS
    unknown = sorted(set(names) - {r.name for r in known})
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {[r.name for r in known]}")
    runs = [r for r in known if r.name in names or (args.ablations and r in ABLATIONS)]
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    seconds = train_all(runs, args)

    rows: dict[str, dict[str, Any]] = {}
    kinds = {run.data: (run.dims, run.style, run.anisotropy) for run in runs}  # held-out images per kind
    images = {
        key: test_images(dims, style, args.n_test, TEST_SEED, anisotropy=a) for key, (dims, style, a) in kinds.items()
    }
    classical = {
        key: classical_scores(dims, style, images[key], args.n_tune, a) for key, (dims, style, a) in kinds.items()
    }
    for run in runs:
        checkpoint = args.out / run.name / "best.pt"
        if not checkpoint.exists():
            print(f"[{run.name}] no checkpoint, skipped", flush=True)
            continue
        rows[run.name] = {
            "fraction": run.fraction,
            "convention": run.convention,
            "dims": run.dims,
            "style": run.style,
            "data": run.data,
            "train_s": seconds.get(run.name, float("nan")),
            **evaluate_run(run, checkpoint, images[run.data], args.device),
        }

    large: dict[str, Any] = {}
    if args.large and "2d-0.1" in rows:
        from spoco_zoo.data.synthetic import make_synthetic_sample
        from spoco_zoo.metrics import evaluate_instances

        image, truth = make_synthetic_sample((2048, 2048), 2560, (TEST_SEED, 2048))
        tick = time.perf_counter()
        result = evaluate_instances(segment(args.out / "2d-0.1" / "best.pt", image, args.device), truth)
        large = {
            "run": "2d-0.1",
            "shape": [2048, 2048],
            "objects": int(truth.max()),
            "sbd": float(result["sbd"]),
            "map": float(result["map"]),
            "small_sbd": rows["2d-0.1"]["sbd"],
            "seconds": time.perf_counter() - tick,
        }

    sizes = volume_size_rows(rows, args) if args.sizes_3d else []

    print()
    print(f"preset {args.preset}, steps {args.steps or 'preset default'}, {args.n_test} held-out images per row")
    header = (
        "| run | style | annotated | convention | dims | train s | SBD | mAP | AP50 | classical SBD | classical mAP |"
    )
    print(header)
    print("| --- " * 11 + "|")
    for name, row in rows.items():
        base = classical[row["data"]]
        print(
            f"| {name} | {row['style']} | {100 * row['fraction']:g} % | {row['convention']} | {row['dims']}D | "
            f"{row['train_s']:.0f} | "
            f"{row['sbd']:.3f} | {row['map']:.3f} | {row['ap50']:.3f} | {base['sbd']:.3f} | {base['map']:.3f} |"
        )
    for prefix, label in (
        ("2d-nuclei", "2D nuclei"),
        ("2d", "2D crowded"),
        ("3d", "3D crowded"),
        ("3d-z3", "3D crowded, z step 3x"),
    ):
        sparse, dense = rows.get(f"{prefix}-0.1"), rows.get(f"{prefix}-1.0")
        if sparse and dense:
            print(f"{label} sparse/dense SBD ratio (10 % vs 100 %): {sparse['sbd'] / max(dense['sbd'], 1e-9):.3f}")
    for key, base in classical.items():
        print(f"{key} classical: sigma {base['sigma']}, min_distance {base['min_distance']} (from tuning images)")
    if large:
        print(
            f"large image {large['shape'][0]}x{large['shape'][1]} ({large['objects']} objects), model 2d-0.1: "
            f"SBD {large['sbd']:.3f} (256x256 images: {large['small_sbd']:.3f}, difference "
            f"{large['small_sbd'] - large['sbd']:+.3f}), mAP {large['map']:.3f}, {large['seconds']:.1f} s"
        )
    for size in sizes:
        print(
            f"3D size row, model {size['run']}: {'x'.join(map(str, size['shape']))} ({size['objects']} objects, "
            f"{size['route']}): SBD {size['sbd']:.3f} (32x128x128: {size['small_sbd']:.3f}, difference "
            f"{size['small_sbd'] - size['sbd']:+.3f}), mAP {size['map']:.3f}, {size['seconds']:.1f} s"
        )
    print_targets(rows, classical, sizes)
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "classical": classical, "large": large, "sizes_3d": sizes}, indent=2)
        )


def volume_size_rows(rows: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The 10 % 3D models on larger volumes (:data:`VOLUME_SIZES`, one each), against their 32x128x128 figure."""
    from spoco_zoo.data.synthetic import make_synthetic_sample
    from spoco_zoo.metrics import evaluate_instances

    out = []
    for name, anisotropy in (("3d-0.1", 1.0), ("3d-z3-0.1", ANISOTROPY)):
        if name not in rows:
            continue
        for shape, n_objects in VOLUME_SIZES:
            if max(shape) > args.max_size_3d:
                continue
            if np.prod(shape) * anisotropy > MAX_GENERATED_VOXELS:
                print(f"[{name}] {shape}: skipped (its synthetic volume needs a grid {anisotropy:g}x as deep)")
                continue
            image, truth = make_synthetic_sample(
                shape, round(n_objects * anisotropy), (TEST_SEED, *shape), anisotropy=anisotropy
            )
            tick = time.perf_counter()
            result = evaluate_instances(segment(args.out / name / "best.pt", image, args.device), truth)
            out.append(
                {
                    "run": name,
                    "shape": list(shape),
                    "objects": int(truth.max()),
                    "route": "block-wise" if image.size >= BLOCKWISE_VOXELS else "whole volume",
                    "sbd": float(result["sbd"]),
                    "map": float(result["map"]),
                    "small_sbd": rows[name]["sbd"],
                    "seconds": time.perf_counter() - tick,
                }
            )
            print(f"[{name}] {shape}: SBD {out[-1]['sbd']:.3f} in {out[-1]['seconds']:.0f} s", flush=True)
    return out


def print_targets(
    rows: dict[str, dict[str, Any]], classical: dict[str, dict[str, Any]], sizes: list[dict[str, Any]]
) -> None:
    """Issue 20's 3D targets, met or not: 10 % beats the classical pipeline in SBD and mAP, sparse/dense
    SBD >= 0.9, and the larger volumes within 0.05 SBD of the 32x128x128 figure."""
    for prefix in ("3d", "3d-z3"):
        sparse, dense = rows.get(f"{prefix}-0.1"), rows.get(f"{prefix}-1.0")
        if not sparse:
            continue
        base = classical[sparse["data"]]
        beats = sparse["sbd"] > base["sbd"] and sparse["map"] > base["map"]
        print(
            f"target {prefix} 10 % beats classical (SBD {sparse['sbd']:.3f} vs {base['sbd']:.3f}, mAP "
            f"{sparse['map']:.3f} vs {base['map']:.3f}): {'met' if beats else 'NOT met'}"
        )
        if dense:
            ratio = sparse["sbd"] / max(dense["sbd"], 1e-9)
            print(f"target {prefix} sparse/dense SBD >= 0.9 ({ratio:.3f}): {'met' if ratio >= 0.9 else 'NOT met'}")
        held = [s for s in sizes if s["run"] == f"{prefix}-0.1"]
        if held:
            worst = max(s["small_sbd"] - s["sbd"] for s in held)
            print(
                f"target {prefix} larger volumes within 0.05 SBD (worst {worst:+.3f} over {len(held)} sizes): "
                f"{'met' if worst <= 0.05 else 'NOT met'}"
            )


if __name__ == "__main__":
    main()
