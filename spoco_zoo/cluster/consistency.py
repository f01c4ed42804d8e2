"""Greedy anchor clustering with the SPOCO Gaussian kernel (the losses' soft masks, made hard).

Imports numpy and torch only (used by :mod:`spoco_zoo.postprocess`).

During training, an anchor pixel's instance is the soft mask ``gaussian_kernel(|e - e_anchor|^2,
delta_var)`` (value 0.5 at distance ``delta_var``). This method extracts instances the same way,
one at a time, from the pixels not yet assigned:

1. **Anchor**: ``n_candidates`` random unassigned pixels are drawn; the one with most unassigned
   pixels within ``delta_var`` (counted on a random reference subset of at most
   ``n_reference`` unassigned pixels) wins, so anchors sit in dense object cores, not in tails.
2. **Centre**: flat mean-shift (radius ``delta_var``) from the anchor's embedding over the
   unassigned pixels within ``3 * delta_var`` of it (more robust than the anchor's own embedding,
   which may sit in the object's noisy rim).
3. **Instance**: unassigned pixels with ``gaussian_kernel(|e - centre|^2, delta_var) > threshold``
   form a new instance (at least the pixel nearest to the centre).
4. **Tails**: the other unassigned pixels within ``2 * delta_var`` of the centre are the
   instance's tail (noisy pixels beyond ``delta_var``); they are set aside as leftovers. When the
   centre lies within ``2 * delta_var`` of an earlier instance's centre, the anchor sat in that
   instance's tail: its pixels become leftovers too, and no instance is created.
5. Repeat until no pixel is unassigned, ``max_instances`` instances exist, or ``4 * max_instances``
   anchors were tried; leftovers then go to the nearest instance mean.

Deterministic for a given ``seed`` and device; one ``[N]`` distance vector per step, no ``N x N``.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from spoco_zoo.cluster.common import (
    ArrayLike,
    assign_to_nearest,
    check_common,
    check_integer,
    empty_labels,
    finalize,
    method_docstring,
    sq_norms,
    to_points,
)
from spoco_zoo.errors import DataError
from spoco_zoo.kernels import gaussian_sigma

__all__ = ["anchor_cluster"]

#: Most mean-shift steps that move the anchor to its centre.
SHIFT_STEPS = 20
#: A centre closer than this many ``delta_var`` to an existing instance is that instance's tail.
TAIL_FACTOR = 2.0
#: The anchor's centre is found among unassigned pixels within this many ``delta_var``.
LOCAL_FACTOR = 3.0


def _sq_dist(points: torch.Tensor, norms: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared distances ``[N]`` of ``points`` (squared norms ``norms``) to one point ``c``."""
    return (norms - 2.0 * (points @ c) + (c * c).sum()).clamp_min_(0.0)


def _centre(start: torch.Tensor, data: torch.Tensor, radius2: float, steps: int) -> torch.Tensor:
    """Flat mean-shift of one point ``[E]`` over ``data [M, E]`` for up to ``steps`` steps."""
    c = start
    for _ in range(steps):
        inside = sq_norms(data - c) <= radius2
        if not bool(inside.any()):
            break
        new = data[inside].mean(dim=0)
        done = bool(sq_norms((new - c).unsqueeze(0))[0] <= 1e-8 * radius2)
        c = new
        if done:
            break
    return c


