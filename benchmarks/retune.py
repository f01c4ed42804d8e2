"""Choose a finished run's clustering again with the current code, without training.

A change to the end-of-training tuning or to a decoder is measured on the weights that were already
trained: this script re-runs the run's tuning (``Trainer.tune_postprocessing``: the same validation
images, made again from the run's config) from the clustering the run *started* with (its
``config.yaml``), and writes the result into ``best.pt`` and ``last.pt`` as training would have.
Score the runs afterwards with ``benchmarks/accuracy.py --reuse``.

    cp -r runs/acc20/3d-0.1 runs/retuned/ && python benchmarks/retune.py runs/retuned/3d-0.1
    python benchmarks/accuracy.py --runs 3d-0.1 --reuse --out runs/retuned

``--n-val N`` tunes on N synthetic validation images instead of the run's own number (the first ones
are the run's; a preset that now validates on more images, measured on runs trained before it).

It rewrites the checkpoints in place: run it on a copy. Nothing here is needed by the tests.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml


def retune(run: Path, n_val: int | None = None) -> None:
    """Re-run the end-of-training tuning of the run in folder ``run`` (on ``n_val`` synthetic validation
    images, ``None``: the run's number) and print what it chose."""
    from spoco_zoo.config import ClusteringConfig
    from spoco_zoo.train.checkpoint import load_checkpoint
    from spoco_zoo.train.trainer import Trainer

    config = load_checkpoint(run / "best.pt")["config"]
    started = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))["clustering"]
    update: dict[str, object] = {"clustering": ClusteringConfig.model_validate(started)}
    if n_val is not None:
        synthetic = config.data.synthetic.model_copy(update={"n_val": n_val})
        update["data"] = config.data.model_copy(update={"synthetic": synthetic})
    config = config.model_copy(update=update)
    trainer = Trainer(config, progress=True)
    trainer.setup()
    also = [run / "last.pt"] if (run / "last.pt").exists() else []
    result = trainer.tune_postprocessing(run / "best.pt", also=also)
    if result is None:
        print(f"{run}: nothing to tune (no validation images, or a method without parameters to choose)")
    else:
        print(f"{run}: {result.method} {result.params or ''} min_size {result.min_size} (score {result.score:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (with best.pt and config.yaml)")
    parser.add_argument("--n-val", type=int, default=None, help="synthetic validation images to tune on")
    args = parser.parse_args()
    if args.n_val is not None and args.n_val < 1:
        parser.error(f"--n-val: must be at least 1, got {args.n_val}")
    for run in args.runs:
        retune(run, args.n_val)


if __name__ == "__main__":
    main()
