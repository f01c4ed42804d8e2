"""Training steps of the 3D CPU preset two ways, side by side: in float32 and under bfloat16 autocast
(``amp_cpu``; ``--compare precision``, the default), or with the convolutions in the default and in
channels-last memory order (``channels_last_cpu``; ``--compare layout``).

Two trainers of the same preset (``spoco-zoo train --3d --preset cpu``), one with the setting off and
one with it on (the other setting as the preset has it), take turns: each round times ``--steps``
bare-patch steps of each (three 32x64x64 crops, student and teacher, losses, update). The figure per
setting is its fastest round, so a busy moment of the machine costs the comparison less. On a CPU
without native bfloat16 the bfloat16 trainer runs in float32 too
(``spoco_zoo.train.acceleration.cpu_computes_bfloat16``) and that ratio is ~1.

    python benchmarks/cpu_precision.py
    python benchmarks/cpu_precision.py --steps 4 --rounds 3 --anisotropic
    python benchmarks/cpu_precision.py --compare layout

Expectations (docs/benchmarks.md, "bfloat16 training steps on the CPU" and "Channels-last training
steps"): on a CPU with AVX512-BF16 a bfloat16 step takes about 0.6 of its float32 time; a channels-last
step about 0.93 of the default order's time there and about 0.78 on an AVX2 CPU (float32).
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


def preset_trainer(out_dir: Path, setting: str, on: bool, anisotropic: bool) -> Trainer:
    """A set-up trainer of the 3D CPU preset on the CPU, with ``setting`` (a config field) as given."""
    values = merge_nested(
        preset_values("cpu", 3),
        {"device": "cpu", setting: on, "out_dir": str(out_dir), "data": {"object_fraction": 0.1}},
    )
    config = apply_overrides(TrainConfig.model_validate(values), ANISOTROPIC if anisotropic else [])
    trainer = Trainer(config, progress=False)
    trainer.setup()
    return trainer


#: What ``--compare`` sets: the config field, the names of its off / on trainers, the expected on / off ratio.
COMPARISONS = {
    "precision": ("amp_cpu", ("float32", "bfloat16 autocast"), "about 0.6 with native bfloat16"),
    "layout": ("channels_last_cpu", ("default order", "channels-last"), "about 0.93 with bfloat16, 0.78 on AVX2"),
}


def seconds_per_step(trainer: Trainer, first_step: int, steps: int) -> float:
    """Mean wall time of ``steps`` training steps from ``first_step`` on."""
    start = time.perf_counter()
    for step in range(first_step, first_step + steps):
        trainer.train_step(step)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--compare", choices=sorted(COMPARISONS), default="precision", help="what the trainers differ in"
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per setting and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each trainer first")
    parser.add_argument("--anisotropic", action="store_true", help="the z-step-3x volumes of accuracy.py")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if min(args.steps, args.rounds) < 1 or args.warmup < 0:
        parser.error("--steps and --rounds must be at least 1, --warmup at least 0")
    if args.threads:
        torch.set_num_threads(args.threads)

    setting, names, expected = COMPARISONS[args.compare]
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {
            name: preset_trainer(Path(tmp) / str(on), setting, on, args.anisotropic)
            for name, on in zip(names, (False, True))
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
    native = "yes" if cpu_computes_bfloat16() else "no (bfloat16 autocast runs in float32)"
    print(f"3D CPU preset, {volumes} volumes; threads={torch.get_num_threads()}; native bfloat16: {native}")
    print(f"{setting:<26}{'s/step (best round)':>22}{'rounds':>26}")
    for name, seconds in times.items():
        print(f"{name:<26}{min(seconds):>22.3f}{' / '.join(f'{s:.3f}' for s in seconds):>26}")
    ratio = min(times[names[1]]) / min(times[names[0]])
    print(f"{names[1]} / {names[0]} step time: {ratio:.2f} (expected {expected})")


if __name__ == "__main__":
    main()
