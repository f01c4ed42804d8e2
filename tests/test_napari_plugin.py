"""The napari plugin driven as a user would, in a real viewer (pytest-qt, ``make_napari_viewer``, Xvfb in CI).

Open the sample, train a tiny model from its five painted objects (preview layer, final instances,
an event loop that keeps running), paint one more object and Continue (the run resumes from its
checkpoint), export a package that validates, segment with it and with the checkpoint and get the
CLI's labels; failures are notifications that name the layer or file.
"""

from __future__ import annotations

import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    pytest.skip("napari needs a display: run under xvfb-run (scripts/test.sh does)", allow_module_level=True)

from typer.testing import CliRunner  # noqa: E402

from spoco_zoo.cli.main import app  # noqa: E402
from spoco_zoo.data.io import read_labels, write_image  # noqa: E402
from spoco_zoo.napari.export_widget import ExportWidget  # noqa: E402
from spoco_zoo.napari.sample import SAMPLE_NAME, paint_more, sample_scene  # noqa: E402
from spoco_zoo.napari.segment_widget import SegmentWidget  # noqa: E402
from spoco_zoo.napari.session import ANNOTATIONS  # noqa: E402
from spoco_zoo.napari.train_widget import TrainWidget  # noqa: E402
from spoco_zoo.train.checkpoint import load_checkpoint  # noqa: E402

PAINTED = f"{SAMPLE_NAME} painted"
#: a tiny network and small patches: a few dozen steps take seconds on 2 CPU cores (base_features 8: with 4,
#: the 30 steps below left one object in the final labels on a 2-core AVX2 CPU, 29 with 8 there)
TINY_CONFIG = """\
model: {depth: 2, base_features: 8, embedding_dim: 8}
data: {patch_shape: [64, 64], batch_size: 1}
checkpoint_every: 10
val_every: 100000
log_every: 5
warmup_steps: 5
lr: 0.003
"""


