"""Sample data: a synthetic image with a few objects painted, and the human-in-the-loop step of painting more.

The image is the project's synthetic data (:func:`spoco_zoo.data.synthetic.make_synthetic_sample`,
crowded touching objects); the painted objects are chosen by :func:`spoco_zoo.data.sparsify.sparsify`
in the ``objects_only`` convention -- as if a user had painted them completely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SAMPLE_NAME", "SampleScene", "sample_scene", "paint_more", "sample_data"]

#: Name of the sample's Image layer (the Labels layer is ``"<name> painted"``).
SAMPLE_NAME = "spoco sample"


@dataclass
class SampleScene:
    """A synthetic image ``[*S]``, its dense ground truth and the painted objects (0 = unpainted)."""

    image: np.ndarray
    truth: np.ndarray
    painted: np.ndarray


def sample_scene(
    shape: Sequence[int] = (256, 256), n_objects: int = 40, n_painted: int = 5, seed: int = 0
) -> SampleScene:
    """A synthetic image with ``n_painted`` of its objects painted (ids as in the ground truth).

    >>> scene = sample_scene((64, 64), 8, 3)
    >>> len(np.unique(scene.painted[scene.painted > 0])), scene.painted.dtype
    (3, dtype('uint32'))
    """
    from spoco_zoo.data.sparsify import sparsify
    from spoco_zoo.data.synthetic import make_synthetic_sample

    image, truth = make_synthetic_sample(tuple(shape), n_objects, seed)
    n_truth = len(np.unique(truth[truth > 0]))
    fraction = min(1.0, n_painted / max(n_truth, 1))
    painted = sparsify(truth, fraction, (seed, 7), convention="objects_only")
    return SampleScene(image, truth, painted.astype(np.uint32))


def paint_more(truth: np.ndarray, painted: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    """``painted`` plus the ``n`` unpainted ground-truth objects the prediction got most wrong.

    An object's score is its best intersection-over-union with any predicted object; the lowest
    ``n`` are painted (ties: smaller id first) -- what a user does after looking at the result.

    >>> truth = np.array([[1, 1, 2, 2, 3, 3]]); painted = np.array([[1, 1, 0, 0, 0, 0]])
    >>> paint_more(truth, painted, np.array([[1, 1, 1, 1, 2, 2]]), 1).tolist()
    [[1, 1, 2, 2, 0, 0]]
    """
    truth = np.asarray(truth, dtype=np.int64)
    done = set(np.unique(painted[painted > 0]).tolist())
    candidates = [int(i) for i in np.unique(truth[truth > 0]) if int(i) not in done]
    scores = []
    for obj in candidates:
        mask = truth == obj
        ids, overlap = np.unique(predicted[mask], return_counts=True)
        best = 0.0
        for pid, inter in zip(ids, overlap):
            if pid == 0:
                continue
            union = int(mask.sum()) + int((predicted == pid).sum()) - int(inter)
            best = max(best, inter / union)
        scores.append((best, obj))
    chosen = [obj for _, obj in sorted(scores)[:n]]
    out = np.array(painted, copy=True)
    hit = np.isin(truth, chosen)
    out[hit] = truth[hit]
    return out


def sample_data() -> list[tuple[Any, dict[str, Any], str]]:
    """napari sample: the synthetic image and a Labels layer with 5 objects painted."""
    scene = sample_scene()
    return [
        (scene.image, {"name": SAMPLE_NAME}, "image"),
        (scene.painted, {"name": f"{SAMPLE_NAME} painted"}, "labels"),
    ]
