"""Training batches drawn by DataLoader workers, still a pure function of ``(seed, step)``.

Every item of :class:`~spoco_zoo.data.dataset.SparseInstanceDataset` is a pure function of
``(seed, index)``; :func:`step_indices` says which items make up the batch of a step (and, with
several processes, which part of it one rank trains on), so a batch depends on the seed and
the step only -- not on the number of workers, the order they finish in, or where a run was
resumed. :func:`step_loader` hands the batches of steps ``start..end-1`` out in order,
prepared by ``num_workers`` worker processes while the device works on earlier steps (pinned
memory on CUDA, so the copy in :func:`to_device` does not block).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["step_indices", "StepSampler", "collate_items", "step_loader", "to_device"]

#: Batches each worker prepares ahead of the training loop.
PREFETCH_FACTOR = 4


def step_indices(step: int, batch_size: int, n_items: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """Dataset indices of one rank's part of the batch of ``step``.

    The global batch of a step is ``world_size * batch_size`` consecutive items; rank ``r``
    trains on the ``r``-th slice, so the ranks draw different patches.

    >>> step_indices(3, 2, 100), step_indices(3, 2, 100, rank=1, world_size=2)
    ([6, 7], [14, 15])
    """
    base = (int(step) * int(world_size) + int(rank)) * int(batch_size)
    return [(base + i) % int(n_items) for i in range(int(batch_size))]


class StepSampler(Sampler[list[int]]):
    """Batch sampler: the :func:`step_indices` of steps ``start..end-1``, in order.

    >>> list(StepSampler(1, 3, batch_size=2, n_items=10))
    [[2, 3], [4, 5]]
    """

    def __init__(self, start: int, end: int, batch_size: int, n_items: int, rank: int = 0, world_size: int = 1):
        self.start, self.end = int(start), int(end)
        self.batch_size, self.n_items = int(batch_size), int(n_items)
        self.rank, self.world_size = int(rank), int(world_size)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.end):
            yield step_indices(step, self.batch_size, self.n_items, self.rank, self.world_size)

    def __len__(self) -> int:
        return max(0, self.end - self.start)


def collate_items(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack dataset items into ``{"image": [B, C, *P], "labels": [B, *P]}``."""
    return {key: torch.stack([item[key] for item in items]) for key in ("image", "labels")}


def step_loader(
    dataset: Dataset,
    start: int,
    end: int,
    batch_size: int,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool | None = None,
) -> DataLoader:
    """A DataLoader over the batches of steps ``start..end-1`` (CPU tensors; see :func:`to_device`).

    Parameters
    ----------
    dataset:
        Items that are pure functions of their index.
    num_workers:
        Worker processes (0: the batches are built in this process, when asked for).
    pin_memory:
        Page-locked batches for asynchronous copies; default: when CUDA is available.
    """
    pin = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
    sampler = StepSampler(start, end, batch_size, len(dataset), rank, world_size)  # type: ignore[arg-type]
    extra = {"persistent_workers": True, "prefetch_factor": PREFETCH_FACTOR} if num_workers > 0 else {}
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=int(num_workers),
        collate_fn=collate_items,
        pin_memory=pin,
        **extra,  # type: ignore[arg-type]
    )


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch on ``device``; copies from pinned memory do not wait for the device."""
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}
