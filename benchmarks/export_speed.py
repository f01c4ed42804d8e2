"""Time of ``spoco-zoo export`` + validation for one checkpoint, step by step.

Runs the export (all weight formats, the given variant) and then the validation (spec +
bioimageio.core's test per weight format), and prints the seconds of each step and the total;
the limit to compare with is given by ``--limit`` (default 60 s):

    python benchmarks/export_speed.py runs/quickstart/best.pt --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--variant", default="full")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=float, default=60.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from spoco_zoo.exporters.options import ExportOptions
    from spoco_zoo.exporters.package import export_package
    from spoco_zoo.zoo.validate import validate_package

    steps: list[tuple[str, float]] = []
    last = [time.perf_counter()]

    def log(message: str) -> None:
        now = time.perf_counter()
        steps.append((message[:90], now - last[0]))
        last[0] = now

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = export_package(args.checkpoint, Path(tmp) / "model.zip", ExportOptions(variant=args.variant), log=log)
        exported = time.perf_counter()
        report = validate_package(result.path, devices=["cpu"], measure_errors=False)  # as `spoco-zoo export` does
        validated = time.perf_counter()
    for message, seconds in steps:
        print(f"{seconds:7.1f} s  {message}")
    for check in report.checks:
        print(f"{check.seconds:7.1f} s  validate {check.name}: {'passed' if check.passed else 'FAILED'}")
    total = validated - started
    print(f"export {exported - started:.1f} s + validation {validated - exported:.1f} s = {total:.1f} s")
    print(f"{'within' if total <= args.limit else 'OVER'} the {args.limit:.0f} s limit; halo {result.halo}")


if __name__ == "__main__":
    main()
