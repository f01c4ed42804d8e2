"""Time and peak memory of ``spoco-zoo segment`` versus image size, with the scaling exponent.

Each size runs in its own process (``spoco-zoo segment IMAGE --checkpoint CK ...``): wall time,
CPU time and peak RSS of that process are read with ``os.wait4``. Images are synthetic (crowded
touching objects of the size the checkpoint was trained on). 2D images go through the default route
(whole-image embeddings, local clustering block by block); 3D volumes through ``--blockwise``
(network tile by tile, embeddings in a Zarr store on disk, labels stitched block by block).
The exponent ``b`` of ``time ~ pixels^b`` is fitted over the sizes of each kind (1 = linear).

    python benchmarks/segment.py --checkpoint runs/quickstart/best.pt
    python benchmarks/segment.py --checkpoint 2d.pt --checkpoint-3d 3d.pt --sizes-2d 512 1024 2048 4096 \\
        --sizes-3d 32x128x128 64x256x256 128x512x512

Issue 9's targets are for clustering a trained model's embeddings (2 CPU cores): 2048x2048 in
<= 15 s, 128x512x512 in <= 2 min, peak RSS <= 4 GB; ``benchmarks/clustering_scale.py`` checks them.
This script prints the 2048x2048 verdict for the whole command (network pass included); the 3D rows
add the network pass of a volume, which the clustering target leaves out.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGETS = {(2048, 2048): 15.0}
TARGET_RSS_GB = 4.0


def make_image(shape: tuple[int, ...], checkpoint: Path, path: Path) -> int:
    """A synthetic image with objects of the size the checkpoint was trained on; its object count."""
    import tifffile

    from spoco_zoo.data.synthetic import make_synthetic_sample
    from spoco_zoo.train.checkpoint import load_model

    synthetic = load_model(checkpoint)[1].data.synthetic
    n_objects = max(8, round(synthetic.n_objects * math.prod(shape) / math.prod(synthetic.shape)))
    image, labels = make_synthetic_sample(shape, n_objects, seed=11)
    tifffile.imwrite(path, image.astype(np.float32))
    return int(labels.max())


def run(command: list[str]) -> tuple[float, float, float, str]:
    """Wall s, CPU s and peak RSS (GB) of a child process, and its output."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        log.seek(0)
        output = log.read().decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024**2, output


def exponent(pixels: list[int], seconds: list[float]) -> float:
    if len(pixels) < 2:
        return math.nan
    return float(np.polyfit(np.log(pixels), np.log(seconds), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="2D checkpoint")
    parser.add_argument("--checkpoint-3d", type=Path, default=None, help="3D checkpoint (no 3D sizes without it)")
    parser.add_argument("--sizes-2d", type=int, nargs="*", default=[512, 1024, 2048, 4096])
    parser.add_argument("--sizes-3d", nargs="*", default=["32x128x128", "64x256x256", "128x512x512"])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    cases: list[tuple[tuple[int, ...], Path, list[str]]] = [((s, s), args.checkpoint, []) for s in args.sizes_2d]
    if args.checkpoint_3d is not None:
        for text in args.sizes_3d:
            shape = tuple(int(v) for v in text.split("x"))
            cases.append((shape, args.checkpoint_3d, ["--blockwise"]))
    print(f"{'shape':<16}{'pixels':>12}{'wall s':>9}{'CPU s':>9}{'peak RSS GB':>13}{'objects':>9}{'truth':>7}  target")
    results: dict[int, tuple[list[int], list[float]]] = {2: ([], []), 3: ([], [])}
    with tempfile.TemporaryDirectory() as tmp:
        for shape, checkpoint, extra in cases:
            image = Path(tmp) / f"img_{'x'.join(map(str, shape))}.tif"
            truth = make_image(shape, checkpoint, image)
            command = [sys.executable, "-m", "spoco_zoo.cli.main", "segment", str(image), "--checkpoint"]
            command += [str(checkpoint), "--output", str(Path(tmp) / "out"), "--no-progress", "--device", args.device]
            wall, cpu, rss, output = run(command + extra)
            objects = output.split(" objects")[0].rsplit("(", 1)[-1] if " objects" in output else "?"
            target = TARGETS.get(shape)
            verdict = ""
            if target is not None:
                ok = wall <= target and rss <= TARGET_RSS_GB
                verdict = f"<= {target:g} s, <= {TARGET_RSS_GB:g} GB: {'met' if ok else 'not met'}"
            pixels = math.prod(shape)
            results[len(shape)][0].append(pixels)
            results[len(shape)][1].append(wall)
            name = "x".join(map(str, shape))
            print(f"{name:<16}{pixels:>12}{wall:>9.1f}{cpu:>9.1f}{rss:>13.2f}{objects:>9}{truth:>7}  {verdict}")
            image.unlink()
    for dims, (pixels, seconds) in results.items():
        if pixels:
            print(f"{dims}D scaling exponent (time ~ pixels^b): b = {exponent(pixels, seconds):.2f}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
