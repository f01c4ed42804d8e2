"""Training on several GPUs (or CPU processes) with PyTorch's DistributedDataParallel.

A run on ``N`` processes is started by ``torchrun`` (``spoco-zoo train --gpus N`` runs it for
you, :func:`launch`). Each process reads its rank from the environment torchrun sets
(:meth:`DistributedContext.from_env`) and:

* trains on its own part of every step's batch (:func:`spoco_zoo.train.loader.step_indices`),
  with its own augmentations; DDP averages the gradients, so every rank takes the same
  optimiser step and the students stay identical;
* keeps its EMA teacher in step: the student's buffers (BatchNorm statistics) are broadcast
  from rank 0 after each step (:func:`sync_buffers`), then every rank updates its teacher from
  the same student -- teachers stay identical without sending them;
* leaves checkpoints, validation and post-processing tuning to rank 0; a resumed run loads the
  same ``last.pt`` on every rank, so resuming stays exact.

Backend: NCCL on CUDA, gloo on the CPU (the tests run 2 CPU processes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistributedContext",
    "rank_device",
    "wrap_model",
    "sync_buffers",
    "without_option",
    "launch_command",
    "launch",
]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a distributed run (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistributedContext:
        """Rank, world size and local rank from ``torchrun``'s environment variables.

        >>> DistributedContext.from_env().world_size >= 1
        True
        """
        return cls(
            rank=int(os.environ.get("RANK", 0)),
            world_size=int(os.environ.get("WORLD_SIZE", 1)),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        )

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: writes checkpoints, validates, prints."""
        return self.rank == 0

    def start(self, device: torch.device) -> bool:
        """Join the process group (NCCL on CUDA, else gloo); ``True`` when this call created it."""
        if not self.enabled or dist.is_initialized():
            return False
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=self.rank, world_size=self.world_size)
        return True

    def stop(self) -> None:
        """Wait for every rank, then leave the process group."""
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def rank_device(device: torch.device, context: DistributedContext) -> torch.device:
    """One GPU per process: ``cuda:LOCAL_RANK`` in a distributed CUDA run, else ``device``."""
    if device.type != "cuda" or not context.enabled:
        return device
    chosen = torch.device("cuda", context.local_rank)
    torch.cuda.set_device(chosen)
    return chosen


def wrap_model(model: nn.Module, device: torch.device, context: DistributedContext) -> nn.Module:
    """``model`` inside DistributedDataParallel in a distributed run (else ``model`` itself).

    The wrapper shares the parameters; checkpoints keep using ``model``'s own state dict.
    """
    if not context.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=True)


@torch.no_grad()
def sync_buffers(model: nn.Module, context: DistributedContext) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank."""
    if not context.enabled:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def without_option(argv: Sequence[str], option: str) -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE``.

    >>> without_option(["train", "--gpus", "2", "--steps", "5", "--gpus=3"], "--gpus")
    ['train', '--steps', '5']
    """
    out: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
        elif item == option:
            skip = True
        elif not item.startswith(option + "="):
            out.append(item)
    return out


def launch_command(n_processes: int, argv: Sequence[str]) -> list[str]:
    """The ``torchrun`` command that runs ``spoco-zoo ARGV`` in ``n_processes`` processes on this machine.

    >>> launch_command(2, ["train", "--steps", "5"])[3:]
    ['--standalone', '--nproc-per-node', '2', '-m', 'spoco_zoo.cli.main', 'train', '--steps', '5']
    """
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(int(n_processes)),
        "-m",
        "spoco_zoo.cli.main",
        *argv,
    ]


def launch(n_processes: int, argv: Sequence[str]) -> int:
    """Run ``spoco-zoo ARGV`` in ``n_processes`` processes (``torchrun --standalone``); its exit code.

    Each process gets one CPU thread unless ``OMP_NUM_THREADS`` is set.
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    if shutil.which(sys.executable) is None:  # pragma: no cover - broken interpreter path
        raise RuntimeError(f"cannot find the Python interpreter {sys.executable}")
    return subprocess.call(launch_command(n_processes, argv), env=env)
