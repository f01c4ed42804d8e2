"""Learning-rate schedule: linear warmup, then constant or cosine decay.

The rate is a pure function of the step (no scheduler state), so a resumed run
continues the schedule exactly where the killed run left it.
"""

from __future__ import annotations

import math

__all__ = ["learning_rate"]


def learning_rate(
    step: int,
    total_steps: int,
    base_lr: float,
    warmup_steps: int = 0,
    schedule: str = "cosine",
    min_lr_fraction: float = 0.0,
) -> float:
    """Learning rate of optimisation step ``step`` (0-based).

    Parameters
    ----------
    step : int
        The step about to be taken, ``0 <= step``.
    total_steps : int
        Length of the run (the cosine reaches its floor here).
    base_lr : float
        Peak learning rate, reached at the end of the warmup.
    warmup_steps : int
        Steps of linear increase from ``base_lr / warmup_steps`` to ``base_lr``.
    schedule : {"cosine", "constant"}
        What follows the warmup: half a cosine down to ``min_lr_fraction * base_lr``, or ``base_lr``.
    min_lr_fraction : float
        Floor of the cosine, as a fraction of ``base_lr``.

    Returns
    -------
    float

    Examples
    --------
    >>> [round(learning_rate(s, 10, 1.0, warmup_steps=2), 3) for s in (0, 1, 2, 6, 9)]
    [0.5, 1.0, 1.0, 0.5, 0.038]
    >>> learning_rate(5, 10, 1e-3, schedule="constant")
    0.001
    """
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    floor = min_lr_fraction * base_lr
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
