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
    python benchmarks/accuracy.py --runs 3d-0.1,3d-1.0,3d-z3-0.1,3d-z3-1.0 --seeds 3 --jobs 2 --no-large

``--seeds N`` trains every run N times, with the run seeds 0 .. N-1 (``--set seed=K``: which objects
are annotated, which crops are drawn, the initial weights; the synthetic images stay the same), and
reports the mean over the N models: one 3D training's SBD moves by about 0.05 with its seed, as much
as the gap a sparse/dense target measures. Seed 0 trains into ``OUT/<run>``, seed K into
``OUT/<run>-seed<K>``.

``--size-draws K`` scores each 3D size row on K volumes instead of one (the first the default's, the
others with other draws of blur, noise, contrast and illumination) and reports their mean: from one
volume to the next a 3D model's SBD varies with a standard deviation of 0.013-0.035, against the 0.05 the
size target allows. ``--classical-sizes`` also segments each of those volumes with the classical
pipeline (the parameters tuned for the run's base row) and prints its SBD beside the model's: how much
harder the larger volume is for a method that has no training crop (the z-step-3x volumes are: 0.571 on
the base row, 0.524 at 64x256x256); the 128x512x512 volume adds about 100 s. ``--dense-sizes`` scores the
100 % 3D models on the same volumes too: whether a loss at size is the sparse supervision's or the
volume's. Every size row also prints the variation of information's split and merge parts (over- and
under-segmentation, 0 = perfect) beside the base row's.

Prints one table (SBD, mAP, AP50 per run and the classical baseline; with several seeds their means
and each seed's SBD), the sparse/dense SBD ratios, the large-image row and the 3D size rows, and
issue 20's 3D targets judged on those figures; ``--json`` writes the same figures. A call that is one
whole 3D row (``--runs 3d-0.1 --no-large``: one run trained here on the CPU preset, every size row on one
volume) also judges the row's time against the issue's 20 minutes.
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

from spoco_zoo.memory import keep_freed_memory
from spoco_zoo.train.acceleration import cpu_computes_bfloat16

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
#: Issue 20's budget for one 3D row on the CPU preset (training, tuning, scoring, every size row), seconds.
ROW_BUDGET_S = 20 * 60
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


def run_dir(out: Path, run: Run, seed: int) -> Path:
    """Where training ``seed`` of ``run`` writes: ``out/<run>`` for seed 0, ``out/<run>-seed<seed>`` else.

    >>> run_dir(Path("runs"), RUNS[0], 0).as_posix(), run_dir(Path("runs"), RUNS[0], 2).as_posix()
    ('runs/2d-nuclei-0.1', 'runs/2d-nuclei-0.1-seed2')
    """
    return out / (run.name if seed == 0 else f"{run.name}-seed{seed}")


def train_all(runs: list[Run], args: argparse.Namespace) -> dict[tuple[str, int], float]:
    """Train every run once per seed (``args.jobs`` at a time, seed by seed); returns wall seconds per
    (run, seed)."""
    env = dict(os.environ)
    threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    env.setdefault("OMP_NUM_THREADS", str(threads))
    pending = [(run, seed) for seed in range(args.seeds) for run in runs]
    active: list[tuple[str, tuple[str, int], subprocess.Popen[bytes], float, Any]] = []
    seconds: dict[tuple[str, int], float] = {}
    while pending or active:
        while pending and len(active) < args.jobs:
            run, seed = pending.pop(0)
            out = run_dir(args.out, run, seed)
            tag = run.name if args.seeds == 1 else f"{run.name} seed {seed}"
            if (out / "best.pt").exists() and args.reuse:
                print(f"[{tag}] reusing {out / 'best.pt'}", flush=True)
                continue
            out.mkdir(parents=True, exist_ok=True)
            log = open(out / "train.log", "wb")  # noqa: SIM115 - closed when the process ends
            overrides = [*args.overrides, f"seed={seed}"] if args.seeds > 1 else args.overrides
            cmd = train_command(run, args.preset, out, args.steps, overrides)
            print(f"[{tag}] {' '.join(cmd[2:])}", flush=True)
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            active.append((tag, (run.name, seed), proc, time.perf_counter(), log))
        time.sleep(2)
        for item in list(active):
            tag, key, proc, started, log = item
            if proc.poll() is None:
                continue
            log.close()
            active.remove(item)
            seconds[key] = time.perf_counter() - started
            status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode}, see {log.name})"
            print(f"[{tag}] trained in {seconds[key]:.0f} s: {status}", flush=True)
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
    """Mean SBD, mAP, AP50 and the variation of information's split and merge parts of several scorings."""
    return {key: float(np.mean([r[key] for r in results])) for key in ("sbd", "map", "ap50", "voi_split", "voi_merge")}


