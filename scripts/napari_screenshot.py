"""Screenshot of the napari plugin for the README: the sample, the Train widget and its result.

Opens a real viewer, loads the plugin's sample (5 objects painted), docks the Train widget, presses
Train and waits -- the GUI stays live while the worker trains -- then saves ``viewer.screenshot``
of the whole window (widget + instances over the image). Headless::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/napari_screenshot.py
    python scripts/napari_screenshot.py --steps 40 --set model.depth=2 --set model.base_features=4  # quick

Writes ``docs/images/napari_plugin.png`` (``--output``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--preview-every", type=int, default=50)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override key=value")
    parser.add_argument("--output", type=Path, default=Path("docs/images/napari_plugin.png"))
    args = parser.parse_args()

    import napari
    from qtpy.QtWidgets import QApplication

    from spoco_zoo.napari.sample import SAMPLE_NAME
    from spoco_zoo.napari.train_widget import TrainWidget

    folder = Path(tempfile.mkdtemp(prefix="napari_shot_"))
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1500, 900)
    viewer.open_sample("spoco-zoo", "painted")
    widget = TrainWidget(viewer)
    widget.native.setMaximumWidth(460)
    viewer.window.add_dock_widget(widget, name="spoco-zoo: Train", area="right")
    widget.image.value = viewer.layers[SAMPLE_NAME]
    widget.painted.value = viewer.layers[f"{SAMPLE_NAME} painted"]
    widget.steps.value = args.steps
    widget.preview_every.value = args.preview_every
    widget.out_dir.value = folder / "run"
    widget.overrides = list(args.sets)
    widget.train_button.native.click()
    # the worker trains; the GUI thread keeps painting progress and previews until it has finished
    while widget.worker is None or widget.worker.is_running or not widget.train_button.enabled:
        QApplication.processEvents()
        time.sleep(0.05)
    if widget.outcome is None:
        raise SystemExit(f"training failed: {widget.status.value}")
    preview = f"{SAMPLE_NAME} instances (preview)"
    if preview in viewer.layers:
        viewer.layers[preview].visible = False
    viewer.layers[f"{SAMPLE_NAME} painted"].visible = False
    viewer.layers[f"{SAMPLE_NAME} instances"].opacity = 0.5
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.output), canvas_only=False)
    print(f"{args.output}: {widget.status.value}")
    viewer.close()


if __name__ == "__main__":
    main()