@pytest.fixture()
def errors(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts of the error notifications shown during the test."""
    shown: list[str] = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    return shown


def _viewer_with_sample(make_napari_viewer: Any) -> Any:
    viewer = make_napari_viewer()
    viewer.open_sample("spoco-zoo", "painted")
    return viewer


def _train_widget(viewer: Any, out_dir: Path, config: Path, steps: int, preview_every: int) -> TrainWidget:
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.value = viewer.layers[SAMPLE_NAME]
    widget.painted.value = viewer.layers[PAINTED]
    widget.steps.value = steps
    widget.preview_every.value = preview_every
    widget.out_dir.value = out_dir
    widget.config.value = str(config)
    widget.preset.value = "cpu"
    widget.base_features.value = 0  # the config file's tiny network
    return widget


def _objects(labels: np.ndarray) -> int:
    return int(np.unique(labels[labels > 0]).size)


def test_sample_has_five_painted_objects(make_napari_viewer: Any) -> None:
    viewer = _viewer_with_sample(make_napari_viewer)
    image, painted = viewer.layers[SAMPLE_NAME], viewer.layers[PAINTED]
    assert image.data.shape == painted.data.shape == (256, 256)
    assert _objects(painted.data) == 5
    truth = sample_scene().truth  # every painted object is a whole ground-truth object
    for obj in np.unique(painted.data[painted.data > 0]):
        assert np.array_equal(painted.data == obj, truth == obj)


def test_train_preview_continue_export_segment(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path, errors: list[str]
) -> None:
    from qtpy.QtCore import QTimer

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    viewer = _viewer_with_sample(make_napari_viewer)
    widget = _train_widget(viewer, tmp_path / "run", config, steps=30, preview_every=15)

    ticks: list[float] = []  # the GUI thread's timer
    sent: list[float] = []  # the worker's progress reports, timed in the worker thread
    report = widget.relay.send
    widget.relay.send = lambda value: (sent.append(time.perf_counter()), report(value))  # type: ignore[method-assign]
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    widget.train_button.native.click()
    assert widget.worker is not None and widget.stop_button.enabled and not widget.train_button.enabled
    qtbot.waitUntil(lambda: widget.outcome is not None, timeout=180_000)
    qtbot.waitUntil(lambda: widget.train_button.enabled, timeout=10_000)  # finished reached the GUI
    timer.stop()

    # the GUI thread kept running while the worker trained: the timer fired all along the 30 steps
    assert len(sent) == 30
    training = sent[-1] - sent[0]
    during = [t for t in ticks if sent[0] <= t <= sent[-1]]
    assert training > 0.3, training
    assert len(during) > 0.25 * training / 0.02, (len(during), training)
    gaps = np.diff([sent[0], *during, sent[-1]])
    assert gaps.max() < 1.0, f"event loop blocked for {gaps.max():.2f} s while training"

    outcome = widget.outcome
    assert outcome is not None and outcome.first_step == 0 and outcome.result.step == 30
    assert not outcome.result.interrupted
    assert widget.previews == 2  # steps 15 and 30
    preview = viewer.layers[f"{SAMPLE_NAME} instances (preview)"]
    final = viewer.layers[f"{SAMPLE_NAME} instances"]
    assert preview.data.dtype == final.data.dtype == np.uint32
    assert _objects(final.data) >= 3
    assert widget.progress.value == 30 and "done: steps 0 -> 30" in widget.status.value
    assert widget.train_button.enabled and not widget.stop_button.enabled
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 30

    # paint one more object where the model is wrong, Continue: the run resumes at step 30
    scene = sample_scene()
    painted = viewer.layers[PAINTED]
    painted.data = paint_more(scene.truth, painted.data, final.data, 1).astype(np.uint32)
    assert _objects(painted.data) == 6
    widget.steps.value = 10
    widget.continue_button.native.click()
    qtbot.waitUntil(lambda: widget.outcome is not outcome, timeout=180_000)
    qtbot.waitUntil(lambda: widget.train_button.enabled, timeout=10_000)  # finished reached the GUI
    resumed = widget.outcome
    assert resumed is not None and resumed.first_step == 30 and resumed.result.step == 40
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["step"] == 40
    logged = [int(h["step"]) for h in state["history"]]
    assert min(logged) <= 30 < max(logged) == 40  # one history: the first run's steps, then the new ones
    trained_on = read_labels(tmp_path / "run" / ANNOTATIONS / "labels.tif", spatial_dims=2)
    assert _objects(trained_on) == 6

    # export the run as a package that validates, with progress and per-format results
    checkpoint = tmp_path / "run" / "last.pt"
    viewer.layers[SAMPLE_NAME].scale = (0.5, 0.5)  # a known pixel size: it goes into the package
    viewer.layers.selection.active = viewer.layers[SAMPLE_NAME]
    export = ExportWidget(viewer)
    assert export.pixel_size.value == "0.5,0.5"
    viewer.window.add_dock_widget(export)
    package = tmp_path / "napari-model.zip"
    export.checkpoint.value = checkpoint
    export.output.value = package
    export.model_name.value = "napari test model"
    export.authors.value = "A. Tester"
    export.license.value = "CC-BY-4.0"
    export.variant.value = "embeddings"
    export.formats.value = "pytorch_state_dict"
    export.test_shape.value = "48,48"
    worker = export.start()
    assert worker is not None
    qtbot.waitUntil(lambda: export.summary is not None, timeout=240_000)
    summary = export.summary
    assert summary is not None and summary.path == package and package.is_file()
    assert summary.validated and summary.passed, summary.table()
    assert {row.name for row in summary.rows} >= {"pytorch_state_dict"}
    assert "PASS pytorch_state_dict" in export.result.value
    assert export.log_lines, "no progress was shown"
    with zipfile.ZipFile(package) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
    space = [a for a in rdf["inputs"][0]["axes"] if a.get("type") == "space"]
    assert [(a["scale"], a["unit"]) for a in space] == [(0.5, "micrometer")] * 2

    image_file = write_image(tmp_path / "sample.tif", np.asarray(viewer.layers[SAMPLE_NAME].data))
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment)
    segment.image.value = viewer.layers[SAMPLE_NAME]
    segment.device.value = "cpu"
    for model, flag in ((package, "--model"), (checkpoint, "--checkpoint")):
        segment.model.value = model
        segment.pca.value = flag == "--checkpoint"
        segment.outcome = None
        segment.start()
        qtbot.waitUntil(lambda: segment.outcome is not None, timeout=120_000)
        out = tmp_path / f"cli{flag}"
        cli = CliRunner().invoke(
            app, ["segment", str(image_file), flag, str(model), "-o", str(out), "--device", "cpu", "--no-progress"]
        )
        assert cli.exit_code == 0, cli.output
        expected = read_labels(out / "sample_instances.tif", spatial_dims=2)
        got = viewer.layers[f"{SAMPLE_NAME} instances"].data
        assert _objects(got) >= 2
        assert np.array_equal(got.astype(np.int64), expected), f"{flag}: labels differ from the CLI's"
    pca = viewer.layers[f"{SAMPLE_NAME} embeddings (PCA)"]
    assert pca.rgb and pca.data.shape == (256, 256, 3)
    assert 0.0 <= float(pca.data.min()) < float(pca.data.max()) <= 1.0

    # Train again into the same folder is refused with a notification naming it, not a traceback
    worker = widget.start(resume=False)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=30_000)
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=5_000)
    assert "already holds a run" in errors[0] and str(tmp_path / "run") in errors[0]
    assert "Traceback" not in errors[0]


def test_stop_keeps_the_checkpoint(make_napari_viewer: Any, qtbot: Any, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    viewer = _viewer_with_sample(make_napari_viewer)
    widget = _train_widget(viewer, tmp_path / "run", config, steps=100_000, preview_every=0)
    widget.train_button.native.click()
    qtbot.waitUntil(lambda: widget.progress.value >= 3, timeout=120_000)
    widget.stop_button.native.click()
    qtbot.waitUntil(lambda: widget.outcome is not None, timeout=120_000)
    result = widget.outcome.result
    assert result.interrupted and 3 <= result.step < 100_000
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == result.step
    assert "stopped" in widget.status.value


def test_errors_are_notifications(make_napari_viewer: Any, qtbot: Any, tmp_path: Path, errors: list[str]) -> None:
    viewer = _viewer_with_sample(make_napari_viewer)
    viewer.add_labels(np.zeros((256, 256), np.uint32), name="nothing painted")
    widget = _train_widget(viewer, tmp_path / "run", tmp_path / "none.yaml", steps=5, preview_every=0)
    widget.painted.value = viewer.layers["nothing painted"]
    assert widget.start(resume=False) is None
    assert "'nothing painted'" in errors[-1] and "no painted object" in errors[-1]

    widget.painted.value = viewer.layers[PAINTED]
    worker = widget.start(resume=True)  # Continue without a run in the folder
    qtbot.waitUntil(lambda: not worker.is_running, timeout=30_000)
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=5_000)
    assert str(tmp_path / "run") in errors[-1] and "no run to continue" in errors[-1]

    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment)
    segment.image.value = viewer.layers[SAMPLE_NAME]
    segment.model.value = tmp_path / "missing.zip"
    worker = segment.start()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=30_000)
    qtbot.waitUntil(lambda: len(errors) == 3, timeout=5_000)
    assert str(tmp_path / "missing.zip") in errors[-1] and "no such file" in errors[-1]
    assert all("Traceback" not in text for text in errors)


def test_more_images_train_together(make_napari_viewer: Any, qtbot: Any, tmp_path: Path, errors: list[str]) -> None:
    """A second Image layer with its '<name> painted' Labels layer joins the run; without one, the form says so."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    viewer = _viewer_with_sample(make_napari_viewer)
    scene = sample_scene()
    second = viewer.add_image(np.ascontiguousarray(np.fliplr(np.asarray(scene.image))), name="second")
    widget = _train_widget(viewer, tmp_path / "run", config, steps=6, preview_every=0)
    widget.more_images.value = [second]
    assert widget.start(resume=False) is None  # no 'second painted' layer yet
    assert "'second painted'" in errors[-1] and "Traceback" not in errors[-1]

    painted = np.fliplr(np.asarray(viewer.layers[PAINTED].data)).astype(np.uint32)
    painted[painted == painted.max()] = 0  # four objects on the second image
    viewer.add_labels(np.ascontiguousarray(painted), name="second painted")
    worker = widget.start(resume=False)
    assert worker is not None and "1 more image" in widget.status.value
    qtbot.waitUntil(lambda: widget.outcome is not None, timeout=180_000)
    assert widget.outcome.result.step == 6
    folder = tmp_path / "run" / ANNOTATIONS
    assert _objects(read_labels(folder / "labels.tif", spatial_dims=2)) == 5
    assert _objects(read_labels(folder / "labels_1.tif", spatial_dims=2)) == 4
    trained = load_checkpoint(tmp_path / "run" / "last.pt")["config"].data.train_images
    assert [Path(p).name for p in trained] == ["image.tif", "image_1.tif"]
    assert viewer.layers[f"{SAMPLE_NAME} instances"].data.shape == (256, 256)  # the first image's result


def test_segment_says_when_a_checkpoint_was_not_tuned(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path, random_checkpoint_2d: Path
) -> None:
    """A checkpoint whose clustering was to be tuned and was not (a best.pt read mid-training): the status says so."""
    viewer = _viewer_with_sample(make_napari_viewer)
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment)
    segment.image.value = viewer.layers[SAMPLE_NAME]
    segment.device.value = "cpu"
    segment.model.value = random_checkpoint_2d
    segment.start()
    qtbot.waitUntil(lambda: segment.outcome is not None, timeout=60_000)
    assert segment.outcome.note is not None and "not tuned" in segment.status.value
    assert "for every clustering setting not given explicitly" in segment.status.value
    assert str(random_checkpoint_2d) in segment.status.value
