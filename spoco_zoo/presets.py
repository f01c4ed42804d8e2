"""Training presets: the GPU default and a CPU recipe that fits a laptop's budget.

A preset is a partial :class:`~spoco_zoo.config.TrainConfig` (nested dict) applied on top of
the defaults and below a config file and ``--set`` overrides (``spoco-zoo train --preset cpu``).
The numbers behind each choice are in ``docs/benchmarks.md``.
"""

from __future__ import annotations

from typing import Any

from spoco_zoo.errors import DataError

__all__ = ["PRESETS", "VOLUME", "PRESETS_3D", "preset_values", "merge_nested"]

#: ``gpu`` is the defaults themselves; ``cpu`` trains the same network for fewer steps (1200 steps,
#: ~7 min on 2 CPU cores: the quickstart's budget; held-out SBD ~0.8 on the synthetic data).
PRESETS: dict[str, dict[str, Any]] = {
    "gpu": {},
    "cpu": {
        "steps": 1200,
        "val_every": 400,
        "data": {"batch_size": 1},
    },
}


#: What a 3D model changes (``spoco-zoo train --3d``): a volume network trained on random 32x64x64
#: crops of synthetic volumes deep enough (64 slices, 80 objects: the density of 40 per 32x128x128)
#: that a crop rarely touches a ``z`` border -- crops of 32-deep volumes all touched both, and the
#: network leaned on them (SBD 0.54 at 32x128x128, 0.19 at 64x256x256; docs/benchmarks.md, "3D").
VOLUME: dict[str, Any] = {
    "model": {"spatial_dims": 3},
    "data": {
        "patch_shape": [32, 64, 64],
        "batch_size": 1,
        "synthetic": {"shape": [64, 128, 128], "n_objects": 80, "n_train": 8},
    },
}
#: The 3D recipe of each preset, on top of :data:`VOLUME` and the preset itself. The CPU recipe
#: draws three crops per step: PyTorch's CPU convolution takes its slow route for most layers of a
#: single 3D crop and its fast (oneDNN) one for a batch of two or more, so the second crop costs a sixth
#: more time per step and the third half again (0.579 -> 0.891 s on 2 threads), and a 10 % model sees
#: three times the annotated objects (isotropic 10 % SBD, means of three seeds: 0.736 with one crop,
#: 0.797 with two, 0.853 with three; docs/benchmarks.md, "Three crops per 3D training step").
#: Its U-Net is one level shallower than the default (depth 3, 8x down-sampling): a depth-4 network
#: reaches 107 voxels, so every voxel of a 32-slice crop sees both z borders even at the bottom level
#: (two slices deep), and some trainings merged objects stacked in z once a volume was deeper than the
#: crops. Depth 3 reaches 51 and needs the 900 steps to learn as much (docs/benchmarks.md, "A shallower
#: 3D network"). Three validation volumes: the end-of-training tuning chose the edge threshold of two
#: of three isotropic models wrongly on one (10 % SBD, means of three seeds: 0.863 tuned on one, 0.901
#: on three; docs/benchmarks.md, "Tuning on three validation volumes"). The last 200 steps show the network
#: 4 / 8 / 8 voxels of image around each patch (z / y / x) and score the patch only, two crops per step (a
#: grown crop costs about three bare ones): trained on bare crops only, the network reads the crop border
#: and merges or splits the objects of a larger volume's interior, where no border is in reach (64x256x256:
#: per-object quality 0.57-0.68 in the interior, 0.76-0.83 near a face; docs/benchmarks.md, "Training
#: patches with context"). In the other 700 steps the teacher sees a patch shifted by up to that context
#: (``data.shifted_teacher``), and the consistency term asks the same voxel for the same embedding with its
#: crop border elsewhere: at no cost, three trainings' worst whole-volume loss fell from 0.042 to 0.022 and
#: block-wise 128x512x512's from 0.101 to 0.043 (docs/benchmarks.md, "A teacher on a shifted patch" and "The
#: block-wise row from the benchmark"). The z-step-3x rows did not gain (worst 0.067 -> 0.083 at 64x256x256,
#: within the seeds' spread), nor with three times the z context for them (12 / 8 / 8: every row lower, base
#: 0.881 -> 0.823; docs/benchmarks.md, "More z context for the z-step-3x crops").
#: The CPU recipe's training steps run under bfloat16 autocast where the CPU computes in it natively
#: (``amp_cpu``; AVX512-BF16 or AMX, float32 elsewhere; validation and tuning predict in float32): a step
#: takes 0.60 of its float32 time (the row's training 1062 s instead of 1788 s on one machine), and three
#: fresh isotropic trainings score as float32's did (32x128x128 0.912 against 0.904, every row within the
#: seeds' spread; docs/benchmarks.md, "bfloat16 training steps on the CPU"). Its convolutions run in
#: channels-last memory order (``channels_last_cpu``): the same function, steps 1.065 -> 0.986 s in
#: bfloat16 on AVX512-BF16 and 2.28 -> 1.77 s in float32 on 2 AVX2 cores (docs/benchmarks.md,
#: "Channels-last training steps").
PRESETS_3D: dict[str, dict[str, Any]] = {
    "gpu": {},
    "cpu": {
        "steps": 900,
        "val_every": 300,
        "amp_cpu": True,
        "channels_last_cpu": True,
        "model": {"depth": 3},
        "data": {
            "batch_size": 3,
            "synthetic": {"n_val": 3},
            "patch_context": [4, 8, 8],
            "context_steps": 200,
            "context_batch_size": 2,
            "shifted_teacher": True,
        },
    },
}


def preset_values(name: str | None, spatial_dims: int = 2) -> dict[str, Any]:
    """The nested overrides of preset ``name`` (``None``: the defaults), for a 2D or a 3D model.

    >>> preset_values("cpu")["steps"], preset_values("cpu", 3)["data"]["patch_shape"]
    (1200, [32, 64, 64])
    >>> preset_values("cpu")["data"]["batch_size"], preset_values("cpu", 3)["data"]["batch_size"]
    (1, 3)
    >>> preset_values("cpu", 3)["model"]["depth"], preset_values("cpu", 3)["steps"], "model" in preset_values("cpu")
    (3, 900, False)
    >>> preset_values("cpu", 3)["data"]["synthetic"]["n_val"], preset_values("cpu", 3)["data"]["patch_context"]
    (3, [4, 8, 8])
    >>> preset_values("cpu", 3)["amp_cpu"], "amp_cpu" in preset_values("cpu")
    (True, False)
    """
    if name is not None and name not in PRESETS:
        raise DataError(f"preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    if spatial_dims not in (2, 3):
        raise DataError(f"spatial_dims: must be 2 or 3, got {spatial_dims}")
    values = merge_nested({}, PRESETS[name]) if name is not None else {}
    if spatial_dims == 3:
        values = merge_nested(merge_nested(values, VOLUME), PRESETS_3D.get(name or "gpu", {}))
    return values


def merge_nested(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in, recursively for nested dicts (a new dict).

    >>> merge_nested({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}, "d": 4})
    {'a': {'b': 1, 'c': 3}, 'd': 4}
    """
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_nested(out[key], value)
        else:
            out[key] = value
    return out
