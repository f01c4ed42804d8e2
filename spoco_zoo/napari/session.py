"""A training run of the Train widget, without Qt: painted layers -> files -> the library's trainer.

The widget runs :meth:`TrainingSession.run` in a worker thread. The session

1. writes the image and the painted labels to ``OUT/annotations/`` (float32 and int TIFFs, so the
   run is also reproducible with ``spoco-zoo train --images ... --labels ... --set
   data.labels_are_sparse=true``);
2. builds the :class:`~spoco_zoo.config.TrainConfig` -- the preset (and an optional YAML config, as
   ``spoco-zoo train --config``) for a new run; for **Continue** the config stored in ``OUT/last.pt``
   with the new annotation files and ``steps`` more steps, so the trainer resumes the model,
   teacher and optimiser (``Trainer.fit(resume=True)``) instead of starting from scratch;
3. trains with :class:`spoco_zoo.train.trainer.Trainer`, reporting every step (:class:`Progress`)
   and, every ``preview_every`` steps, the instances of the image with the current student;
4. segments the image with the run's ``last.pt`` exactly as ``spoco-zoo segment`` would
   (:mod:`spoco_zoo.segmentation`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from spoco_zoo.config import TrainConfig, apply_overrides, load_config, set_values
from spoco_zoo.errors import DataError
from spoco_zoo.train.trainer import LAST, Trainer, TrainResult

__all__ = [
    "ANNOTATIONS",
    "TrainRequest",
    "Progress",
    "TrainOutcome",
    "write_annotations",
    "training_config",
    "TrainingSession",
]

#: Sub-folder of the output folder with the annotation files a run trained on.
ANNOTATIONS = "annotations"


class TrainRequest(BaseModel):
    """What the Train widget asks for (validated when the button is pressed).

    Attributes
    ----------
    out_dir:
        Output folder of the run (checkpoints, logs, annotations).
    preset:
        ``cpu`` or ``gpu`` (:mod:`spoco_zoo.presets`).
    steps:
        Steps of this run; for Continue, steps added to the checkpoint's.
    preview_every:
        Update the preview layer every this many steps (0: never).
    base_features:
        Width of the network's first level for a new run (``model.base_features``); ``None``: the
        preset's (and the config file's). The widget's default, 8, is half the preset's 16: from the
        sample's 5 painted objects it reached SBD 0.67 in 150 steps where the preset's network left the
        image unsegmented after 300 and 600 (``docs/benchmarks.md``, "napari").
    config:
        Optional YAML config (as ``spoco-zoo train --config``), applied over the preset.
    overrides:
        ``dotted.key=value`` items (as ``spoco-zoo train --set``), applied over the config file.
    device:
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """

    model_config = ConfigDict(extra="forbid")

    out_dir: Path
    preset: Literal["cpu", "gpu"] = "cpu"
    steps: int = Field(200, ge=1)
    preview_every: int = Field(25, ge=0)
    base_features: int | None = Field(None, ge=2)
    config: Path | None = None
    overrides: list[str] = Field(default_factory=list)
    device: str = "auto"


@dataclass(frozen=True)
class Progress:
    """One step of a run: for the progress bar, and the preview labels when one was made."""

    step: int
    total: int
    loss: float
    steps_per_second: float
    preview: np.ndarray | None = None


@dataclass
class TrainOutcome:
    """A finished (or stopped) run: the trainer's result, the run's first step and the image's instances."""

    result: TrainResult
    first_step: int
    labels: np.ndarray


