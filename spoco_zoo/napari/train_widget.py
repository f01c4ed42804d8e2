"""The Train widget: painted objects -> a SPOCO model, with live preview, Stop and Continue.

Train starts a new run in the output folder; Continue fine-tunes the run's ``last.pt`` with the
labels as they are now (paint more objects where the model is wrong, press Continue). Runs go
through :class:`spoco_zoo.napari.session.TrainingSession` in napari's worker thread
(``napari.qt.threading.create_worker``): the viewer stays responsive, a :class:`Relay` carries
each step's progress and the preview labels to the GUI thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.types import FileDialogMode
from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, ProgressBar, PushButton, Select, SpinBox

from spoco_zoo.napari.layer_io import layer_choices, show_labels, single_path, watch_layers
from spoco_zoo.napari.layers import image_array, layer_name, painted_labels
from spoco_zoo.napari.messages import report_error
from spoco_zoo.napari.relay import Relay
from spoco_zoo.napari.session import Progress, TrainingSession, TrainOutcome, TrainRequest

__all__ = ["TrainWidget", "DEFAULT_OUT"]

#: Default output folder of the widget's runs.
DEFAULT_OUT = Path.home() / "spoco-zoo-runs" / "napari"
OBJECTS_ONLY = "objects only (unpainted = unknown)"
#: The painted Labels layer of an image trained on besides the first: ``"<image name> painted"``.
PAINTED_SUFFIX = " painted"
WITH_BACKGROUND = "objects + a background label"


class TrainWidget(Container):
    """Dock widget: Image + painted Labels layer -> training run; results as Labels layers.

    Attributes
    ----------
    worker:
        The running (or last) worker, ``None`` before the first run.
    outcome:
        The last finished run (:class:`~spoco_zoo.napari.session.TrainOutcome`).
    """

    def __init__(self, napari_viewer: Any) -> None:
        import napari

        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.image = ComboBox(label="image", choices=layer_choices(napari_viewer, napari.layers.Image))
        self.painted = ComboBox(label="painted labels", choices=layer_choices(napari_viewer, napari.layers.Labels))
        self.more_images = Select(
            label="more images", choices=layer_choices(napari_viewer, napari.layers.Image), value=[]
        )
        self.more_images.tooltip = (
            "further Image layers to train on, each with its painted objects in the Labels layer "
            f"'<image name>{PAINTED_SUFFIX}' (the preview and the result show the first image)"
        )
        self.convention = ComboBox(label="convention", choices=[OBJECTS_ONLY, WITH_BACKGROUND], value=OBJECTS_ONLY)
        self.background_label = SpinBox(label="background label", value=1, min=1, max=2**31 - 1, visible=False)
        self.preset = ComboBox(label="preset", choices=["cpu", "gpu"], value="cpu")
        self.steps = SpinBox(label="steps", value=300, min=1, max=10_000_000)
        # half the preset's width: better from a handful of painted objects (docs/benchmarks.md, "napari")
        self.base_features = SpinBox(label="network width", value=8, min=0, max=256)
        self.base_features.tooltip = "base features of the U-Net for a new run (0: the preset's / config's)"
        self.preview_every = SpinBox(label="preview every", value=25, min=0, max=10_000_000)
        self.out_dir = FileEdit(label="output folder", mode=FileDialogMode.EXISTING_DIRECTORY, value=DEFAULT_OUT)
        self.config = LineEdit(label="config (optional)", value="")
        self.config.tooltip = "YAML config as for `spoco-zoo train --config` (e.g. a smaller network)"
        self.train_button = PushButton(text="Train")
        self.continue_button = PushButton(text="Continue")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self.status = Label(label="status", value="paint a few objects completely, then Train")
        self.status.native.setWordWrap(True)
        self.extend(
            [
                self.image,
                self.painted,
                self.more_images,
                self.convention,
                self.background_label,
                self.preset,
                self.steps,
                self.base_features,
                self.preview_every,
                self.out_dir,
                self.config,
                self.train_button,
                self.continue_button,
                self.stop_button,
                self.progress,
                self.status,
            ]
        )
        self.convention.changed.connect(lambda value: setattr(self.background_label, "visible", value != OBJECTS_ONLY))
        self.train_button.changed.connect(lambda: self.start(resume=False))
        self.continue_button.changed.connect(lambda: self.start(resume=True))
        self.stop_button.changed.connect(self.stop)
        self.relay = Relay(self._on_progress)
        self.session: TrainingSession | None = None
        self.worker: Any = None
        self.outcome: TrainOutcome | None = None
        self.previews = 0
        #: config overrides for scripted runs (``spoco-zoo train --set`` items), applied after the config file
        self.overrides: list[str] = []
        watch_layers(napari_viewer, self.reset_choices)

    # ------------------------------------------------------------------ actions
    def request(self) -> TrainRequest:
        """The run's settings from the form (validated)."""
        config = self.config.value.strip()
        return TrainRequest(
            out_dir=single_path(self.out_dir.value),
            preset=self.preset.value,
            steps=self.steps.value,
            preview_every=self.preview_every.value,
            base_features=self.base_features.value or None,
            config=Path(config) if config else None,
            overrides=list(self.overrides),
        )

    def start(self, resume: bool) -> Any:
        """Start a run (``resume``: Continue) in a worker thread; errors become notifications.

        Returns the worker, or ``None`` when the form was refused.
        """
        from napari.qt.threading import create_worker

        action = "Continue" if resume else "Train"
        if self.worker is not None and self.worker.is_running:
            report_error(action, RuntimeError("a run is in progress; press Stop first"))
            return None
        image_layer, labels_layer = self.image.value, self.painted.value
        try:
            if image_layer is None:
                raise ValueError("choose an Image layer")
            if labels_layer is None:
                raise ValueError("choose the Labels layer with the painted objects")
            image = image_array(image_layer.data, bool(image_layer.rgb), image_layer.name)
            background = None if self.convention.value == OBJECTS_ONLY else int(self.background_label.value)
            labels, convention = painted_labels(labels_layer.data, image.shape[1:], labels_layer.name, background)
            more = [self._pair(layer, background) for layer in self.more_images.value if layer is not image_layer]
            request = self.request()
        except Exception as err:  # the form: every problem is a notification
            report_error(action, err)
            return None
        self.session = TrainingSession(request, image, labels, convention, report=self.relay.send, more=more)
        self._image_layer = image_layer
        worker = create_worker(self.session.run, resume, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._on_done)
        worker.errored.connect(lambda err: report_error(action, err))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._set_running(True)
        extra = f" and {len(more)} more image(s)" if more else ""
        self.status.value = f"{action}: preparing {image_layer.name!r} / {labels_layer.name!r}{extra}"
        worker.start()
        return worker

    def _pair(self, image_layer: Any, background: int | None) -> tuple[Any, Any]:
        """A further image and its training labels, from the Labels layer ``'<image name> painted'``."""
        import napari

        name = f"{image_layer.name}{PAINTED_SUFFIX}"
        found = [lyr for lyr in self.viewer.layers if isinstance(lyr, napari.layers.Labels) and lyr.name == name]
        if not found:
            raise ValueError(
                f"more images: {image_layer.name!r} has no Labels layer named {name!r} with its painted objects"
            )
        image = image_array(image_layer.data, bool(image_layer.rgb), image_layer.name)
        labels, _ = painted_labels(found[0].data, image.shape[1:], found[0].name, background)
        return image, labels

    def stop(self) -> None:
        """Stop the run after the current step; its checkpoint is kept (Continue resumes it)."""
        if self.session is not None:
            self.session.stop()
            self.status.value = "stopping after this step ..."

    # ------------------------------------------------------------ GUI thread
    def _set_running(self, running: bool) -> None:
        self.train_button.enabled = not running
        self.continue_button.enabled = not running
        self.stop_button.enabled = running

    def _on_progress(self, update: Progress) -> None:
        self.progress.max = update.total
        self.progress.value = min(update.step, update.total)
        self.status.value = (
            f"step {update.step}/{update.total}  loss {update.loss:.4f}  {update.steps_per_second:.2f} steps/s"
        )
        if update.preview is not None:
            show_labels(self.viewer, layer_name(self._image_layer.name, "preview"), update.preview, self._image_layer)
            self.previews += 1

    def _on_done(self, outcome: TrainOutcome) -> None:
        self.outcome = outcome
        result = outcome.result
        name = layer_name(self._image_layer.name, "instances")
        show_labels(self.viewer, name, outcome.labels, self._image_layer)
        n_objects = int(len(set(outcome.labels[outcome.labels > 0].ravel().tolist())))
        verb = "stopped" if result.interrupted else "done"
        self.status.value = (
            f"{verb}: steps {outcome.first_step} -> {result.step} ({result.steps_per_second:.2f} steps/s); "
            f"{n_objects} objects in {name!r}; checkpoint {result.last_checkpoint}"
        )

    def _on_finished(self) -> None:
        self._set_running(False)
