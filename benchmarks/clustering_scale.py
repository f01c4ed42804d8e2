"""Time and peak memory of clustering a trained model's embeddings into instances, versus size.

The clustering half of ``spoco-zoo segment`` (issue 9, "clustering that scales with the image"):
a trained network's embeddings of a synthetic image are written to a Zarr store chunked by
clustering block, as the block-wise route writes them; then a fresh process opens the store and
runs :func:`spoco_zoo.blockwise.volume.label_embeddings` with the checkpoint's recommended
clustering (local mean-shift in overlapping windows, stitching, connected components, small
fragments merged). Wall time, CPU time and peak RSS of that process are read with ``os.wait4``;
the labels are scored (SBD) against the synthetic ground truth.

    python benchmarks/clustering_scale.py --checkpoint runs/quickstart/best.pt \\
        --checkpoint-3d runs/accuracy/3d-0.1/best.pt

Targets (issue 9, 2 CPU cores, a trained model's embeddings): 2048x2048 in <= 15 s,
128x512x512 in <= 2 min, peak RSS <= 4 GB.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGETS = {(2048, 2048): 15.0, (128, 512, 512): 120.0}
TARGET_RSS_GB = 4.0


def _recommended(config: Any) -> tuple[str, dict]:
    """Method and clustering dict of a checkpoint config's recommended clustering."""
    from spoco_zoo.cli.segment import checkpoint_clustering

    setting = checkpoint_clustering(config, None, {}, None)
    return setting.method, setting.as_dict()


def prepare(checkpoint: Path, shape: tuple[int, ...], folder: Path, threads: int) -> None:
    """Synthetic image at the training data's object size, its truth and embeddings (Zarr) in ``folder``."""
    import torch
    import zarr

    from spoco_zoo.blockwise.volume import effective_block
    from spoco_zoo.data.normalize import normalize
    from spoco_zoo.data.synthetic import make_synthetic_sample
    from spoco_zoo.inference import automatic_tile_shape, predict_embeddings
    from spoco_zoo.train.checkpoint import load_checkpoint, model_from_state, stored_halo

    torch.set_num_threads(threads)
    state = load_checkpoint(checkpoint, "cpu")
    model, config = model_from_state(state, checkpoint, "student")
    synthetic = config.data.synthetic
    n_objects = max(8, round(synthetic.n_objects * math.prod(shape) / math.prod(synthetic.shape)))
    image, truth = make_synthetic_sample(shape, n_objects, seed=11)
    np.save(folder / "truth.npy", truth.astype(np.int32))
    x = normalize(np.asarray(image, np.float32)[None], config.data.normalization)
    del image, truth
    halo = stored_halo(state, "student") or 32
    tile = automatic_tile_shape(shape, model.size_step)
    embeddings = predict_embeddings(model, x, tile, halo, model.size_step, "cpu")
    _, params = _recommended(config)
    block = effective_block(params.get("block_shape"), shape, 1)
    store = zarr.create_array(
        str(folder / "embeddings.zarr"),
        shape=embeddings.shape,
        chunks=(embeddings.shape[0], *block),
        dtype="float32",
        compressors=None,
    )
    store[:] = embeddings


def cluster(checkpoint: Path, folder: Path, threads: int) -> None:
    """Label the stored embeddings; prints a JSON line with objects and SBD."""
    import torch
    import zarr

    from spoco_zoo.blockwise.volume import label_embeddings
    from spoco_zoo.metrics.sbd import symmetric_best_dice

    torch.set_num_threads(threads)
    from spoco_zoo.train.checkpoint import load_checkpoint

    method, params = _recommended(load_checkpoint(checkpoint, "cpu")["config"])
    embeddings = zarr.open_array(str(folder / "embeddings.zarr"), mode="r")
    labels = np.zeros(embeddings.shape[1:], np.int32)
    start = time.perf_counter()
    objects = label_embeddings(embeddings, method, params, labels)
    seconds = time.perf_counter() - start
    truth = np.load(folder / "truth.npy")
    print(
        json.dumps(
            {"objects": objects, "truth": int(truth.max()), "sbd": symmetric_best_dice(labels, truth), "s": seconds}
        )
    )


def child(args: list[str]) -> tuple[float, float, float, str]:
    """Wall s, CPU s and peak RSS (GB) of ``python this_script ARGS``, and its output."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, __file__, *args], stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        log.seek(0)
        output = log.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{' '.join(args)} failed:\n{output}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024**2, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="2D checkpoint")
    parser.add_argument("--checkpoint-3d", type=Path, default=None, help="3D checkpoint")
    parser.add_argument("--sizes-2d", type=int, nargs="*", default=[1024, 2048])
    parser.add_argument("--sizes-3d", nargs="*", default=["64x256x256", "128x512x512"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--step", choices=["prepare", "cluster"], help=argparse.SUPPRESS)
    parser.add_argument("--shape", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.checkpoint, tuple(int(v) for v in args.shape.split("x")), args.folder, args.threads)
        return
    if args.step == "cluster":
        cluster(args.checkpoint, args.folder, args.threads)
        return
    if args.checkpoint is None:
        parser.error("--checkpoint is required")
    cases: list[tuple[tuple[int, ...], Path]] = [((s, s), args.checkpoint) for s in args.sizes_2d]
    if args.checkpoint_3d is not None:
        cases += [(tuple(int(v) for v in text.split("x")), args.checkpoint_3d) for text in args.sizes_3d]
    print(
        f"{'shape':<14}{'pixels':>11}{'prepare s':>11}{'wall s':>8}{'CPU s':>8}{'peak RSS GB':>13}"
        f"{'objects':>9}{'truth':>7}{'SBD':>7}  target"
    )
    for shape, checkpoint in cases:
        name = "x".join(map(str, shape))
        with tempfile.TemporaryDirectory() as tmp:
            common = ["--checkpoint", str(checkpoint), "--folder", tmp, "--threads", str(args.threads)]
            prep, _, _, _ = child(["--step", "prepare", "--shape", name, *common])
            wall, cpu, rss, output = child(["--step", "cluster", *common])
        result = json.loads(output.strip().splitlines()[-1])
        target = TARGETS.get(shape)
        verdict = ""
        if target is not None:
            ok = wall <= target and rss <= TARGET_RSS_GB
            verdict = f"<= {target:g} s, <= {TARGET_RSS_GB:g} GB: {'met' if ok else 'not met'}"
        print(
            f"{name:<14}{math.prod(shape):>11}{prep:>11.1f}{wall:>8.1f}{cpu:>8.1f}{rss:>13.2f}"
            f"{result['objects']:>9}{result['truth']:>7}{result['sbd']:>7.3f}  {verdict}",
            flush=True,
        )
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