def write_annotations(
    out_dir: Path, image: np.ndarray, labels: np.ndarray, more: Sequence[tuple[np.ndarray, np.ndarray]] = ()
) -> tuple[list[Path], list[Path]]:
    """Write ``image`` ``[C, *S]`` and training ``labels`` ``[*S]`` (``-1`` unknown) to ``OUT/annotations/``
    (``image.tif``, ``labels.tif``), and each further pair of ``more`` as ``image_<i>.tif``, ``labels_<i>.tif``.

    Returns
    -------
    image_paths, labels_paths
    """
    from spoco_zoo.data.io import write_image, write_tiff

    folder = Path(out_dir) / ANNOTATIONS
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("image_*.tif"), *folder.glob("labels_*.tif")]:  # a previous run's further pairs
        old.unlink()
    images: list[Path] = []
    labelled: list[Path] = []
    for i, (img, lab) in enumerate([(image, labels), *more]):
        suffix = "" if i == 0 else f"_{i}"
        images.append(write_image(folder / f"image{suffix}.tif", np.asarray(img, dtype=np.float32)))
        labelled.append(write_tiff(folder / f"labels{suffix}.tif", lab, ignore_label=-1))
    return images, labelled


def training_config(
    request: TrainRequest,
    files: tuple[Path | Sequence[Path], Path | Sequence[Path]],
    image_shape: tuple[int, ...],
    convention: str,
    resume: bool,
) -> TrainConfig:
    """The config of a run on the annotation ``files`` (an image and its labels, or lists of both) of
    images of shape ``[C, *S]``.

    A new run: the preset, then ``request.config``, then the run's values. Continue (``resume``):
    the config stored in ``OUT/last.pt`` (same network), its step count plus ``request.steps``,
    the new annotation files and the preset's clustering (tuned again at the end).

    Raises
    ------
    CheckpointError
        Continue without a readable ``OUT/last.pt``.
    ValueError
        A config the library refuses (named key and problem).
    """
    spatial_dims, in_channels = len(image_shape) - 1, image_shape[0]
    base = apply_overrides(load_config(request.config, request.preset, spatial_dims), request.overrides)
    values: dict[str, Any] = {
        "out_dir": str(request.out_dir),
        "device": request.device,
        "data.train_images": [str(f) for f in _paths(files[0])],
        "data.train_labels": [str(f) for f in _paths(files[1])],
        "data.labels_are_sparse": True,
        "data.label_convention": convention,
        # painted background is partial: an unpainted pixel is unknown to the foreground channel
        "data.background_complete": False,
    }
    if resume:
        from spoco_zoo.train.checkpoint import load_checkpoint

        state = load_checkpoint(Path(request.out_dir) / LAST)
        stored: TrainConfig = state["config"]
        if stored.model.spatial_dims != spatial_dims or stored.model.in_channels != in_channels:
            raise DataError(
                f"{request.out_dir / LAST}: the run trained a {stored.model.spatial_dims}D model on "
                f"{stored.model.in_channels}-channel images; the image is {spatial_dims}D with {in_channels} "
                "channel(s): choose another output folder to train a new model"
            )
        config = stored.model_copy(update={"clustering": base.clustering})
        values["steps"] = int(state["step"]) + request.steps
        return set_values(config, values)
    values.update({"steps": request.steps, "model.spatial_dims": spatial_dims, "model.in_channels": in_channels})
    if request.base_features is not None:
        values["model.base_features"] = request.base_features
    return set_values(base, values)


def _paths(value: Path | Sequence[Path]) -> list[Path]:
    return [Path(value)] if isinstance(value, (str, Path)) else [Path(v) for v in value]


