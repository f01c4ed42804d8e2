"""Training throughput with data loading: full SPOCO steps/s vs a plain U-Net step on the same pipeline.

Both sides draw their batches from the same DataLoader (``spoco_zoo.train.loader.step_loader``,
``--workers`` worker processes, pinned memory on CUDA) and copy them to the device, so the
ratio isolates what SPOCO adds (second view, EMA-teacher forward, loss terms, augmentation).
On CUDA the GPU utilisation is sampled every step (``torch.cuda.utilization``, needs NVML).

    python benchmarks/training.py --patch 256 256 --batch-size 8 --steps 20 --workers 4
    python benchmarks/training.py --patch 256 256 --batch-size 8 --steps 20 --workers 4 --compile

Target (issue 9): on one GPU at 256x256, batch 8, a SPOCO step takes at most 2x a plain U-Net step.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch

from spoco_zoo.config import TrainConfig
from spoco_zoo.train.loader import step_loader, to_device
from spoco_zoo.train.trainer import Trainer

TARGET_RATIO = 2.0


def gpu_utilisation() -> float | None:
    """Percent of the last sample period the GPU was busy, or None without CUDA/NVML."""
    if not torch.cuda.is_available():
        return None
    try:
        return float(torch.cuda.utilization())
    except Exception:  # NVML (pynvml) missing or unsupported
        return None


def timed(run: Callable[[int, dict], None], loader, warmup: int, device: torch.device) -> tuple[float, list[float]]:
    """Steps/s after ``warmup`` steps (batches from ``loader``), and the GPU utilisation samples."""
    samples: list[float] = []
    start = time.perf_counter()
    steps = 0
    for step, batch in enumerate(loader):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, steps = time.perf_counter(), 0
        run(step, to_device(batch, device))
        steps += 1
        if step >= warmup:
            util = gpu_utilisation()
            if util is not None:
                samples.append(util)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start), samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (both sides)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile both networks")
    parser.add_argument("--base-features", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    dims = len(args.patch)
    shape = [max(p * 2, 64) for p in args.patch] if dims == 2 else [max(p, 32) for p in args.patch]
    total = args.warmup + args.steps
    cfg = TrainConfig.model_validate(
        {
            "steps": total,
            "device": args.device,
            "compile": args.compile,
            "out_dir": str(Path("/tmp/spoco-bench-train")),
            "model": {"spatial_dims": dims, "depth": args.depth, "base_features": args.base_features},
            "data": {
                "patch_shape": args.patch,
                "batch_size": args.batch_size,
                "num_workers": args.workers,
                "synthetic": {"n_train": 4, "n_val": 1, "shape": shape, "n_objects": 40},
            },
        }
    )
    trainer = Trainer(cfg, progress=False)
    trainer.setup()
    device = trainer.device

    # baseline: forward + backward + optimiser step of a plain U-Net with a trivial loss
    baseline_model = trainer.train_model
    optimizer = torch.optim.AdamW(trainer.student.parameters(), lr=1e-4)

    def plain_step(step: int, batch: dict) -> None:
        with torch.autocast(device_type=device.type, dtype=trainer.amp_dtype, enabled=trainer.use_amp):
            out = baseline_model(batch["image"])
        out.float().square().mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def loader():
        return step_loader(trainer.train_set, 0, total, args.batch_size, args.workers)

    baseline, base_util = timed(plain_step, loader(), args.warmup, device)
    spoco, spoco_util = timed(lambda step, batch: trainer.train_step(step, batch), loader(), args.warmup, device)

    def util(samples: list[float]) -> str:
        if not samples:
            return "unavailable" + (" (no CUDA)" if device.type != "cuda" else " (no NVML)")
        return f"{sum(samples) / len(samples):.0f} %"

    ratio = baseline / spoco
    print(
        f"device={device} threads={torch.get_num_threads()} patch={args.patch} batch={args.batch_size} "
        f"workers={args.workers} depth={args.depth} base_features={args.base_features} "
        f"amp={trainer.amp_dtype} compile={args.compile}"
    )
    print(f"{'run (with data loading)':<36}{'steps/s':>10}{'s/step':>10}  GPU utilisation")
    print(f"{'plain U-Net fwd+bwd+step':<36}{baseline:>10.2f}{1 / baseline:>10.3f}  {util(base_util)}")
    print(f"{'SPOCO step (2 views, EMA, losses)':<36}{spoco:>10.2f}{1 / spoco:>10.3f}  {util(spoco_util)}")
    met = "met" if ratio <= TARGET_RATIO else "not met"
    print(f"SPOCO / plain U-Net time ratio: {ratio:.2f}x (target <= {TARGET_RATIO:g}x on a GPU: {met})")


if __name__ == "__main__":
    main()
