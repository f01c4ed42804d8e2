"""Connected components and small-fragment merging on large label images vs scikit-image.

The label images are synthetic objects (the training data's density) whose ids repeat every 7
objects, as clusters of a local clustering do; the baseline in the same run is
``skimage.measure.label`` (C code) for the components. The numbers checked: same partition,
time, and that the fragment merging (``absorb_small_components``) stays a few passes over the pixels.

    python benchmarks/components.py --sizes 2048x2048 128x512x512
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def labels_of(shape: tuple[int, ...]) -> np.ndarray:
    from spoco_zoo.data.synthetic import make_synthetic_sample

    plane = shape if len(shape) == 2 else shape[1:]
    _, truth = make_synthetic_sample(plane, max(8, int(40 * plane[0] * plane[1] / 256**2)), seed=2)
    labels = (truth % 7).astype(np.int64)
    if len(shape) == 3:  # objects as columns through the volume, cut every 16 planes
        labels = np.repeat(labels[None], shape[0], axis=0)
        labels[::16] = 0
    return labels


def main() -> None:
    from skimage.measure import label as skimage_label

    from spoco_zoo.cluster.components import absorb_small_components, connected_components

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["2048x2048", "128x512x512"])
    args = parser.parse_args()
    print(f"{'shape':<14}{'components s':>14}{'skimage s':>11}{'same':>6}{'absorb s':>10}{'objects':>9}")
    for text in args.sizes:
        shape = tuple(int(v) for v in text.split("x"))
        labels = labels_of(shape)
        start = time.perf_counter()
        parts = connected_components(labels)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        reference = skimage_label(labels, background=0, connectivity=1)
        theirs = time.perf_counter() - start
        same = bool(np.array_equal(parts.labels, reference))
        start = time.perf_counter()
        absorb_small_components(parts.labels, 64)
        absorb = time.perf_counter() - start
        print(f"{text:<14}{ours:>14.2f}{theirs:>11.2f}{str(same):>6}{absorb:>10.2f}{parts.count:>9}")


if __name__ == "__main__":
    main()
