"""One human-in-the-loop round of the napari plugin on its synthetic sample, through the widgets' code.

The napari sample (:func:`spoco_zoo.napari.sample.sample_scene`: a 256x256 crowded synthetic image,
5 objects painted) is trained with :class:`spoco_zoo.napari.session.TrainingSession` -- what the
Train widget runs in its worker thread, preset ``cpu`` -- for ``--steps`` steps; the user then paints
the 5 objects the result got most wrong (:func:`spoco_zoo.napari.sample.paint_more`: lowest best IoU)
and presses Continue: the same session with ``resume=True`` fine-tunes the run's checkpoint for
``--more-steps`` steps. After each round the image is segmented as the widget shows it (the run's
``last.pt``, ``spoco-zoo segment``'s code) and scored against the dense ground truth (SBD); fresh
synthetic images the run never saw (seed 4242) are scored too.

    python benchmarks/napari_loop.py                      # 300 + 300 steps, preset cpu
    python benchmarks/napari_loop.py --steps 20 --more-steps 10 --set model.depth=2   # a smoke test

Prints one row per round: painted objects, steps, seconds, SBD on the sample, mean SBD on the
held-out images.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from spoco_zoo.metrics.sbd import symmetric_best_dice
from spoco_zoo.napari.layers import image_array, painted_labels
from spoco_zoo.napari.sample import paint_more, sample_scene
from spoco_zoo.napari.session import TrainingSession, TrainRequest
from spoco_zoo.segmentation import load_segmenter, segment_with_checkpoint

HELD_OUT_SEED = 4242


def _held_out_sbd(checkpoint: Path, n: int) -> float:
    from spoco_zoo.data.synthetic import make_synthetic_sample

    segmenter = load_segmenter(checkpoint)
    scores = []
    for i in range(n):
        image, truth = make_synthetic_sample((256, 256), 40, (HELD_OUT_SEED, i))
        labels, _ = segment_with_checkpoint(segmenter, image[None].astype(np.float32), device="cpu")
        scores.append(symmetric_best_dice(labels, truth))
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="steps of the first round (Train)")
    parser.add_argument("--more-steps", type=int, default=300, help="steps of the second round (Continue)")
    parser.add_argument("--paint", type=int, default=5, help="objects painted first, and added before Continue")
    parser.add_argument("--n-held-out", type=int, default=2, help="fresh synthetic images scored per round")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override key=value")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    args = parser.parse_args()

    folder = args.out or Path(tempfile.mkdtemp(prefix="napari_loop_"))
    folder.mkdir(parents=True, exist_ok=True)
    scene = sample_scene(n_painted=args.paint)
    image = image_array(scene.image, False, "sample")
    request = TrainRequest(out_dir=folder / "run", preset="cpu", steps=args.steps, preview_every=0, overrides=args.sets)
    painted = scene.painted
    rows = []
    for round_index, steps in enumerate((args.steps, args.more_steps)):
        labels, convention = painted_labels(painted, image.shape[1:], "painted")
        session = TrainingSession(request.model_copy(update={"steps": steps}), image, labels, convention)
        started = time.perf_counter()
        outcome = session.run(resume=round_index > 0)
        seconds = time.perf_counter() - started
        n_painted = int(np.unique(painted[painted > 0]).size)
        sbd = symmetric_best_dice(outcome.labels, scene.truth)
        held = _held_out_sbd(outcome.result.last_checkpoint, args.n_held_out)
        rows.append((n_painted, outcome.first_step, outcome.result.step, seconds, sbd, held))
        print(
            f"round {round_index + 1}: {n_painted} painted, steps {outcome.first_step} -> {outcome.result.step} "
            f"({seconds:.0f} s): SBD sample {sbd:.3f}, held-out {held:.3f}",
            flush=True,
        )
        painted = paint_more(scene.truth, painted, outcome.labels, args.paint)
    print(f"\n| painted objects | steps | seconds | SBD (sample) | SBD (held-out, mean of {args.n_held_out}) |")
    print("| --- | --- | --- | --- | --- |")
    for n_painted, first, last, seconds, sbd, held in rows:
        print(f"| {n_painted} | {first} -> {last} | {seconds:.0f} | {sbd:.3f} | {held:.3f} |")


if __name__ == "__main__":
    main()
