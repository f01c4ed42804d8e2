"""Memory-bounded mean-shift clustering of pixel embeddings in PyTorch (CPU or GPU).

Imports numpy and torch only (used by :mod:`spoco_zoo.postprocess`).

Algorithm
---------
1. **Sample**: ``M = min(N, n_samples)`` random pixels ``S`` (of the ``N`` clustered pixels) are
   the data the modes are searched on.
2. **Seeds**: with ``bin_seeding`` the sample is binned on a grid of cell size ``bandwidth`` in
   embedding space (as scikit-learn does); every cell with at least ``min_bin_freq`` samples gives
   one seed, the mean of its samples, and the ``n_seeds`` most populated cells are used. Without
   ``bin_seeding``, ``n_seeds`` random samples are the seeds.
3. **Climb**: seeds move to the (flat or Gaussian) kernel mean of ``S`` until they move less than
   ``tol * bandwidth`` or ``max_iter`` steps; seeds whose flat window is empty are dropped, exact
   duplicates are dropped every :data:`DEDUP_EVERY` steps and at the end (flat-kernel seeds with
   equal windows coincide after one step and then follow one path). Distances are computed in
   blocks of seeds x data rows (at most ~64 MB), never ``N x N``.
4. **Merge**: modes are ranked by their kernel mass (flat kernel: samples within ``bandwidth``)
   and greedily kept unless within ``bandwidth`` of a better one (scikit-learn's non-maximum
   suppression).
5. **Coverage**: samples farther than ``2 * bandwidth`` from every kept mode (objects the first
   seeds missed) seed a further round (bins not tried before), until a round finds no new mode.
   The modes are not refined on all pixels: an isolated sample in an object's rim keeps its own
   small mode, whose pixels the local pipeline's ``min_size`` step merges into a neighbour. (A
   refinement climb on all pixels took two thirds of the segmentation time and changed the
   scores by less than their spread between samples, ``docs/benchmarks.md``.)
6. **Assign**: every pixel goes to its nearest mode (chunked), then the common post-processing
   (largest cluster -> background without a mask, ``min_size``, consecutive ids) of
   :func:`spoco_zoo.cluster.common.finalize`.

Limits: an object none of whose pixels is sampled (fewer than about ``N / n_samples`` pixels) has
no mode; its pixels join the nearest other cluster (``min_size`` usually removes such objects
anyway). Memory: the points, a few ``[N]`` vectors and distance blocks of at most ~64 MB each.

The result agrees with :class:`sklearn.cluster.MeanShift` (``bin_seeding=True``) on well-formed
embeddings while visiting a fixed-size sample instead of running a radius query over all pixels
per seed and iteration (``benchmarks/clustering.py``, ``docs/benchmarks.md``).
"""

from __future__ import annotations

import functools
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
    rows_per_block,
    sq_norms,
    to_points,
)
from spoco_zoo.errors import DataError
from spoco_zoo.kernels import gaussian_sigma

__all__ = ["mean_shift", "find_modes"]

#: Samples farther than this many bandwidths from every mode start a further seeding round.
COVERAGE_FACTOR = 2.0
#: Upper bound on seeding rounds (each round must find a new mode to continue).
MAX_ROUNDS = 16
#: Climbing seeds are checked for exact duplicates (which follow identical paths) every this many steps.
DEDUP_EVERY = 4
#: Data rows per distance block (with ``rows_per_block`` seeds: blocks of at most ~64 MB).
COLUMN_BLOCK = 65536

# Odd 62-bit multipliers for hashing integer rows into one int64 key (wrap-around arithmetic).
_HASH_SEED = 0x5EED


@functools.lru_cache(maxsize=8)
def _multipliers(columns: int, device: torch.device) -> torch.Tensor:
    """The odd hash multipliers of :func:`_row_keys` (fixed by ``_HASH_SEED``; made once per width)."""
    gen = torch.Generator().manual_seed(_HASH_SEED)
    return (torch.randint(1, 2**62, (columns,), generator=gen, dtype=torch.long) * 2 + 1).to(device)


def _row_keys(rows: torch.Tensor) -> torch.Tensor:
    """One int64 hash per row of an integer tensor ``[P, E]``.

    Collisions (probability ~ P^2 / 2^64) would merge two grid cells or drop one of two modes.
    """
    return (rows.to(torch.long) * _multipliers(int(rows.shape[1]), rows.device)).sum(dim=1)


