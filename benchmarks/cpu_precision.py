"""Training steps of the 3D CPU preset in float32 and under bfloat16 autocast (``amp_cpu``), side by side.

Two trainers of the same preset (``spoco-zoo train --3d --preset cpu``), one with ``amp_cpu=false`` and
one with ``amp_cpu=true``, take turns: each round times ``--steps`` bare-patch steps of each (three
32x64x64 crops, student and teacher, losses, update). The figure per precision is its fastest round,
so a busy moment of the machine costs the comparison less. On a CPU without native bfloat16 the second
trainer runs in float32 too (``spoco_zoo.train.acceleration.cpu_computes_bfloat16``) and the ratio is ~1.

    python benchmarks/cpu_precision.py
    python benchmarks/cpu_precision.py --steps 4 --rounds 3 --anisotropic

Expectation (docs/benchmarks.md, "bfloat16 training steps on the CPU"): on a CPU with AVX512-BF16 a step
takes about 0.6 of its float32 time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from accuracy import ANISOTROPIC  # the z-step-3x runs' overrides (this script's folder is on sys.path)

from spoco_zoo.config import TrainConfig, apply_overrides
from spoco_zoo.presets import merge_nested, preset_values
from spoco_zoo.train.acceleration import cpu_computes_bfloat16
from spoco_zoo.train.trainer import Trainer


def preset_trainer(out_dir: Path, amp_cpu: bool, anisotropic: bool) -> Trainer:
    """A set-up trainer of the 3D CPU preset on the CPU, with ``amp_cpu`` as given."""
    values = merge_nested(
        preset_values("cpu", 3),
        {"device": "cpu", "amp_cpu": amp_cpu, "out_dir": str(out_dir), "data": {"object_fraction": 0.1}},
    )
    config = apply_overrides(TrainConfig.model_validate(values), ANISOTROPIC if anisotropic else [])
    trainer = Trainer(config, progress=False)
    trainer.setup()
    return trainer


def seconds_per_step(trainer: Trainer, first_step: int, steps: int) -> float:
    """Mean wall time of ``steps`` training steps from ``first_step`` on."""
    start = time.perf_counter()
    for step in range(first_step, first_step + steps):
        trainer.train_step(step)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per precision and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each trainer first")
    parser.add_argument("--anisotropic", action="store_true", help="the z-step-3x volumes of accuracy.py")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if min(args.steps, args.rounds) < 1 or args.warmup < 0:
        parser.error("--steps and --rounds must be at least 1, --warmup at least 0")
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        trainers = {
            "float32": preset_trainer(Path(tmp) / "float32", False, args.anisotropic),
            "bfloat16 autocast": preset_trainer(Path(tmp) / "bfloat16", True, args.anisotropic),
        }
        for trainer in trainers.values():
            for step in range(args.warmup):
                trainer.train_step(step)
        times: dict[str, list[float]] = {name: [] for name in trainers}
        step = args.warmup
        for _ in range(args.rounds):
            for name, trainer in trainers.items():
                times[name].append(seconds_per_step(trainer, step, args.steps))
            step += args.steps
    volumes = "z step 3x" if args.anisotropic else "isotropic"
    native = "yes" if cpu_computes_bfloat16() else "no (the second trainer runs in float32)"
    print(f"3D CPU preset, {volumes} volumes; threads={torch.get_num_threads()}; native bfloat16: {native}")
    print(f"{'precision of the steps':<26}{'s/step (best round)':>22}{'rounds':>26}")
    for name, seconds in times.items():
        print(f"{name:<26}{min(seconds):>22.3f}{' / '.join(f'{s:.3f}' for s in seconds):>26}")
    ratio = min(times["bfloat16 autocast"]) / min(times["float32"])
    print(f"bfloat16 / float32 step time: {ratio:.2f} (expected about 0.6 with native bfloat16)")


if __name__ == "__main__":
    main()
