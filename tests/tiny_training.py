"""``--set`` arguments of a tiny ``spoco-zoo train`` run (seconds on a CPU), shared by the CLI tests."""

from __future__ import annotations


def tiny_train_sets(*extra: str, n_train: int = 1) -> list[str]:
    """``["--set", "key=value", ...]``: depth-2 U-Net with 4 features, 32x32 patches of 64x64 images,
    a checkpoint every step and no validation during the run; ``extra`` adds ``key=value`` items."""
    values = [
        "checkpoint_every=1",
        "val_every=100000",
        "model.depth=2",
        "model.base_features=4",
        "data.patch_shape=[32,32]",
        "data.batch_size=1",
        f"data.synthetic.n_train={n_train}",
        "data.synthetic.n_val=1",
        "data.synthetic.shape=[64,64]",
        *extra,
    ]
    return [arg for value in values for arg in ("--set", value)]
