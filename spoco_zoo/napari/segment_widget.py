"""The Segment widget: a checkpoint (.pt) or a bioimage.io package (.zip) on an Image layer -> instances.

The labels are those of ``spoco-zoo segment`` (the same :mod:`spoco_zoo.segmentation` functions:
the model's recommended clustering); optionally the embeddings' first three principal components
are shown as an RGB layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton

from spoco_zoo.errors import DataError
from spoco_zoo.napari.layer_io import layer_choices, show_labels, show_rgb, single_path, watch_layers
from spoco_zoo.napari.layers import image_array, layer_name
from spoco_zoo.napari.messages import report_error

__all__ = ["SegmentOutcome", "segment_array", "SegmentWidget"]


@dataclass
class SegmentOutcome:
    """Instance labels ``[*S]`` and, when asked for and available, the embeddings' PCA ``[*S, 3]``; ``note``:
    what the user should know about the result (a checkpoint whose clustering was not tuned)."""

    labels: np.ndarray
    rgb: np.ndarray | None
    source: Path
    note: str | None = None


def segment_array(model: Path, image: np.ndarray, device: str = "auto", with_pca: bool = False) -> SegmentOutcome:
    """Segment a raw image ``[C, *S]`` with a checkpoint (``.pt``) or package (``.zip``) as the CLI does.

    Raises
    ------
    spoco_zoo.errors.SpocoZooError
        A missing or refused checkpoint or package, or an image that does not fit the model.
    """
    from spoco_zoo.devices import resolve_device
    from spoco_zoo.segmentation import (
        load_segmenter,
        package_weight_format,
        segment_with_checkpoint,
        segment_with_package,
        untuned_note,
    )

    model = Path(model)
    if not model.is_file():
        raise DataError(f"{model}: no such file; choose a checkpoint (.pt) or a bioimage.io package (.zip)")
    dev = resolve_device(device)
    note = None
    if model.suffix.lower() == ".zip":
        labels, emb = segment_with_package(model, image, package_weight_format(model), device=str(dev))
    else:
        segmenter = load_segmenter(model)
        note = untuned_note(segmenter)
        labels, emb = segment_with_checkpoint(segmenter, image, device=dev, source=model)
        emb = emb[: segmenter.config.model.embedding_dim]  # the foreground logit is no embedding
    rgb = None
    if with_pca and emb is not None:
        from spoco_zoo.napari.zoo import embedding_rgb

        rgb = embedding_rgb(emb)
    return SegmentOutcome(np.asarray(labels), rgb, model, note)


class SegmentWidget(Container):
    """Dock widget: Image layer + model file -> ``<image> instances`` (and ``<image> embeddings (PCA)``)."""

    def __init__(self, napari_viewer: Any) -> None:
        import napari

        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.image = ComboBox(label="image", choices=layer_choices(napari_viewer, napari.layers.Image))
        self.model = FileEdit(label="model (.pt / .zip)", mode=FileDialogMode.EXISTING_FILE, filter="*.pt *.zip")
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda"], value="auto")
        self.pca = CheckBox(label="embeddings as RGB (PCA)", value=False)
        self.run_button = PushButton(text="Segment")
        self.status = Label(label="status", value="")
        self.status.native.setWordWrap(True)
        self.extend([self.image, self.model, self.device, self.pca, self.run_button, self.status])
        self.run_button.changed.connect(self.start)
        self.worker: Any = None
        self.outcome: SegmentOutcome | None = None
        watch_layers(napari_viewer, self.reset_choices)

    def start(self) -> Any:
        """Segment in a worker thread; returns the worker (``None`` when the form was refused)."""
        from napari.qt.threading import create_worker

        layer = self.image.value
        try:
            if layer is None:
                raise ValueError("choose an Image layer")
            image = image_array(layer.data, bool(layer.rgb), layer.name)
        except Exception as err:
            report_error("Segment", err)
            return None
        model = single_path(self.model.value)
        self._layer = layer
        worker = create_worker(
            segment_array, model, image, self.device.value, self.pca.value, _start_thread=False, _ignore_errors=True
        )
        worker.returned.connect(self._on_done)
        worker.errored.connect(lambda err: report_error(f"Segment {layer.name!r}", err))
        worker.finished.connect(lambda: setattr(self.run_button, "enabled", True))
        self.worker = worker
        self.run_button.enabled = False
        self.status.value = f"segmenting {layer.name!r} with {model.name} ..."
        worker.start()
        return worker

    def _on_done(self, outcome: SegmentOutcome) -> None:
        self.outcome = outcome
        name = layer_name(self._layer.name, "instances")
        show_labels(self.viewer, name, outcome.labels, self._layer)
        if outcome.rgb is not None:
            show_rgb(self.viewer, layer_name(self._layer.name, "pca"), outcome.rgb, self._layer)
        n_objects = int(np.unique(outcome.labels[outcome.labels > 0]).size)
        status = f"{n_objects} objects in {name!r} ({outcome.source.name})"
        self.status.value = status if outcome.note is None else f"{status}; {outcome.note}"
