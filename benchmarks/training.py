"""Training throughput: full SPOCO steps/s vs a plain U-Net forward/backward baseline.

Both run in the same process on the same batches, so the ratio isolates the
cost SPOCO adds (second view, EMA teacher forward, loss terms, augmentation).

    python benchmarks/training.py --patch 256 256 --batch-size 4 --steps 10
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from spoco_zoo.config import TrainConfig
from spoco_zoo.train.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--base-features", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    dims = len(args.patch)
    shape = [max(p * 2, 64) for p in args.patch] if dims == 2 else [max(p, 32) for p in args.patch]
    cfg = TrainConfig.model_validate(
        {
            "steps": args.warmup + args.steps,
            "device": args.device,
            "out_dir": str(Path("/tmp/spoco-bench-train")),
            "model": {"spatial_dims": dims, "depth": args.depth, "base_features": args.base_features},
            "data": {
                "patch_shape": args.patch,
                "batch_size": args.batch_size,
                "synthetic": {"n_train": 2, "n_val": 1, "shape": shape, "n_objects": 40},
            },
        }
    )
    trainer = Trainer(cfg, progress=False)
    trainer.setup()
    device = trainer.device

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    # baseline: forward + backward of the student alone with a trivial loss
    batches = [trainer.batch(i) for i in range(args.warmup + args.steps)]
    for i, batch in enumerate(batches):
        if i == args.warmup:
            sync()
            t0 = time.perf_counter()
        out = trainer.student(batch["image"])
        out.square().mean().backward()
        trainer.student.zero_grad(set_to_none=True)
    sync()
    baseline = args.steps / (time.perf_counter() - t0)

    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            sync()
            t0 = time.perf_counter()
        trainer.train_step(i)
    sync()
    spoco = args.steps / (time.perf_counter() - t0)

    print(
        f"device={device} threads={torch.get_num_threads()} patch={args.patch} batch={args.batch_size} "
        f"depth={args.depth} base_features={args.base_features} amp={trainer.use_amp}"
    )
    print(f"{'run':<34}{'steps/s':>10}{'s/step':>10}")
    print(f"{'baseline U-Net fwd+bwd':<34}{baseline:>10.2f}{1 / baseline:>10.3f}")
    print(f"{'SPOCO step (2 views, EMA, losses)':<34}{spoco:>10.2f}{1 / spoco:>10.3f}")
    print(f"SPOCO / baseline time ratio: {baseline / spoco:.2f}x")


if __name__ == "__main__":
    main()