class TrainingSession:
    """One Train or Continue run on an image and its painted labels (and more pairs, if given).

    Parameters
    ----------
    request:
        The widget's settings.
    image:
        Raw image ``[C, *S]`` (the Image layer's data).
    labels:
        Training labels ``[*S]`` (:func:`spoco_zoo.napari.layers.painted_labels`).
    convention:
        Their label convention.
    report:
        Called from the training thread with every step's :class:`Progress`.
    more:
        Further ``(image, labels)`` pairs trained on as well (same channels and dimensions); the
        preview and the final segmentation show the first image.
    """

    def __init__(
        self,
        request: TrainRequest,
        image: np.ndarray,
        labels: np.ndarray,
        convention: str,
        report: Callable[[Progress], None] | None = None,
        more: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    ) -> None:
        self.request = request
        self.image = np.asarray(image, dtype=np.float32)
        self.labels = labels
        self.more = [(np.asarray(img, dtype=np.float32), lab) for img, lab in more]
        for i, (img, _) in enumerate(self.more, start=1):
            if img.ndim != self.image.ndim or img.shape[0] != self.image.shape[0]:
                raise DataError(
                    f"image {i + 1}: shape {img.shape} does not fit the first image's {self.image.shape} "
                    "(same number of channels and spatial axes needed)"
                )
        self.convention = convention
        self.report = report
        self.trainer: Trainer | None = None
        self.stop_requested = False
        self._clock: tuple[float, int] | None = None  # time and step of the first reported step

    def stop(self) -> None:
        """Stop after the current step; ``last.pt`` is kept and Continue resumes it (thread-safe)."""
        self.stop_requested = True
        if self.trainer is not None:
            self.trainer.request_stop()

    def run(self, resume: bool = False) -> TrainOutcome:
        """Write the annotations, train (or continue) and segment the image with ``last.pt``.

        Raises
        ------
        spoco_zoo.errors.SpocoZooError
            Bad data, a refused checkpoint, a folder in use (each naming the file or folder).
        FileExistsError, FileNotFoundError
            A new run in a folder that holds one, Continue in a folder that holds none.
        """
        out_dir = Path(self.request.out_dir)
        last = out_dir / LAST
        if resume and not last.is_file():
            raise FileNotFoundError(f"{out_dir}: holds no run to continue ({LAST}); press Train first")
        if not resume and last.exists():
            raise FileExistsError(
                f"{out_dir}: already holds a run ({LAST}); press Continue to fine-tune it or choose another folder"
            )
        files = write_annotations(out_dir, self.image, self.labels, self.more)
        config = training_config(self.request, files, self.image.shape, self.convention, resume)
        trainer = Trainer(config, progress=False, on_step=self._on_step)
        self.trainer = trainer
        if self.stop_requested:
            trainer.request_stop()
        first = 0
        if resume:
            from spoco_zoo.train.checkpoint import load_checkpoint

            first = int(load_checkpoint(last)["step"])
        self._clock = None
        result = trainer.fit(resume=resume)
        return TrainOutcome(result, first, self.segment(result.last_checkpoint))

    def segment(self, checkpoint: Path) -> np.ndarray:
        """The image's instances with ``checkpoint``, as ``spoco-zoo segment --checkpoint`` gives them."""
        from spoco_zoo.devices import resolve_device
        from spoco_zoo.segmentation import load_segmenter, segment_with_checkpoint

        segmenter = load_segmenter(checkpoint)
        device = resolve_device(self.request.device)
        labels, _ = segment_with_checkpoint(segmenter, self.image, device=device, source=checkpoint)
        return labels

    def preview(self) -> np.ndarray:
        """The image's instances with the current student and the run's recommended clustering."""
        from spoco_zoo.cluster import cluster_setting
        from spoco_zoo.data.normalize import normalize
        from spoco_zoo.train.validation import predict_whole

        trainer = self.trainer
        assert trainer is not None
        config = trainer.config
        student = trainer.student
        student.eval()  # the next train_step puts it back in training mode
        emb = predict_whole(student, normalize(self.image, config.data.normalization), trainer.device)
        return np.asarray(cluster_setting(emb.numpy(), config.clustering_setting()))

    def _on_step(self, step: int, terms: dict[str, float]) -> None:
        if self.report is None or self.trainer is None:
            return
        now = time.perf_counter()
        if self._clock is None:  # steps per second from the first step on (data loading excluded)
            self._clock = (now, step)
        started, first = self._clock
        rate = (step - first) / (now - started) if now > started else math.nan
        every = self.request.preview_every
        preview = self.preview() if every and step % every == 0 else None
        total = self.trainer.config.steps
        self.report(Progress(step, total, float(terms.get("total", math.nan)), rate, preview))