@method_docstring
def anchor_cluster(
    embeddings: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    delta_var: float = 0.5,
    threshold: float = 0.5,
    max_instances: int = 256,
    n_candidates: int = 16,
    n_reference: int = 4096,
    min_members: int = 3,
    min_size: int = 0,
    background: Literal["none", "largest"] = "largest",
    device: None | str | torch.device = None,
    seed: int = 0,
) -> np.ndarray:
    """Cluster pixel embeddings into instances by greedy anchor extraction with the SPOCO kernel.

    Parameters
    ----------
    {embeddings and mask}
    delta_var:
        Pull margin of training; the kernel is 0.5 at this distance.
    threshold:
        Kernel value above which an unassigned pixel joins the anchor's instance, in ``(0, 1)``
        (0.5: distance below ``delta_var``).
    max_instances:
        Most instances extracted (background included when it is one of the clusters).
    n_candidates, n_reference:
        Anchor candidates per step and size of the random reference subset (see module docs).
    min_members:
        An anchor whose instance would have fewer pixels is an outlier: its pixels become
        leftovers instead of a new instance.
    {min_size and background}
    {device}
    seed:
        Seed of the anchor candidates.

    {labels}

    {errors}

    Examples
    --------
    >>> emb = np.zeros((2, 4, 6), np.float32); emb[0, :, 3:] = 3.0; emb[1, 2:, 3:] = 3.0
    >>> anchor_cluster(emb, device="cpu").tolist()[1:3]
    [[0, 0, 0, 1, 1, 1], [0, 0, 0, 2, 2, 2]]
    """
    if not delta_var > 0:
        raise DataError(f"delta_var: must be positive, got {delta_var!r}")
    if not 0 < threshold < 1:
        raise DataError(f"threshold: must be in (0, 1), got {threshold!r}")
    for name, value in (
        ("max_instances", max_instances),
        ("n_candidates", n_candidates),
        ("n_reference", n_reference),
        ("min_members", min_members),
    ):
        check_integer(name, value, 1)
    check_common(min_size, background)
    points, index = to_points(embeddings, mask, device)
    shape = tuple(embeddings.shape)
    if points.shape[0]:  # translation-invariant method: centring keeps |x|^2 expansions accurate
        points = points - points.mean(dim=0)
    n = points.shape[0]
    if n == 0:
        return empty_labels(shape)

    dev = points.device
    min_members = min(int(min_members), n)
    gen = torch.Generator().manual_seed(int(seed))
    radius2 = float(delta_var) ** 2
    tail2 = (TAIL_FACTOR * float(delta_var)) ** 2
    # exp(-d2 / (2 sigma^2)) > threshold  <=>  d2 < -2 sigma^2 ln(threshold)  (no exp, no denormals)
    member2 = -2.0 * gaussian_sigma(float(delta_var)) ** 2 * math.log(float(threshold))
    assignment = torch.full((n,), -1, dtype=torch.long, device=dev)
    local2 = (LOCAL_FACTOR * float(delta_var)) ** 2
    centres: list[torch.Tensor] = []  # member means, for the leftovers
    modes: list[torch.Tensor] = []  # mean-shift centres, for the tail test
    # working set (compacted when a quarter of it is gone): points, squared norms, original index
    pts, pn, idx = points, sq_norms(points), torch.arange(n, device=dev)
    alive = torch.ones(n, dtype=torch.bool, device=dev)
    with torch.no_grad():
        for _ in range(4 * int(max_instances)):
            if len(centres) >= max_instances:
                break
            live = torch.nonzero(alive, as_tuple=False).reshape(-1)
            m = live.shape[0]
            if m == 0:
                break
            if m < 0.75 * pts.shape[0]:
                pts, pn, idx = pts[live], pn[live], idx[live]
                alive = torch.ones(m, dtype=torch.bool, device=dev)
                live = torch.arange(m, device=dev)
            ref = pts[live[torch.randint(m, (min(m, int(n_reference)),), generator=gen).to(dev)]]
            cand = pts[live[torch.randint(m, (int(n_candidates),), generator=gen).to(dev)]]
            density = (torch.cdist(cand, ref).square() <= radius2).sum(dim=1)
            anchor = cand[int(torch.argmax(density))]
            near = alive & (_sq_dist(pts, pn, anchor) <= local2)
            centre = _centre(anchor, pts[near], radius2, SHIFT_STEPS)
            d2 = _sq_dist(pts, pn, centre)
            take = alive & (d2 < member2)  # == alive & (gaussian_kernel(d2, delta_var) > threshold)
            if not bool(take.any()):  # at least the live pixel nearest to the centre (progress)
                take = torch.zeros_like(alive)
                take[live[torch.argmin(d2[live])]] = True
            tail = bool(modes) and float(sq_norms(torch.stack(modes) - centre).min()) < tail2
            if not tail and int(take.sum()) >= min_members:
                assignment[idx[take]] = len(centres)
                centres.append(pts[take].mean(dim=0))
                modes.append(centre)
            # live pixels within TAIL_FACTOR * delta_var are this instance's tail: leftovers
            alive &= ~(take | (d2 <= tail2))
        left = torch.nonzero(assignment < 0, as_tuple=False).reshape(-1)
        if not centres:  # pragma: no cover - every anchor was an outlier: one cluster
            assignment.zero_()
        elif left.numel():  # tails and what was never reached: nearest instance mean
            nearest, _ = assign_to_nearest(points[left], torch.stack(centres))
            assignment[left] = nearest
    return finalize(assignment, index, shape[1:], min_size=min_size, background=background)