def _float_keys(x: torch.Tensor) -> torch.Tensor:
    """Hash of the exact float32 bit patterns of each row (equal rows -> equal keys)."""
    return _row_keys(x.contiguous().view(torch.int32))


def _first_of_each(keys: torch.Tensor) -> torch.Tensor:
    """Sorted positions of the first occurrence of each distinct key."""
    uniq, inverse = torch.unique(keys, return_inverse=True)
    pos = torch.arange(keys.shape[0], device=keys.device)
    first = torch.full((uniq.shape[0],), keys.shape[0], dtype=torch.long, device=keys.device)
    first.scatter_reduce_(0, inverse, pos, reduce="amin")
    return torch.sort(first).values


def _bin_seeds(
    samples: torch.Tensor,
    bandwidth: float,
    min_bin_freq: int,
    n_seeds: int,
    exclude: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of the ``n_seeds`` most populated grid cells (size ``bandwidth``) and their keys."""
    cells = torch.round(samples / bandwidth).to(torch.long)
    keys = _row_keys(cells)
    uniq, inverse, counts = torch.unique(keys, return_inverse=True, return_counts=True)
    sums = torch.zeros(uniq.shape[0], samples.shape[1], dtype=samples.dtype, device=samples.device)
    sums.index_put_((inverse,), samples, accumulate=True)  # (index_add_ is slow on CPU)
    means = sums / counts.unsqueeze(1).to(samples.dtype)
    keep = counts >= min_bin_freq
    if exclude is not None and exclude.numel():
        keep &= ~torch.isin(uniq, exclude)
    means, counts, uniq = means[keep], counts[keep], uniq[keep]
    order = torch.sort(counts, descending=True, stable=True).indices[:n_seeds]
    return means[order], uniq[order]


def _with_ones(data: torch.Tensor) -> torch.Tensor:
    """``data`` with a column of ones: one product gives the kernel-weighted sums and the mass."""
    return torch.cat([data, data.new_ones((data.shape[0], 1))], dim=1)


def _shift_block(
    y: torch.Tensor,
    data: torch.Tensor,
    dn: torch.Tensor,
    bandwidth: float,
    gaussian: bool,
    data1: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel means ``[P, E]`` of ``data [M, E]`` (squared norms ``dn``; ``data1``: :func:`_with_ones`
    of it, made once per climb) around ``y`` and the kernel mass ``[P]``, in blocks of at most
    ``COLUMN_BLOCK`` data rows x ``rows_per_block`` seeds."""
    data1 = _with_ones(data) if data1 is None else data1
    dims = y.shape[1]
    acc = torch.zeros(y.shape[0], dims + 1, dtype=y.dtype, device=y.device)
    yn = sq_norms(y)
    bw2 = bandwidth * bandwidth
    factor = -0.5 / gaussian_sigma(bandwidth) ** 2
    for col in range(0, data.shape[0], COLUMN_BLOCK):
        block = data[col : col + COLUMN_BLOCK]
        cols = block.shape[0]
        block1 = data1[col : col + COLUMN_BLOCK]
        bt, bn = block.t(), dn[col : col + COLUMN_BLOCK].unsqueeze(0)
        step = min(rows_per_block(cols), y.shape[0])
        buffer = torch.empty(step * cols, dtype=y.dtype, device=y.device)  # reused: no page faults
        for start in range(0, y.shape[0], step):
            rows = slice(start, start + step)
            yr = y[rows]
            part = torch.addmm(bn, yr, bt, beta=1.0, alpha=-2.0, out=buffer[: yr.shape[0] * cols].view(-1, cols))
            if gaussian:  # gaussian_kernel(d2, bandwidth) in place; exponent >= -80: no (slow) denormals
                w = part.add_(yn[rows].unsqueeze(1)).clamp_min_(0.0).mul_(factor).clamp_min_(-80.0).exp_()
            else:  # in place 1.0 / 0.0 for |s|^2 - 2 y.s <= bw^2 - |y|^2
                w = part.le_((bw2 - yn[rows]).unsqueeze(1))
            acc[rows] += w @ block1
    mass = acc[:, dims]
    return acc[:, :dims] / mass.clamp_min(1e-30).unsqueeze(1), mass


def _distinct(y: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """Mask keeping the first of each group of exactly equal rows among ``alive`` ones (exact
    duplicates follow identical paths)."""
    live = torch.nonzero(alive, as_tuple=False).reshape(-1)
    keep = torch.zeros_like(alive)
    keep[live[_first_of_each(_float_keys(y[live]))]] = True
    return keep


def _climb(
    seeds: torch.Tensor,
    samples: torch.Tensor,
    sn: torch.Tensor,
    bandwidth: float,
    gaussian: bool,
    max_iter: int,
    tol: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run mean-shift from ``seeds`` to convergence.

    Returns the distinct surviving modes and their kernel mass (flat kernel: the number of data
    points within ``bandwidth``; measured at the last step, i.e. within ``tol * bandwidth`` of the
    mode), used to rank the modes.
    """
    y = seeds.clone()
    mass = torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
    active = torch.ones(y.shape[0], dtype=torch.bool, device=y.device)
    alive = torch.ones_like(active)
    stop = tol * bandwidth
    samples1 = _with_ones(samples)
    for iteration in range(max_iter):
        idx = torch.nonzero(active & alive, as_tuple=False).reshape(-1)
        if idx.numel() == 0:
            break
        new, weight = _shift_block(y[idx], samples, sn, bandwidth, gaussian, samples1)
        empty = weight <= 0
        moved = torch.linalg.vector_norm(new - y[idx], dim=1)
        y[idx] = torch.where(empty.unsqueeze(1), y[idx], new)
        mass[idx] = weight
        alive[idx[empty]] = False
        active[idx[moved <= stop]] = False
        if iteration % DEDUP_EVERY == 0:
            alive &= _distinct(y, alive)
    alive &= _distinct(y, alive)
    return y[alive], mass[alive]


def _greedy_cover(points: torch.Tensor, radius: float, taken: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of ``points`` (in order, best first) kept greedily when not within ``radius`` of a kept
    point or of a row of ``taken`` (non-maximum suppression)."""
    p = points.shape[0]
    if p == 0:
        return torch.zeros(0, dtype=torch.long, device=points.device)
    near = (torch.cdist(points, points) <= radius).cpu().numpy()
    if taken is not None and taken.shape[0]:
        suppressed = (torch.cdist(points, taken) <= radius).any(dim=1).cpu().numpy()
    else:
        suppressed = np.zeros(p, dtype=bool)
    kept: list[int] = []
    for i in range(p):
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed |= near[i]
    return torch.as_tensor(kept, dtype=torch.long, device=points.device)


def _suppress(modes: torch.Tensor, mass: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Indices of modes kept by non-maximum suppression (highest kernel mass first, radius ``bandwidth``)."""
    order = torch.sort(mass, descending=True, stable=True).indices
    return order[_greedy_cover(modes[order], bandwidth)]


def find_modes(
    points: torch.Tensor,
    *,
    bandwidth: float = 0.5,
    kernel: Literal["flat", "gaussian"] = "flat",
    n_seeds: int = 512,
    n_samples: int = 20000,
    max_iter: int = 300,
    tol: float = 1e-3,
    bin_seeding: bool = True,
    min_bin_freq: int = 1,
    seed: int = 0,
) -> torch.Tensor:
    """Mean-shift modes ``[K, E]`` of ``points [N, E]`` (steps 1-5 of the module docstring), best first.

    ``points`` must be a finite float tensor; the modes are on its device.
    """
    n = points.shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    if n > n_samples:
        pick = torch.randperm(n, generator=gen)[:n_samples].to(points.device)
        samples = points.index_select(0, pick)
    else:
        samples = points
    sn = sq_norms(samples)
    gaussian = kernel == "gaussian"
    cover2 = (COVERAGE_FACTOR * bandwidth) ** 2

    raw = samples.new_zeros((0, samples.shape[1]))
    raw_mass = samples.new_zeros((0,))
    tried = torch.zeros(0, dtype=torch.long, device=samples.device)
    centres = raw
    candidates = samples
    for round_ in range(MAX_ROUNDS):
        if bin_seeding:
            seeds, keys = _bin_seeds(candidates, bandwidth, min_bin_freq, n_seeds, tried)
            tried = torch.cat([tried, keys])
        else:
            pick = torch.randperm(candidates.shape[0], generator=gen)[:n_seeds].to(samples.device)
            seeds = candidates.index_select(0, pick)
        # a seed within bandwidth of a better seed or of a known mode climbs to the same mode
        seeds = seeds[_greedy_cover(seeds, bandwidth, centres)]
        if seeds.shape[0] == 0:
            break
        found, found_mass = _climb(seeds, samples, sn, bandwidth, gaussian, max_iter, tol)
        if found.shape[0] == 0 and raw.shape[0] == 0:
            # pathological (no seed kept a sample in its window): use the best seed as the mode
            found, found_mass = seeds[:1], samples.new_ones((1,))
        raw = torch.cat([raw, found])
        raw_mass = torch.cat([raw_mass, found_mass])
        unique = _first_of_each(_float_keys(raw))
        raw, raw_mass = raw[unique], raw_mass[unique]
        previous = centres.shape[0]
        centres = raw[_suppress(raw, raw_mass, bandwidth)]
        if round_ > 0 and centres.shape[0] <= previous:
            break  # this round found nothing new
        _, d2 = assign_to_nearest(samples, centres)
        candidates = samples[d2 > cover2]
        if candidates.shape[0] < min_bin_freq or candidates.shape[0] == 0:
            break
    return centres


@method_docstring
def mean_shift(
    embeddings: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    bandwidth: float = 0.5,
    kernel: Literal["flat", "gaussian"] = "flat",
    n_seeds: int = 512,
    n_samples: int = 20000,
    max_iter: int = 300,
    tol: float = 1e-3,
    bin_seeding: bool = True,
    min_bin_freq: int = 1,
    min_size: int = 0,
    background: Literal["none", "largest"] = "largest",
    device: None | str | torch.device = None,
    seed: int = 0,
) -> np.ndarray:
    """Cluster pixel embeddings into instances with sampled, blocked mean-shift.

    Parameters
    ----------
    {embeddings and mask}
    bandwidth:
        Kernel radius in embedding units; the training pull margin ``delta_var`` (0.5).
    kernel:
        ``"flat"`` (samples within ``bandwidth``, as scikit-learn) or ``"gaussian"`` (the SPOCO
        kernel of :mod:`spoco_zoo.kernels`, 0.5 at ``bandwidth``).
    n_seeds:
        Seeds per seeding round (the most populated bins, or random samples).
    n_samples:
        Pixels sampled to find the modes (all pixels when fewer); memory and time scale with it.
    max_iter, tol:
        A seed stops after ``max_iter`` steps or when it moves less than ``tol * bandwidth``.
    bin_seeding, min_bin_freq:
        Seed from grid cells of size ``bandwidth`` holding at least ``min_bin_freq`` samples
        (else from random samples).
    {min_size and background}
    {device}
    seed:
        Seed of the pixel sample (results are deterministic for a seed and device).

    {labels}

    {errors}

    Examples
    --------
    >>> emb = np.zeros((2, 4, 6), np.float32); emb[0, :, 3:] = 3.0; emb[1, 2:, 3:] = 3.0
    >>> mean_shift(emb, device="cpu").tolist()[1:3]
    [[0, 0, 0, 1, 1, 1], [0, 0, 0, 2, 2, 2]]
    """
    if not bandwidth > 0:
        raise DataError(f"bandwidth: must be positive, got {bandwidth!r}")
    if kernel not in ("flat", "gaussian"):
        raise DataError(f"kernel: must be 'flat' or 'gaussian', got {kernel!r}")
    for name, value, low in (
        ("n_seeds", n_seeds, 1),
        ("n_samples", n_samples, 1),
        ("max_iter", max_iter, 1),
        ("min_bin_freq", min_bin_freq, 1),
    ):
        check_integer(name, value, low)
    if not tol >= 0:
        raise DataError(f"tol: must be >= 0, got {tol!r}")
    check_common(min_size, background)
    points, index = to_points(embeddings, mask, device)
    shape = tuple(embeddings.shape)
    if points.shape[0]:  # translation-invariant method: centring keeps |x|^2 expansions accurate
        points = points - points.mean(dim=0)
    if points.shape[0] == 0:
        return empty_labels(shape)
    with torch.no_grad():
        centres = find_modes(
            points,
            bandwidth=float(bandwidth),
            kernel=kernel,
            n_seeds=int(n_seeds),
            n_samples=int(n_samples),
            max_iter=int(max_iter),
            tol=float(tol),
            bin_seeding=bool(bin_seeding),
            min_bin_freq=int(min_bin_freq),
            seed=int(seed),
        )
        assignment, _ = assign_to_nearest(points, centres)
    return finalize(assignment, index, shape[1:], min_size=min_size, background=background)