def classical_spacing(anisotropy: float) -> tuple[float, float, float] | None:
    """The classical pipeline's voxel spacing for volumes with a z step ``anisotropy`` times the pixel size."""
    return None if anisotropy == 1 else (anisotropy, 1.0, 1.0)


def classical_scores(
    dims: int, style: str, images: list[tuple[np.ndarray, np.ndarray]], n_tune: int, anisotropy: float = 1.0
) -> dict[str, Any]:
    """The classical baseline on ``images``, its parameters chosen on separate tuning images of ``style``
    (anisotropic volumes: blur and distances in physical units, the voxel size known)."""
    from spoco_zoo.baselines import classical_segmentation
    from spoco_zoo.metrics import evaluate_instances

    tuning = test_images(dims, style, n_tune, TUNE_SEED, anisotropy=anisotropy)
    grid = [(sigma, distance) for sigma in (1.0, 2.0, 3.0) for distance in (5, 8, 12, 16)]
    spacing = classical_spacing(anisotropy)

    def score(params: tuple[float, int], data: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
        sigma, distance = params
        results = [
            evaluate_instances(classical_segmentation(img, sigma=sigma, min_distance=distance, spacing=spacing), gt)
            for img, gt in data
        ]
        return mean_scores(results)

    best = max(grid, key=lambda p: sum(score(p, tuning)[k] for k in ("sbd", "map")))
    return {"sigma": best[0], "min_distance": best[1], **score(best, images)}


def evaluate_run(checkpoint: Path, images: list[tuple[np.ndarray, np.ndarray]], device: str) -> dict[str, float]:
    """Mean SBD, mAP and AP50 of one trained model on ``images``."""
    from spoco_zoo.metrics import evaluate_instances

    return mean_scores([evaluate_instances(segment(checkpoint, img, device), gt) for img, gt in images])


def seed_row(
    run: Run,
    checkpoints: dict[int, Path],
    images: list[tuple[np.ndarray, np.ndarray]],
    seconds: dict[tuple[str, int], float],
    device: str,
) -> dict[str, Any]:
    """One table row: the run's scores averaged over its trained seeds, with each seed's figures."""
    per_seed = []
    for seed, checkpoint in checkpoints.items():
        scores = evaluate_run(checkpoint, images, device)
        per_seed.append({"seed": seed, "train_s": seconds.get((run.name, seed), float("nan")), **scores})
        if len(checkpoints) > 1:
            print(f"[{run.name} seed {seed}] SBD {scores['sbd']:.3f}, mAP {scores['map']:.3f}", flush=True)
    return {
        "fraction": run.fraction,
        "convention": run.convention,
        "dims": run.dims,
        "style": run.style,
        "data": run.data,
        "train_s": float(np.mean([s["train_s"] for s in per_seed])),
        **mean_scores(per_seed),
        "seeds": per_seed,
    }


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--steps", type=int, default=None, help="step budget per run (default: the preset's)")
    parser.add_argument("--runs", default=",".join(r.name for r in RUNS), help="comma-separated run names")
    parser.add_argument("--ablations", action="store_true", help="also the loss ablations at 10 %%")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained side by side")
    parser.add_argument(
        "--seeds", type=int, default=1, help="trainings per run (run seeds 0..N-1); figures are their means"
    )
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
    parser.add_argument(
        "--min-size-3d",
        type=int,
        default=0,
        help="smallest largest-extent of those volumes (512: only the 128x512x512 row, without the smaller ones)",
    )
    parser.add_argument(
        "--size-draws", type=int, default=1, help="volumes per 3D size row (other draws of blur and noise); their mean"
    )
    parser.add_argument(
        "--classical-sizes",
        action="store_true",
        help="the classical pipeline's SBD on each 3D size row's volumes too (its base-row parameters)",
    )
    parser.add_argument("--dense-sizes", action="store_true", help="the 100 %% 3D models on the size rows' volumes too")
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
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    keep_freed_memory()  # as `spoco-zoo train` and `segment --blockwise` do: freed arrays reused
    if args.size_draws < 1:
        parser.error(f"--size-draws: must be at least 1, got {args.size_draws}")
    if args.min_size_3d > args.max_size_3d:
        parser.error(f"--min-size-3d {args.min_size_3d} is above --max-size-3d {args.max_size_3d}: no size row is left")

    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    known = RUNS + ABLATIONS
    unknown = sorted(set(names) - {r.name for r in known})
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {[r.name for r in known]}")
    runs = [r for r in known if r.name in names or (args.ablations and r in ABLATIONS)]
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    if args.seeds > 1 and any(item.split("=", 1)[0].strip() == "seed" for item in args.overrides):
        parser.error("--seeds sets each training's seed; leave out --set seed=...")
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
    checkpoints: dict[str, dict[int, Path]] = {}
    for run in runs:
        trained = {seed: run_dir(args.out, run, seed) / "best.pt" for seed in range(args.seeds)}
        missing = [seed for seed, path in trained.items() if not path.exists()]
        if missing:
            print(f"[{run.name}] no checkpoint for seed(s) {missing}, skipped", flush=True)
        checkpoints[run.name] = {seed: path for seed, path in trained.items() if path.exists()}
        if checkpoints[run.name]:
            rows[run.name] = seed_row(run, checkpoints[run.name], images[run.data], seconds, args.device)

    large: dict[str, Any] = {}
    if args.large and "2d-0.1" in rows:
        large = large_image_row(checkpoints["2d-0.1"], rows["2d-0.1"], args.device)

    sizes = volume_size_rows(rows, checkpoints, classical, args) if args.sizes_3d else []

    print()
    seeds_note = f", {args.seeds} training seeds per run (figures: their means)" if args.seeds > 1 else ""
    print(
        f"preset {args.preset}, steps {args.steps or 'preset default'}, {args.n_test} held-out images per row"
        + seeds_note
    )
    per_seed_column = " SBD per seed |" if args.seeds > 1 else ""
    print(
        "| run | style | annotated | convention | dims | train s | SBD | mAP | AP50 | classical SBD | classical mAP |"
        + per_seed_column
    )
    print("| --- " * (11 + (args.seeds > 1)) + "|")
    for name, row in rows.items():
        base = classical[row["data"]]
        each = " " + " ".join(f"{s['sbd']:.3f}" for s in row["seeds"]) + " |" if args.seeds > 1 else ""
        print(
            f"| {name} | {row['style']} | {100 * row['fraction']:g} % | {row['convention']} | {row['dims']}D | "
            f"{row['train_s']:.0f} | "
            f"{row['sbd']:.3f} | {row['map']:.3f} | {row['ap50']:.3f} | {base['sbd']:.3f} | {base['map']:.3f} |" + each
        )
    for prefix, label in (
        ("2d-nuclei", "2D nuclei"),
        ("2d", "2D crowded"),
        ("3d", "3D crowded"),
        ("3d-z3", "3D crowded, z step 3x"),
    ):
        sparse, dense = rows.get(f"{prefix}-0.1"), rows.get(f"{prefix}-1.0")
        if sparse and dense:
            print(
                f"{label} sparse/dense SBD ratio (10 % vs 100 %): {sparse['sbd'] / max(dense['sbd'], 1e-9):.3f}"
                + per_seed_ratios(sparse, dense)
            )
    for key, base in classical.items():
        print(f"{key} classical: sigma {base['sigma']}, min_distance {base['min_distance']} (from tuning images)")
    if large:
        print(
            f"large image {large['shape'][0]}x{large['shape'][1]} ({large['objects']} objects), model 2d-0.1: "
            f"SBD {large['sbd']:.3f} (256x256 images: {large['small_sbd']:.3f}, difference "
            f"{large['small_sbd'] - large['sbd']:+.3f}), mAP {large['map']:.3f}, {large['seconds']:.1f} s"
            + seed_list(large["per_seed_sbd"])
        )
    for size in sizes:
        print(
            f"3D size row, model {size['run']}: {'x'.join(map(str, size['shape']))} ({size['objects']} objects, "
            f"{size['route']}): SBD {size['sbd']:.3f} (32x128x128: {size['small_sbd']:.3f}, difference "
            f"{size['small_sbd'] - size['sbd']:+.3f}), mAP {size['map']:.3f}, VOI split / merge "
            f"{size['voi_split']:.2f} / {size['voi_merge']:.2f} (32x128x128: {size['small_voi_split']:.2f} / "
            f"{size['small_voi_merge']:.2f}), {size['seconds']:.1f} s"
            + seed_list(size["per_seed_sbd"])
            + draw_list(size["per_draw_sbd"])
            + classical_note(size)
        )
    print_targets(rows, classical, sizes)
    total = time.perf_counter() - started
    print(f"total {total:.0f} s")
    if whole_row(runs, args):
        # the 3D CPU preset's steps take 0.6 of their float32 time where the CPU computes bfloat16 natively
        steps = "bfloat16 steps" if cpu_computes_bfloat16() else "float32 steps: no native bfloat16 on this CPU"
        print(
            f"target {runs[0].name.rsplit('-', 1)[0]} whole row within {ROW_BUDGET_S // 60} min on the CPU "
            f"({total:.0f} s, {os.cpu_count()} cores, {steps}): {'met' if total <= ROW_BUDGET_S else 'NOT met'}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "classical": classical, "large": large, "sizes_3d": sizes}, indent=2)
        )


def seed_list(sbd: list[float]) -> str:
    """`` (SBD per seed: ...)`` for several seeds' models, ``""`` for one."""
    return f" (SBD per seed: {' '.join(f'{x:.3f}' for x in sbd)})" if len(sbd) > 1 else ""


def classical_note(size: dict[str, Any]) -> str:
    """`` (classical: SBD here, on 32x128x128, difference)`` when the size row scored the classical pipeline."""
    if "classical_sbd" not in size:
        return ""
    here, small = size["classical_sbd"], size["classical_small_sbd"]
    return f" (classical: {here:.3f}, 32x128x128: {small:.3f}, difference {small - here:+.3f})"


def draw_list(sbd: list[float]) -> str:
    """`` (SBD per volume: ...)`` for a size row scored on several volumes (``--size-draws``), ``""`` for one."""
    return f" (SBD per volume: {' '.join(f'{x:.3f}' for x in sbd)})" if len(sbd) > 1 else ""


def per_seed_ratios(sparse: dict[str, Any], dense: dict[str, Any]) -> str:
    """`` (per seed: ...)``: the sparse/dense SBD ratio of each seed both rows trained, or ``""`` for one seed."""
    dense_sbd = {s["seed"]: s["sbd"] for s in dense["seeds"]}
    ratios = [f"{s['sbd'] / max(dense_sbd[s['seed']], 1e-9):.3f}" for s in sparse["seeds"] if s["seed"] in dense_sbd]
    return f" (per seed: {' '.join(ratios)})" if len(ratios) > 1 else ""


def scores_over_seeds(
    checkpoints: dict[int, Path], image: np.ndarray, truth: np.ndarray, device: str
) -> tuple[dict[str, float], list[float], float]:
    """Each seed's model on one large image: mean SBD, mAP and AP50, each seed's SBD, mean seconds per model."""
    from spoco_zoo.metrics import evaluate_instances

    results, seconds = [], []
    for checkpoint in checkpoints.values():
        tick = time.perf_counter()
        results.append(evaluate_instances(segment(checkpoint, image, device), truth))
        seconds.append(time.perf_counter() - tick)
    return mean_scores(results), [float(r["sbd"]) for r in results], float(np.mean(seconds))


def large_image_row(checkpoints: dict[int, Path], small: dict[str, Any], device: str) -> dict[str, Any]:
    """The 2D 10 % models (each seed) on one 2048x2048 image, against their 256x256 figure."""
    from spoco_zoo.data.synthetic import make_synthetic_sample

    image, truth = make_synthetic_sample((2048, 2048), 2560, (TEST_SEED, 2048))
    mean, per_seed, seconds = scores_over_seeds(checkpoints, image, truth, device)
    return {
        "run": "2d-0.1",
        "shape": [2048, 2048],
        "objects": int(truth.max()),
        **mean,
        "per_seed_sbd": per_seed,
        "small_sbd": small["sbd"],
        "seconds": seconds,
    }


def volume_size_rows(
    rows: dict[str, dict[str, Any]],
    checkpoints: dict[str, dict[int, Path]],
    classical: dict[str, dict[str, Any]],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """The 10 % 3D models on larger volumes (:data:`VOLUME_SIZES`, ``--size-draws`` volumes each), against
    their 32x128x128 figure; with several seeds or volumes, the means over them. With
    ``--classical-sizes`` the classical pipeline (the run's base-row parameters) on the same volumes, with
    ``--dense-sizes`` the 100 % models too (each volume made and segmented classically once for both)."""
    from spoco_zoo.baselines import classical_segmentation
    from spoco_zoo.data.synthetic import make_synthetic_sample
    from spoco_zoo.metrics import evaluate_instances

    out = []
    groups: dict[float, list[str]] = {}  # the 3D runs scored on each kind of volume, the sparse one first
    for run in sorted((r for r in RUNS if r.dims == 3 and r.name in rows), key=lambda r: r.fraction):
        if run.fraction < 1 or args.dense_sizes:
            groups.setdefault(run.anisotropy, []).append(run.name)
    for anisotropy, names in groups.items():
        tuned = classical[rows[names[0]]["data"]]
        spacing = classical_spacing(anisotropy)
        for shape, n_objects in VOLUME_SIZES:
            if not args.min_size_3d <= max(shape) <= args.max_size_3d:
                continue
            if np.prod(shape) * anisotropy > MAX_GENERATED_VOXELS:
                print(f"[{names[0]}] {shape}: skipped (its synthetic volume needs a grid {anisotropy:g}x as deep)")
                continue
            # one entry per volume: each model's scores, the truth's object count, the classical SBD
            scores: dict[str, list[dict[str, float]]] = {name: [] for name in names}
            per_seed: dict[str, list[list[float]]] = {name: [] for name in names}
            seconds: dict[str, list[float]] = {name: [] for name in names}
            objects, by_classical = [], []
            for draw in range(args.size_draws):
                volume_seed = (TEST_SEED, *shape) if draw == 0 else (TEST_SEED, *shape, draw)
                image, truth = make_synthetic_sample(
                    shape, round(n_objects * anisotropy), volume_seed, anisotropy=anisotropy
                )
                objects.append(int(truth.max()))
                for name in names:
                    mean, seed_sbd, mean_seconds = scores_over_seeds(checkpoints[name], image, truth, args.device)
                    scores[name].append(mean)
                    per_seed[name].append(seed_sbd)
                    seconds[name].append(mean_seconds)
                if args.classical_sizes:
                    labels = classical_segmentation(
                        image, sigma=tuned["sigma"], min_distance=tuned["min_distance"], spacing=spacing
                    )
                    by_classical.append(evaluate_instances(labels, truth)["sbd"])
            extra = (
                {"classical_sbd": float(np.mean(by_classical)), "classical_small_sbd": tuned["sbd"]}
                if by_classical
                else {}
            )
            for name in names:
                out.append(
                    {
                        "run": name,
                        "shape": list(shape),
                        "objects": round(float(np.mean(objects))),
                        "route": "block-wise" if np.prod(shape) >= BLOCKWISE_VOXELS else "whole volume",
                        **mean_scores(scores[name]),
                        "per_seed_sbd": [float(v) for v in np.mean(per_seed[name], axis=0)],
                        "per_draw_sbd": [s["sbd"] for s in scores[name]],
                        "small_sbd": rows[name]["sbd"],
                        "small_voi_split": rows[name]["voi_split"],
                        "small_voi_merge": rows[name]["voi_merge"],
                        "seconds": float(np.mean(seconds[name])),
                        **extra,
                    }
                )
                print(f"[{name}] {shape}: SBD {out[-1]['sbd']:.3f} in {out[-1]['seconds']:.0f} s", flush=True)
    return out


def whole_row(runs: list[Run], args: argparse.Namespace) -> bool:
    """Whether this call is one whole 3D row as issue 20 times it: one 3D run trained here once on the CPU
    preset (its own steps), then scored on the held-out volumes and every size row (one volume each)."""
    return (
        len(runs) == 1
        and runs[0].dims == 3
        and not args.reuse
        and args.seeds == 1
        and args.preset == "cpu"
        and args.steps is None
        and not args.overrides
        and args.device in ("auto", "cpu")
        and args.sizes_3d
        and args.size_draws == 1
        and args.min_size_3d <= min(max(shape) for shape, _ in VOLUME_SIZES)
        and args.max_size_3d >= max(max(shape) for shape, _ in VOLUME_SIZES)
    )


def print_targets(
    rows: dict[str, dict[str, Any]], classical: dict[str, dict[str, Any]], sizes: list[dict[str, Any]]
) -> None:
    """Issue 20's 3D targets, met or not: 10 % beats the classical pipeline in SBD and mAP, sparse/dense
    SBD >= 0.9, and the larger volumes within 0.05 SBD of the 32x128x128 figure (each judged on the
    figures the table prints: with several seeds, their means)."""
    for prefix in ("3d", "3d-z3"):
        sparse, dense = rows.get(f"{prefix}-0.1"), rows.get(f"{prefix}-1.0")
        if not sparse:
            continue
        if len(sparse["seeds"]) > 1:
            print(f"targets {prefix}: means over {len(sparse['seeds'])} trainings per run")
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
