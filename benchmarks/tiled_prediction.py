"""Tiled vs whole-image prediction of one large image through bioimageio.core.

Runs a package (``spoco-zoo export``) on a synthetic raw image with
:func:`spoco_zoo.zoo.predict.zoo_predict`, once in a single pass (the baseline) and once in
blocks of ``--tile`` (+ the package's halo), and prints the times, their ratio, the largest
embedding difference and the SBD between the labels of the recommended clustering:

    python benchmarks/tiled_prediction.py runs/quickstart/model.zip --size 1024 --tile 512 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--tile", type=int, default=512, help="core of a block (the halo is added)")
    parser.add_argument("--weight-format", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--labels", action="store_true", help="also cluster both and report the SBD")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from spoco_zoo.data.synthetic import make_synthetic_sample
    from spoco_zoo.metrics.sbd import symmetric_best_dice
    from spoco_zoo.postprocess import embeddings_to_instances
    from spoco_zoo.zoo.predict import zoo_predict

    shape = (args.size, args.size)
    image = np.asarray(make_synthetic_sample(shape, max(4, args.size * args.size // 1600), 1234)[0], np.float32)
    kwargs = {"weight_format": args.weight_format, "devices": ["cpu"], "max_pixels": args.size * args.size}
    zoo_predict(args.package, image[:256, :256], **kwargs)  # warm-up (loading, first-call costs)

    def timed(**extra: object) -> tuple[float, object]:
        best, result = float("inf"), None
        for _ in range(args.repeats):
            started = time.perf_counter()
            result = zoo_predict(args.package, image, **kwargs, **extra)
            best = min(best, time.perf_counter() - started)
        return best, result

    whole_s, whole = timed()
    tiled_s, tiled = timed(tile_shape=(args.tile, args.tile))
    assert whole.embeddings is not None and tiled.embeddings is not None  # type: ignore[attr-defined]
    diff = float(np.abs(whole.embeddings - tiled.embeddings).max())  # type: ignore[attr-defined]
    print(f"image {args.size}x{args.size}, block core {args.tile} + halo, {args.threads} threads")
    print(f"whole image (baseline): {whole_s:.2f} s (weights: {whole.weight_format})")  # type: ignore[attr-defined]
    print(f"tiled:                  {tiled_s:.2f} s = {tiled_s / whole_s:.2f} x the whole-image time")
    print(f"max |embedding difference| tiled vs whole: {diff:.4f}")
    if args.labels:
        clustering = whole.clustering  # type: ignore[attr-defined]
        a = embeddings_to_instances(whole.embeddings, clustering)  # type: ignore[attr-defined]
        b = embeddings_to_instances(tiled.embeddings, clustering)  # type: ignore[attr-defined]
        print(f"labels: SBD(tiled, whole) = {symmetric_best_dice(b, a):.4f}")


if __name__ == "__main__":
    main()
