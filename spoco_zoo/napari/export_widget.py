"""The Export widget: a checkpoint -> a validated bioimage.io package, with progress and per-format results.

The work is :func:`spoco_zoo.napari.zoo.export_and_validate` (``spoco-zoo export``'s functions) in a
worker thread; each export step's log line reaches the status label through a :class:`Relay`.
"""

from __future__ import annotations

from typing import Any

from magicgui.types import FileDialogMode
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, LineEdit, PushButton

from spoco_zoo.errors import ExportError
from spoco_zoo.napari.layer_io import single_path
from spoco_zoo.napari.messages import report_error
from spoco_zoo.napari.relay import Relay
from spoco_zoo.napari.zoo import ExportOptions, ExportRequest, ExportSummary, export_and_validate

__all__ = ["ExportWidget", "split_authors", "layer_pixel_size"]

ALL_FORMATS = "pytorch_state_dict,torchscript,onnx"


def split_authors(text: str) -> list[str]:
    """Authors separated by commas; each ``Name`` or ``Name;github_user=...;affiliation=...``.

    >>> split_authors("Ada Lovelace;github_user=ada, Alan Turing")
    ['Ada Lovelace;github_user=ada', 'Alan Turing']
    """
    return [part.strip() for part in text.split(",") if part.strip()]


def layer_pixel_size(viewer: Any) -> str:
    """The active Image layer's ``scale`` as the form's text, ``""`` when there is none or it is all 1
    (napari's default, i.e. no pixel size known)."""
    from napari.layers import Image

    layer = viewer.layers.selection.active
    if not isinstance(layer, Image):
        layer = next((lyr for lyr in viewer.layers if isinstance(lyr, Image)), None)
    if layer is None:
        return ""
    scale = [float(v) for v in layer.scale][-(3 if layer.ndim >= 3 and not layer.rgb else 2) :]
    return "" if all(v == 1.0 for v in scale) else ",".join(f"{v:g}" for v in scale)


class ExportWidget(Container):
    """Dock widget: name, authors, license, variant, weight formats -> ``.zip`` + validation table."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.checkpoint = FileEdit(label="checkpoint (.pt)", mode=FileDialogMode.EXISTING_FILE, filter="*.pt")
        self.output = FileEdit(label="package (.zip)", mode=FileDialogMode.OPTIONAL_FILE, filter="*.zip")
        self.model_name = LineEdit(label="name", value="")
        self.authors = LineEdit(label="authors", value="")
        self.authors.tooltip = "comma-separated; each 'Name' or 'Name;github_user=...;affiliation=...;orcid=...'"
        self.license = LineEdit(label="license (SPDX)", value="MIT")
        self.variant = ComboBox(label="variant", choices=["full", "instances", "embeddings"], value="full")
        self.formats = LineEdit(label="weight formats", value=ALL_FORMATS)
        self.test_shape = LineEdit(label="test shape (optional)", value="")
        self.pixel_size = LineEdit(label="pixel size, um (optional)", value=layer_pixel_size(napari_viewer))
        self.pixel_size.tooltip = "micrometres per pixel along z,y,x or y,x (default: the Image layer's scale)"
        self.validate_box = CheckBox(label="validate (bioimageio.core)", value=True)
        self.run_button = PushButton(text="Export")
        self.status = Label(label="status", value="")
        self.result = Label(label="result", value="")
        self.status.native.setWordWrap(True)
        self.result.native.setWordWrap(True)
        self.extend(
            [
                self.checkpoint,
                self.output,
                self.model_name,
                self.authors,
                self.license,
                self.variant,
                self.formats,
                self.test_shape,
                self.pixel_size,
                self.validate_box,
                self.run_button,
                self.status,
                self.result,
            ]
        )
        self.run_button.changed.connect(self.start)
        self.relay = Relay(self._on_log)
        self.worker: Any = None
        self.summary: ExportSummary | None = None
        self.log_lines: list[str] = []

    def request(self) -> ExportRequest:
        """The export's settings from the form (validated)."""
        output = single_path(self.output.value)
        if output.suffix.lower() != ".zip":
            output = output.with_suffix(".zip")
        options = ExportOptions(  # checked as spoco-zoo export checks its flags
            name=self.model_name.value.strip() or None,
            authors=split_authors(self.authors.value),
            license=self.license.value.strip() or "MIT",
            variant=self.variant.value,
            formats=self.formats.value,
            test_shape=self.test_shape.value,
            pixel_size=self.pixel_size.value,
        )
        return ExportRequest(
            checkpoint=single_path(self.checkpoint.value),
            output=output,
            options=options,
            validate_package=self.validate_box.value,
        )

    def start(self) -> Any:
        """Export (and validate) in a worker thread; returns the worker, ``None`` when the form was refused."""
        from napari.qt.threading import create_worker

        try:
            request = self.request()
            if not request.checkpoint.is_file():
                raise FileNotFoundError(f"{request.checkpoint}: no such checkpoint; choose a .pt file (last.pt)")
        except Exception as err:
            report_error("Export", err)
            return None
        worker = create_worker(export_and_validate, request, self.relay.send, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._on_done)
        worker.errored.connect(lambda err: self._on_error(request, err))
        worker.finished.connect(lambda: setattr(self.run_button, "enabled", True))
        self.worker = worker
        self.summary = None
        self.log_lines = []
        self.run_button.enabled = False
        self.result.value = ""
        self.status.value = f"exporting {request.checkpoint.name} -> {request.output.name} ..."
        worker.start()
        return worker

    def _on_log(self, line: str) -> None:
        self.log_lines.append(line)
        self.status.value = line if len(line) <= 120 else line[:117] + "..."

    def _on_error(self, request: ExportRequest, err: BaseException) -> None:
        self.status.value = "export failed"
        report_error(f"Export {request.checkpoint}", err)

    def _on_done(self, summary: ExportSummary) -> None:
        from napari.utils.notifications import show_info

        self.summary = summary
        self.result.value = summary.table()
        if not summary.validated:
            self.status.value = f"written (not validated): {summary.path}"
        elif summary.passed:
            self.status.value = f"validation passed: {summary.path}"
            show_info(f"Export: {summary.path} written and validated ({', '.join(summary.formats)})")
        else:
            failed = ", ".join(r.name for r in summary.rows if not r.passed)
            self.status.value = f"validation FAILED for {failed}: {summary.path} kept for inspection"
            report_error("Export", ExportError(f"{summary.path}: validation failed for {failed}"))
