"""Clustering benchmark: our torch mean-shift vs scikit-learn's MeanShift on the same embeddings.

One run builds one embedding image and times, on it:

* ``mean_shift`` (ours; torch on CPU with ``--threads`` threads, median of ``--repeats`` runs),
* ``sklearn.cluster.MeanShift(bandwidth, bin_seeding=True, n_jobs=--sklearn-jobs)`` on all
  pixels, in a separate process that is stopped after ``--sklearn-max-seconds``,
* ``hdbscan_cluster`` and ``anchor_cluster`` (ours),

and reports wall time, peak memory (RSS growth during the call, sampled every 2 ms in the
process; plus the whole process's ``ru_maxrss``), the Symmetric Best Dice (SBD) against the
ground truth and, for mean-shift, the SBD of our labels against scikit-learn's (same
post-processing: largest cluster -> background, ``--min-size``, consecutive ids; the agreement
without ``min_size`` is printed below the table).

Embeddings (default): labels of ``spoco_zoo.data.synthetic.make_synthetic_sample`` (crowded,
touching objects + background), one random centre per label (pairwise distance >= ``--min-dist``)
plus isotropic Gaussian noise of per-axis std ``--noise``. With ``--checkpoint`` the embeddings are
predicted by a trained network on the synthetic image instead (ground truth: its labels).

    python benchmarks/clustering.py                       # 512x512, 16-D, 60 objects, 2 threads
    python benchmarks/clustering.py --no-sklearn --repeats 5
    python benchmarks/clustering.py --checkpoint runs/spoco/last.pt
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


# ----------------------------------------------------------------------------- measurement
def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident memory above the level at entry, sampled by a thread every ``interval`` s."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = _rss_bytes()
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def delta_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def sbd(pred: np.ndarray, gt: np.ndarray) -> float:
    """Symmetric Best Dice over foreground ids (0 ignored); vectorised with a sparse contingency table."""
    a = pred.ravel().astype(np.int64)
    b = gt.ravel().astype(np.int64)
    na, nb = np.bincount(a), np.bincount(b)
    if len(na) < 2 or len(nb) < 2 or na[1:].sum() == 0 or nb[1:].sum() == 0:
        return 0.0
    both = (a > 0) & (b > 0)
    pairs, counts = np.unique(a[both] * len(nb) + b[both], return_counts=True)
    ia, ib = pairs // len(nb), pairs % len(nb)
    dice = 2.0 * counts / (na[ia] + nb[ib])
    best_a = np.zeros(len(na))
    np.maximum.at(best_a, ia, dice)
    best_b = np.zeros(len(nb))
    np.maximum.at(best_b, ib, dice)
    ids_a, ids_b = np.nonzero(na[1:])[0] + 1, np.nonzero(nb[1:])[0] + 1
    return float(min(best_a[ids_a].mean(), best_b[ids_b].mean()))


def postprocess(labels: np.ndarray, min_size: int) -> np.ndarray:
    """scikit-learn labels (0..K-1, all pixels) -> our convention (largest = 0, min_size, 1..K)."""
    from spoco_zoo.cluster.common import relabel_sequential, remove_small, set_largest_to_background

    return relabel_sequential(remove_small(set_largest_to_background(labels + 1), min_size))


# ----------------------------------------------------------------------------- data
def make_embeddings(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    """``(embeddings [E, *S] float32, ground truth labels [*S], description)``."""
    from spoco_zoo.data.synthetic import make_synthetic_sample

    shape = tuple(args.size)
    image, labels = make_synthetic_sample(shape, args.objects, args.seed)
    if args.checkpoint:
        import torch

        from spoco_zoo.data.normalize import normalize
        from spoco_zoo.train.checkpoint import load_model

        model, config = load_model(Path(args.checkpoint))
        x = normalize(image[None], config.data.normalization)
        with torch.no_grad():
            emb = model(torch.from_numpy(x)[None])[0].numpy().astype(np.float32)
        return emb, labels, f"trained network {args.checkpoint}, E={emb.shape[0]}"
    rng = np.random.default_rng(args.seed)
    n = int(labels.max()) + 1
    centres: list[np.ndarray] = []
    while len(centres) < n:
        c = rng.normal(0.0, args.spread, args.dim)
        if all(np.linalg.norm(c - o) >= args.min_dist for o in centres):
            centres.append(c)
    table = np.asarray(centres, dtype=np.float32)
    emb = table[labels] + rng.normal(0.0, args.noise, labels.shape + (args.dim,)).astype(np.float32)
    desc = (
        f"synthetic E={args.dim}, {n - 1} objects + background, centres >= {args.min_dist} apart, "
        f"noise std {args.noise}/axis"
    )
    return np.ascontiguousarray(np.moveaxis(emb, -1, 0)), labels, desc


# ----------------------------------------------------------------------------- sklearn (own process)
def _sklearn_worker(path: str, bandwidth: float, jobs: int, out: str) -> None:
    from sklearn.cluster import MeanShift

    emb = np.load(path)
    x = emb.reshape(emb.shape[0], -1).T.copy()
    with PeakRSS() as mem:
        start = time.perf_counter()
        model = MeanShift(bandwidth=bandwidth, bin_seeding=True, n_jobs=jobs).fit(x)
        seconds = time.perf_counter() - start
    np.save(out, model.labels_.reshape(emb.shape[1:]).astype(np.int64))
    with open(out + ".json", "w") as f:
        json.dump({"seconds": seconds, "clusters": int(len(model.cluster_centers_)), "mem": mem.delta_mib}, f)


def run_sklearn(emb: np.ndarray, args: argparse.Namespace) -> dict[str, Any] | None:
    """Fit MeanShift in a spawned process; ``None`` when it exceeds ``--sklearn-max-seconds``."""
    with tempfile.TemporaryDirectory() as tmp:
        path, out = os.path.join(tmp, "emb.npy"), os.path.join(tmp, "labels.npy")
        np.save(path, emb)
        ctx = mp.get_context("spawn")
        proc = ctx.Process(target=_sklearn_worker, args=(path, args.bandwidth, args.sklearn_jobs, out))
        proc.start()
        proc.join(args.sklearn_max_seconds)
        if proc.is_alive():
            proc.terminate()
            proc.join()
            return None
        if proc.exitcode != 0:
            raise RuntimeError(f"scikit-learn MeanShift failed (exit code {proc.exitcode})")
        with open(out + ".json") as f:
            info = json.load(f)
        info["labels"] = np.load(out)
        return info


# ----------------------------------------------------------------------------- main
def timed(func: Callable[[], np.ndarray], repeats: int) -> tuple[np.ndarray, float, float, float]:
    """``(labels, median s, min s, peak RSS growth MiB)`` over ``repeats`` calls (after one warm-up)."""
    func()
    times, peak = [], 0.0
    labels = None
    for _ in range(repeats):
        with PeakRSS() as mem:
            start = time.perf_counter()
            labels = func()
            times.append(time.perf_counter() - start)
        peak = max(peak, mem.delta_mib)
    return labels, float(np.median(times)), float(np.min(times)), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs="+", default=[512, 512], help="image shape (2 or 3 axes)")
    parser.add_argument("--objects", type=int, default=60)
    parser.add_argument("--dim", type=int, default=16, help="embedding dimension E")
    parser.add_argument("--noise", type=float, default=0.1, help="per-axis noise std of the embeddings")
    parser.add_argument("--spread", type=float, default=1.5, help="std of the random object centres")
    parser.add_argument("--min-dist", type=float, default=2.5, help="minimum distance between centres")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None, help="predict the embeddings with this checkpoint")
    parser.add_argument("--bandwidth", type=float, default=0.5, help="mean-shift bandwidth = delta_var")
    parser.add_argument("--min-size", type=int, default=16, help="objects smaller than this -> 0 (all methods)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of our methods (median reported)")
    parser.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn's MeanShift")
    parser.add_argument("--sklearn-jobs", type=int, default=2)
    parser.add_argument("--sklearn-max-seconds", type=float, default=3600.0)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from spoco_zoo.cluster.consistency import anchor_cluster
    from spoco_zoo.cluster.density import hdbscan_cluster
    from spoco_zoo.cluster.mean_shift import mean_shift

    emb, gt, desc = make_embeddings(args)
    load = os.getloadavg()
    print(
        f"# {datetime.date.today()}  {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} torch threads, "
        f"load average {load[0]:.2f}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
    )
    print(f"# embeddings {list(emb.shape)} ({desc}); bandwidth {args.bandwidth}, min_size {args.min_size}")

    common = dict(min_size=args.min_size)
    ours = {
        "mean_shift (ours, flat)": lambda: mean_shift(emb, bandwidth=args.bandwidth, device="cpu", **common),
        "mean_shift (ours, gaussian)": lambda: mean_shift(
            emb, bandwidth=args.bandwidth, kernel="gaussian", device="cpu", **common
        ),
        "hdbscan_cluster (ours)": lambda: hdbscan_cluster(emb, **common),
        "anchor_cluster (ours)": lambda: anchor_cluster(emb, delta_var=args.bandwidth, device="cpu", **common),
    }
    rows: list[dict[str, Any]] = []
    results: dict[str, np.ndarray] = {}
    for name, func in ours.items():
        labels, med, best, mem = timed(func, args.repeats)
        results[name] = labels
        rows.append(
            {
                "method": name,
                "seconds": med,
                "min_seconds": best,
                "mem_mib": mem,
                "objects": int(labels.max()),
                "sbd_gt": sbd(labels, gt),
            }
        )

    import resource

    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    ms_ours = results["mean_shift (ours, flat)"]
    sk_row: dict[str, Any] = {"method": f"sklearn MeanShift (bin_seeding, n_jobs={args.sklearn_jobs})"}
    if not args.no_sklearn:
        info = run_sklearn(emb, args)
        if info is None:
            sk_row.update(seconds=float("nan"), note=f"stopped after {args.sklearn_max_seconds:.0f} s")
        else:
            sk_labels = postprocess(info["labels"], args.min_size)
            sk_row.update(
                seconds=info["seconds"],
                min_seconds=info["seconds"],
                mem_mib=info["mem"],
                objects=int(sk_labels.max()),
                sbd_gt=sbd(sk_labels, gt),
                sbd_ours=sbd(ms_ours, sk_labels),
                clusters_raw=info["clusters"],
            )
            ours_raw = mean_shift(emb, bandwidth=args.bandwidth, device="cpu")  # min_size=0
            sk_raw = postprocess(info["labels"], 0)
            sk_row["raw"] = {
                "objects_ours": int(ours_raw.max()),
                "objects_sklearn": int(sk_raw.max()),
                "sbd_ours": sbd(ours_raw, sk_raw),
            }
        rows.insert(2, sk_row)

    width = max(len(r["method"]) for r in rows)
    print(f"\n| {'method':<{width}} | wall s (median) | peak RSS +MiB | objects | SBD vs GT | SBD vs sklearn |")
    print(f"| {'-' * width} | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        secs = f"{r['seconds']:.3f}" if r.get("seconds") == r.get("seconds") else r.get("note", "-")
        mem = f"{r['mem_mib']:.0f}" if "mem_mib" in r else "-"
        objs = str(r.get("objects", "-"))
        sgt = f"{r['sbd_gt']:.4f}" if "sbd_gt" in r else "-"
        sours = f"{r['sbd_ours']:.4f}" if "sbd_ours" in r else "-"
        print(f"| {r['method']:<{width}} | {secs} | {mem} | {objs} | {sgt} | {sours} |")
    print(
        f"\nobjects in ground truth: {int(gt.max())}; peak RSS of this process (data + our methods, "
        f"ru_maxrss): {process_peak:.0f} MiB"
    )
    ours_s = rows[0]["seconds"]
    if "sbd_ours" in sk_row:
        raw = sk_row["raw"]
        print(
            f"speed-up of our mean_shift over sklearn MeanShift: {sk_row['seconds'] / ours_s:.1f}x "
            f"({sk_row['seconds']:.1f} s / {ours_s:.3f} s); agreement SBD {sk_row['sbd_ours']:.4f}"
        )
        print(
            f"without min_size: sklearn {sk_row['clusters_raw']} clusters -> {raw['objects_sklearn']} objects, "
            f"ours {raw['objects_ours']} objects, agreement SBD {raw['sbd_ours']:.4f}"
        )
    elif not args.no_sklearn:
        print(
            f"sklearn MeanShift did not finish within {args.sklearn_max_seconds:.0f} s: "
            f"speed-up > {args.sklearn_max_seconds / ours_s:.0f}x"
        )
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
