"""The plugin's Qt-free parts: layer conventions, run configs (new, Continue, 3D), the sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spoco_zoo.errors import DataError
from spoco_zoo.napari.layers import image_array, painted_labels
from spoco_zoo.napari.sample import paint_more, sample_scene
from spoco_zoo.napari.session import TrainRequest, training_config
from spoco_zoo.presets import VOLUME
from spoco_zoo.train.checkpoint import save_checkpoint

FILES = (Path("image.tif"), Path("labels.tif"))


def test_new_run_config_follows_the_image(tmp_path: Path) -> None:
    request = TrainRequest(out_dir=tmp_path / "run", preset="cpu", steps=77)
    flat = training_config(request, FILES, (1, 256, 256), "objects_only", resume=False)
    assert flat.steps == 77 and flat.model.spatial_dims == 2 and flat.data.labels_are_sparse
    assert flat.data.label_convention == "objects_only" and not flat.data.background_complete
    assert flat.data.train_images == [Path("image.tif")] and flat.out_dir == tmp_path / "run"
    volume = training_config(request, FILES, (2, 40, 128, 128), "objects_and_background", resume=False)
    assert volume.model.spatial_dims == 3 and volume.model.in_channels == 2
    assert volume.data.patch_shape == VOLUME["data"]["patch_shape"]  # the preset's 3D recipe, as train --3d
    assert flat.model.base_features == 16  # the preset's
    narrow = training_config(request.model_copy(update={"base_features": 8}), FILES, (1, 64, 64), "objects_only", False)
    assert narrow.model.base_features == 8


def test_continue_keeps_the_stored_network_and_adds_steps(tmp_path: Path) -> None:
    request = TrainRequest(out_dir=tmp_path, steps=50)
    stored = training_config(request, FILES, (1, 64, 64), "objects_only", resume=False)
    stored = stored.model_copy(update={"model": stored.model.model_copy(update={"base_features": 6})})
    save_checkpoint(tmp_path / "last.pt", {"config": stored, "step": 120, "model_state": {}})
    config = training_config(request, (Path("a.tif"), Path("b.tif")), (1, 64, 64), "objects_only", resume=True)
    assert config.steps == 170 and config.model.base_features == 6
    assert config.data.train_labels == [Path("b.tif")]
    with pytest.raises(DataError, match="3D"):
        training_config(request, FILES, (1, 8, 64, 64), "objects_only", resume=True)


def test_layer_conventions() -> None:
    assert image_array(np.ones((5, 6, 7)), False, "v").shape == (1, 5, 6, 7)
    labels, convention = painted_labels(np.array([[0, 3], [9, 9]]), (2, 2), "p", background_label=9)
    assert convention == "objects_and_background" and labels.tolist() == [[-1, 3], [0, 0]]
    with pytest.raises(DataError, match="'p'.*shape"):
        painted_labels(np.zeros((2, 3), int), (2, 2), "p")
    with pytest.raises(DataError, match="'p'.*no painted object"):
        painted_labels(np.zeros((2, 2), int), (2, 2), "p")


def test_paint_more_adds_the_worst_segmented_objects() -> None:
    scene = sample_scene((96, 96), 12, n_painted=3, seed=1)
    truth = scene.truth
    predicted = np.where(np.isin(truth, [1, 2, 3, 4]), truth, 0)  # objects 1-4 perfect, the rest missed
    more = paint_more(truth, scene.painted, predicted, 2)
    added = set(np.unique(more[more > 0]).tolist()) - set(np.unique(scene.painted[scene.painted > 0]).tolist())
    assert len(added) == 2 and not added & {1, 2, 3, 4}
    for obj in added:
        assert np.array_equal(more == obj, truth == obj)


def test_more_pairs_are_written_and_trained_on(tmp_path: Path) -> None:
    from spoco_zoo.napari.session import TrainingSession, write_annotations

    image, labels = np.ones((1, 32, 32), np.float32), np.full((32, 32), -1, np.int64)
    labels[:4, :4] = 1
    other = labels.copy()
    other[10:14, 10:14] = 2
    images, labelled = write_annotations(tmp_path, image, labels, [(image * 2, other)])
    assert [p.name for p in images] == ["image.tif", "image_1.tif"]
    assert [p.name for p in labelled] == ["labels.tif", "labels_1.tif"]
    request = TrainRequest(out_dir=tmp_path / "run", preset="cpu", steps=5)
    config = training_config(request, (images, labelled), (1, 32, 32), "objects_only", resume=False)
    assert [p.name for p in config.data.train_images] == ["image.tif", "image_1.tif"]
    assert [p.name for p in config.data.train_labels] == ["labels.tif", "labels_1.tif"]
    images, _ = write_annotations(tmp_path, image, labels)  # a later run without the second pair drops it
    assert [p.name for p in images] == ["image.tif"] and not (tmp_path / "annotations" / "image_1.tif").exists()
    with pytest.raises(DataError, match="image 2: shape"):
        TrainingSession(request, image, labels, "objects_only", more=[(np.ones((2, 32, 32), np.float32), other)])


def test_overrides_apply_over_the_preset_as_train_set_does(tmp_path: Path) -> None:
    request = TrainRequest(out_dir=tmp_path / "run", preset="cpu", steps=5, overrides=["model.depth=2", "lr=0.01"])
    config = training_config(request, FILES, (1, 64, 64), "objects_only", resume=False)
    assert config.model.depth == 2 and config.lr == 0.01
    with pytest.raises(ValueError, match="model.nope"):
        training_config(
            request.model_copy(update={"overrides": ["model.nope=1"]}), FILES, (1, 64, 64), "objects_only", False
        )
