"""Checkpoints: atomic writes, validated reads, model reconstruction.

A checkpoint is a ``torch.save`` dictionary::

    format          "spoco-zoo-checkpoint"
    version         1
    config          TrainConfig as a JSON-safe dict (model, loss, data incl. normalisation, clustering)
    step            number of optimisation steps done
    model_state     student network weights
    teacher_state   EMA teacher network weights
    optimizer_state, scaler_state, rng_state   (for exact resume; may be absent in exported-only files)
    metrics         last validation metrics (dict of floats), may be empty
    history         list of per-log-step loss dicts

It is written to a temporary file in the same directory, flushed and fsync'ed,
then renamed over the target, so a killed run never leaves a half-written file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Literal

import torch

from spoco_zoo.atomic import atomic_write_bytes
from spoco_zoo.config import TrainConfig
from spoco_zoo.errors import CheckpointError
from spoco_zoo.models.unet import UNet

__all__ = ["save_checkpoint", "load_checkpoint", "build_model", "load_model"]

FORMAT = "spoco-zoo-checkpoint"
VERSION = 1
_REQUIRED = ("config", "step", "model_state")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically write a checkpoint dictionary (``format``/``version`` are added)."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    if isinstance(payload.get("config"), TrainConfig):
        payload["config"] = payload["config"].to_dict()
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint.

    Raises
    ------
    CheckpointError
        Naming the file, when it does not exist, cannot be unpickled (truncated,
        corrupt) or lacks the keys of a spoco-zoo checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointError(f"{path}: cannot read checkpoint (corrupt or not a torch file): {err}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a spoco-zoo checkpoint (missing format marker)")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    if int(state.get("version", 0)) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state['version']} is newer than this spoco-zoo")
    try:
        state["config"] = TrainConfig.model_validate(state["config"])
    except ValueError as err:
        raise CheckpointError(f"{path}: stored config is invalid: {err}") from err
    return state


def build_model(config: TrainConfig) -> UNet:
    """A fresh U-Net for ``config.model``."""
    return UNet(**config.model.unet_kwargs())


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
    state = load_checkpoint(path, map_location)
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
