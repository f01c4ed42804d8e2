"""Checkpoints: atomic writes, safe validated reads, model reconstruction.

A checkpoint is a ``torch.save`` dictionary::

    format          "spoco-zoo-checkpoint"
    version         2
    config          TrainConfig as a JSON-safe dict (model, loss, data incl. normalisation, clustering)
    step            number of optimisation steps done
    model_state     student network weights
    teacher_state   EMA teacher network weights
    optimizer_state, scaler_state, rng_state   (for exact resume; may be absent in exported-only files)
    metrics         last validation metrics (dict of floats), may be empty
    history         list of per-log-step loss dicts

It holds **tensors and plain data only** (dicts, lists, tuples, strings, numbers, ``None``) and is
read with ``torch.load(weights_only=True)``, so opening a checkpoint never runs code: a file whose
pickle names any other Python object is refused (:class:`~spoco_zoo.errors.CheckpointError`, with
the objects it names) before anything in it is executed. :func:`save_checkpoint` converts what it
is given to that form (pydantic configs to dicts, numpy scalars to numbers, numpy arrays to tensors,
paths to strings; numpy's RNG state to a dict with a tensor, restored on reading) and refuses
anything else. Version-1 files (spoco-zoo 0.1, numpy RNG state pickled as numpy arrays) are still
read, with numpy's array and dtype reconstructors added to the allow-list and nothing else.

It is written to a temporary file in the same directory, flushed and fsync'ed,
then renamed over the target, so a killed run never leaves a half-written file.
"""

from __future__ import annotations

import importlib
import io
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, Literal

import numpy as np
import pydantic
import torch

from spoco_zoo.atomic import atomic_write_bytes
from spoco_zoo.config import TrainConfig
from spoco_zoo.errors import CheckpointError
from spoco_zoo.models.unet import UNet

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "build_model",
    "load_model",
    "model_from_state",
    "plain_state",
    "stored_halo",
]

FORMAT = "spoco-zoo-checkpoint"
VERSION = 2
_REQUIRED = ("config", "step", "model_state")
#: Globals a version-1 checkpoint may name: numpy's array, scalar and dtype reconstruction (safe:
#: they build arrays of numbers; the items of object arrays would still go through the restricted
#: unpickler). Looked up by name, only when the file names them.
_NUMPY_GLOBALS = frozenset(
    {
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
    }
)
#: numpy's numeric dtype classes (``numpy.dtypes.UInt32DType``, ...): unpickling a dtype builds one.
_NUMPY_DTYPE_CODES = "?bhilqBHILQefd"
_NUMPY_RNG_KEYS = ("bit_generator", "key", "pos", "has_gauss", "cached_gaussian")


