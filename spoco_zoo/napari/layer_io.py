"""Reading layers from and writing result layers to a napari viewer (the widgets' shared part)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from spoco_zoo.napari.layers import as_instance_layer

__all__ = ["single_path", "layer_choices", "watch_layers", "show_labels", "show_rgb"]


def single_path(value: Any) -> Path:
    """A file widget's value as one path (a multi-file value gives its first)."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else ""
    return Path(str(value or ""))


def layer_choices(viewer: Any, kind: type) -> Callable[[Any], list[tuple[str, Any]]]:
    """A magicgui ``choices`` callable: the viewer's layers of type ``kind`` as ``(name, layer)``."""

    def choices(widget: Any = None) -> list[tuple[str, Any]]:
        layers: list[Any] = [layer for layer in viewer.layers if isinstance(layer, kind)]
        return [(layer.name, layer) for layer in layers]

    return choices


def watch_layers(viewer: Any, reset: Callable[[], None]) -> None:
    """Call ``reset`` whenever a layer is added, removed or renamed (to refresh layer choices)."""
    events = viewer.layers.events
    events.inserted.connect(lambda event: reset())
    events.removed.connect(lambda event: reset())
    events.moved.connect(lambda event: reset())
    events.changed.connect(lambda event: reset())


def _placement(like: Any) -> dict[str, Any]:
    """Scale and translation of ``like``'s spatial axes (an RGB layer's colour axis has none)."""
    return {"scale": tuple(like.scale), "translate": tuple(like.translate)}


def show_labels(viewer: Any, name: str, labels: np.ndarray, like: Any) -> Any:
    """Put ``labels`` into the Labels layer ``name`` (created on the first call with ``like``'s
    scale and translation, so the result sits on the image), return the layer."""
    data = as_instance_layer(labels)
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        return layer
    return viewer.add_labels(data, name=name, **_placement(like))


def show_rgb(viewer: Any, name: str, rgb: np.ndarray, like: Any) -> Any:
    """Put an RGB image ``[*S, 3]`` in ``[0, 1]`` into the Image layer ``name`` (created on the first call)."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = rgb
        return layer
    return viewer.add_image(rgb, name=name, rgb=True, **_placement(like))