def plain_state(value: Any, where: str = "checkpoint") -> Any:
    """``value`` as tensors and plain data only (what ``torch.load(weights_only=True)`` reads back).

    Tensors are stored in the default (contiguous) memory order, pydantic models become JSON-safe
    dicts, numpy scalars Python numbers, numeric numpy arrays tensors, paths strings, ``torch.device``
    strings; dicts, lists and tuples are converted item by item.

    Raises
    ------
    CheckpointError
        For any other object, naming where it is (``checkpoint.metrics.x``).

    Examples
    --------
    >>> plain_state({"step": np.int64(3), "paths": [Path("a")], "loss": (np.float32(0.5),)})
    {'step': 3, 'paths': ['a'], 'loss': (0.5,)}
    >>> plain_state({"model": object()})
    Traceback (most recent call last):
    ...
    spoco_zoo.errors.CheckpointError: checkpoint.model: cannot store a object (only tensors and plain data)
    """
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype)):
        return value
    if isinstance(value, torch.Tensor):  # in the default memory order (weights trained channels-last too)
        return (value.detach() if type(value) is not torch.Tensor else value).contiguous()
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, Mapping):
        items = [(key, plain_state(item, f"{where}.{key}")) for key, item in value.items()]
        for key, _ in items:
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise CheckpointError(f"{where}: cannot store a {type(key).__name__} key (only str and numbers)")
        if not isinstance(value, OrderedDict):
            return dict(items)
        ordered = OrderedDict(items)
        metadata = getattr(value, "_metadata", None)  # torch's state-dict version info, plain data
        if metadata is not None:
            ordered._metadata = plain_state(metadata, f"{where}._metadata")  # type: ignore[attr-defined]
        return ordered
    if isinstance(value, (list, tuple)):
        items = [plain_state(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return list(items) if isinstance(value, list) else tuple(items)
    raise CheckpointError(f"{where}: cannot store a {type(value).__name__} (only tensors and plain data)")


def _encode_numpy_rng(state: Any) -> Any:
    """numpy's legacy ``get_state()`` tuple -> a dict of plain data and one tensor."""
    if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[1], np.ndarray)):
        return state
    name, key, pos, has_gauss, cached = state
    return {
        "bit_generator": str(name),
        "key": torch.from_numpy(key.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _decode_numpy_rng(state: Any, path: Path) -> Any:
    """The inverse of :func:`_encode_numpy_rng` (tuples of version-1 files pass unchanged)."""
    if not isinstance(state, Mapping):
        return state
    if set(state) != set(_NUMPY_RNG_KEYS) or not isinstance(state["key"], torch.Tensor):
        raise CheckpointError(f"{path}: rng_state.numpy is malformed (keys {sorted(state)})")
    key = state["key"].cpu().numpy().astype(np.uint32)
    return (
        str(state["bit_generator"]),
        key,
        int(state["pos"]),
        int(state["has_gauss"]),
        float(state["cached_gaussian"]),
    )


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically write a checkpoint dictionary (``format``/``version`` are added).

    The state is converted with :func:`plain_state` first (numpy's RNG state in
    ``rng_state["numpy"]`` to a dict with a tensor), so that :func:`load_checkpoint` can read it
    with ``weights_only=True``.

    Raises
    ------
    CheckpointError
        ``state`` holds an object that is neither a tensor nor plain data (nothing is written).
    OSError
        The file cannot be written (an existing checkpoint at ``path`` is left untouched).
    """
    payload: dict[str, Any] = {**state, "format": FORMAT, "version": VERSION}  # a re-saved old file is new
    rng = payload.get("rng_state")
    if isinstance(rng, Mapping) and "numpy" in rng:
        payload["rng_state"] = {**rng, "numpy": _encode_numpy_rng(rng["numpy"])}
    buffer = io.BytesIO()
    torch.save(plain_state(payload), buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def _unsafe_globals(path: Path) -> list[str] | None:
    """The Python objects the file's pickle names beyond torch's allow-list (read, never run)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a zip-format torch file, or unreadable: the caller reports the load error
        return None


def _numpy_allow_list(names: list[str]) -> list[Any]:
    """The numpy reconstructors a version-1 file names (``(object, name)`` pairs) and the numeric dtypes."""
    pairs: list[Any] = [type(np.dtype(code)) for code in _NUMPY_DTYPE_CODES]
    for name in names:
        module, _, attr = name.rpartition(".")
        try:
            pairs.append((getattr(importlib.import_module(module), attr), name))
        except (ImportError, AttributeError):
            continue  # an object this numpy lacks cannot be in a file it could read
    return pairs


def _safe_load(path: Path, map_location: str | torch.device) -> Any:
    """``torch.load(weights_only=True)``; version-1 files get numpy's reconstructors allow-listed."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = _unsafe_globals(path)
        if not unsafe:
            raise CheckpointError(f"{path}: cannot read checkpoint (corrupt or not a torch file): {err}") from err
        if not set(unsafe) <= _NUMPY_GLOBALS:
            shown = ", ".join(sorted(set(unsafe))[:6])
            raise CheckpointError(
                f"{path}: refused to load: the file names Python objects that would run when it is "
                f"opened ({shown}); spoco-zoo checkpoints hold tensors and plain data only"
            ) from None
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointError(f"{path}: cannot read checkpoint (corrupt or not a torch file): {err}") from err
    try:  # a version-1 file: its numpy RNG state needs numpy's array reconstruction
        with torch.serialization.safe_globals(_numpy_allow_list(unsafe)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read checkpoint (corrupt or not a torch file): {err}") from err


def _check_weights(state: Mapping[str, Any], key: str, path: Path) -> None:
    weights = state.get(key)
    if weights is None and key != "model_state":
        return
    if not isinstance(weights, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise CheckpointError(f"{path}: {key} is not a mapping of parameter names to tensors")


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint without running any code from it.

    The file is read with ``torch.load(weights_only=True)`` (see the module docstring);
    ``rng_state["numpy"]`` comes back as the tuple :func:`numpy.random.set_state` takes and
    ``config`` as a validated :class:`~spoco_zoo.config.TrainConfig`.

    Raises
    ------
    CheckpointError
        Naming the file, when it does not exist, cannot be read (truncated, corrupt), names
        Python objects beyond tensors and plain data (refused, nothing in it is run), or lacks
        the keys of a spoco-zoo checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    state = _safe_load(path, map_location)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a spoco-zoo checkpoint (missing format marker)")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    try:
        version = int(state.get("version", 0))
    except (TypeError, ValueError):
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')!r} is not a number") from None
    if version > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {version} is newer than this spoco-zoo")
    for key in ("model_state", "teacher_state"):
        _check_weights(state, key, path)
    rng = state.get("rng_state")
    if isinstance(rng, dict) and "numpy" in rng:
        rng["numpy"] = _decode_numpy_rng(rng["numpy"], path)
    stored = state["config"]
    if isinstance(stored, dict) and isinstance(stored.get("model"), dict) and "foreground" not in stored["model"]:
        # written before the foreground channel existed: the network has the embedding channels only
        stored = {**stored, "model": {**stored["model"], "foreground": False}}
    try:
        state["config"] = TrainConfig.model_validate(stored)
    except ValueError as err:
        raise CheckpointError(f"{path}: stored config is invalid: {err}") from err
    return state


def build_model(config: TrainConfig) -> UNet:
    """A fresh U-Net for ``config.model``."""
    return UNet(**config.model.unet_kwargs())


def stored_halo(state: Mapping[str, Any], weights: str = "student") -> tuple[int, ...] | None:
    """The halo per spatial axis a checkpoint ``state`` stores for its student weights (written at
    the end of training; checkpoints before per-axis halos stored one number for every axis);
    ``None`` when it has none or ``weights`` is the teacher: then measure it with
    :func:`spoco_zoo.models.receptive_field.package_halo`.

    >>> stored_halo({"halo": 64, "config": {"model": {"spatial_dims": 3}}}), stored_halo({"halo": [16, 64, 64]})
    ((64, 64, 64), (16, 64, 64))
    """
    halo = state.get("halo") if weights == "student" else None
    if halo is None:
        return None
    if isinstance(halo, (list, tuple)):
        return tuple(int(h) for h in halo)
    config = state.get("config")
    if isinstance(config, Mapping):
        dims = int((config.get("model") or {}).get("spatial_dims", 2))
    else:
        dims = int(getattr(getattr(config, "model", None), "spatial_dims", 2))
    return (int(halo),) * dims


def load_model(
    path: Path,
    weights: Literal["student", "teacher"] = "student",
    map_location: str | torch.device = "cpu",
) -> tuple[UNet, TrainConfig]:
    """Rebuild the network stored in a checkpoint, in eval mode.

    Parameters
    ----------
    weights:
        ``"student"`` (the trained network) or ``"teacher"`` (its EMA copy).
    """
    return model_from_state(load_checkpoint(path, map_location), path, weights)


def model_from_state(
    state: Mapping[str, Any], path: Path, weights: Literal["student", "teacher"] = "student"
) -> tuple[UNet, TrainConfig]:
    """:func:`load_model` of a checkpoint already read with :func:`load_checkpoint` from ``path``
    (named in errors), for callers that also need the rest of ``state``."""
    config: TrainConfig = state["config"]
    key = "model_state" if weights == "student" else "teacher_state"
    if key not in state:
        raise CheckpointError(f"{path}: checkpoint has no {weights} weights ({key})")
    model = build_model(config)
    try:
        model.load_state_dict(state[key])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the stored model config: {err}") from err
    return model.eval(), config
