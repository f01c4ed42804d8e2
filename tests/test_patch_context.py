"""Training patches with context (``data.patch_context``): the network sees the patch and its context,
the losses the patch only; bare-patch steps see the item's centre."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from spoco_zoo.config import TrainConfig
from spoco_zoo.train.patch_context import crop_centre
from spoco_zoo.train.trainer import Trainer

CONTEXT = [4, 8, 8]
PATCH = [16, 32, 32]


def _trainer(
    tmp_path: Path,
    context_steps: int | None,
    context_batch_size: int | None = None,
    shifted_teacher: bool = False,
    object_fraction: float = 1.0,
) -> Trainer:
    cfg = TrainConfig.model_validate(
        {
            "steps": 4,
            "out_dir": str(tmp_path),
            "seed": 3,
            "data": {
                "patch_shape": PATCH,
                "patch_context": CONTEXT,
                "context_steps": context_steps,
                "context_batch_size": context_batch_size,
                "shifted_teacher": shifted_teacher,
                "batch_size": 2,
                "object_fraction": object_fraction,
                "synthetic": {"n_train": 1, "n_val": 1, "shape": [32, 64, 64], "n_objects": 12},
            },
            "model": {"spatial_dims": 3, "depth": 2, "base_features": 4},
        }
    )
    trainer = Trainer(cfg, progress=False)
    trainer.setup()
    return trainer


def _loss_of(trainer: Trainer, step: int, batch: dict[str, torch.Tensor]) -> tuple[float, list[tuple[int, ...]]]:
    """The step's total loss on ``batch`` from the same starting state, and the network's input shapes."""
    state = copy.deepcopy((trainer.student.state_dict(), trainer.teacher.state_dict(), trainer.optimizer.state_dict()))
    seen: list[tuple[int, ...]] = []
    hook = trainer.student.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape)))
    try:
        total = trainer.train_step(step, {key: value.clone() for key, value in batch.items()})["total"]
    finally:
        hook.remove()
        trainer.student.load_state_dict(state[0])
        trainer.teacher.load_state_dict(state[1])
        trainer.optimizer.load_state_dict(state[2])
    return total, seen


def _ring(tensor: torch.Tensor) -> torch.Tensor:
    """A boolean mask of the context ring over the last three axes of ``tensor``."""
    ring = torch.ones(tensor.shape[-3:], dtype=torch.bool)
    crop_centre(ring, CONTEXT)[...] = False
    return ring


def test_items_hold_the_patch_and_its_context(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, None)
    item = trainer.train_set[0]
    assert tuple(item["image"].shape) == (1, 24, 48, 48) and tuple(item["labels"].shape) == (24, 48, 48)
    assert trainer.config.data.window_shape() == [24, 48, 48]


def test_a_context_step_sees_the_context_and_scores_the_patch_only(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, None)
    batch = trainer.batch(0)
    base, seen = _loss_of(trainer, 0, batch)
    assert seen == [(2, 1, 24, 48, 48)]  # the student saw the whole item (the teacher runs without hooks)
    ring = _ring(batch["labels"])
    relabelled = dict(batch, labels=torch.where(ring, torch.full_like(batch["labels"], 99), batch["labels"]))
    assert _loss_of(trainer, 0, relabelled)[0] == pytest.approx(base, rel=1e-6)  # ring labels: not scored
    darker = dict(batch, image=torch.where(ring, batch["image"] - 3.0, batch["image"]))
    assert abs(_loss_of(trainer, 0, darker)[0] - base) > 1e-4  # ring image: seen
    inner = batch["labels"].clone()
    crop_centre(inner, CONTEXT)[..., : PATCH[0] // 2, :, :] = 99  # half the patch one object
    assert abs(_loss_of(trainer, 0, dict(batch, labels=inner))[0] - base) > 1e-4  # patch labels: scored


def test_bare_steps_see_the_items_centre_and_the_last_steps_the_context(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, 2)  # steps 2 and 3 of 4 with context
    batch = trainer.batch(0)
    base, seen = _loss_of(trainer, 0, batch)
    assert seen == [(2, 1, 16, 32, 32)]
    ring = _ring(batch["labels"])
    changed = {
        "image": torch.where(ring, batch["image"] - 3.0, batch["image"]),
        "labels": torch.where(ring, torch.full_like(batch["labels"], 99), batch["labels"]),
    }
    assert _loss_of(trainer, 0, changed)[0] == pytest.approx(base, rel=1e-6)  # the ring is not even seen
    assert _loss_of(trainer, 2, trainer.batch(2))[1] == [(2, 1, 24, 48, 48)]
    fewer = _trainer(tmp_path / "fewer", 2, context_batch_size=1)
    assert _loss_of(fewer, 0, batch)[1] == [(2, 1, 16, 32, 32)] and _loss_of(fewer, 2, batch)[1] == [(1, 1, 24, 48, 48)]


def test_a_training_with_context_checkpoints_and_its_package_fits_the_bare_patch(tmp_path: Path) -> None:
    from spoco_zoo.exporters.common import package_geometry
    from spoco_zoo.exporters.options import ExportOptions
    from spoco_zoo.exporters.plan import plan_export
    from spoco_zoo.train.checkpoint import load_checkpoint, save_checkpoint

    trainer = _trainer(tmp_path / "run", 2)
    result = trainer.fit()
    assert result.step == 4 and result.last_checkpoint.is_file()
    state = load_checkpoint(result.last_checkpoint)
    state["halo"] = [16, 16, 16]  # as if the network reached 16 pixels
    save_checkpoint(tmp_path / "reach16.pt", state)
    plan = plan_export(tmp_path / "reach16.pt", tmp_path / "model.zip", ExportOptions())
    # a consumer must run a volume as thin as the training patch unpadded: the halo fits the bare 16-deep patch
    # (2 * 4 + 4 <= 16), not the 24-deep item the context steps saw
    assert plan.geometry.halo == (4, 12, 12)
    assert package_geometry(2, 16, 3, patch_shape=[24, 48, 48]).halo == (8, 16, 16)  # what the grown one would allow


@pytest.mark.parametrize(
    ("context", "message"),
    [([4, 8], "needs 3 values"), ([4, -8, 8], "needs 3 values"), ([2, 8, 8], "a multiple of 4")],
)
def test_the_config_checks_the_context(context: list[int], message: str) -> None:
    data = {"patch_shape": [32, 64, 64], "patch_context": context, "synthetic": {"shape": [64, 128, 128]}}
    with pytest.raises(ValueError, match=message):
        TrainConfig.model_validate({"model": {"spatial_dims": 3, "depth": 3}, "data": data})
    with pytest.raises(ValueError, match="context_steps"):
        TrainConfig.model_validate({"data": {"context_steps": 0}})
    data = {**data, "patch_context": [4, 8, 8], "batch_size": 3, "context_batch_size": 4}
    with pytest.raises(ValueError, match="exceeds data.batch_size 3"):
        TrainConfig.model_validate({"model": {"spatial_dims": 3, "depth": 3}, "data": data})


def test_crop_centre_refuses_a_context_that_leaves_nothing() -> None:
    with pytest.raises(ValueError, match="leaves nothing"):
        crop_centre(torch.zeros(1, 8, 8), (4, 2))


@pytest.mark.parametrize(("context_steps", "best_step"), [(1, 4), (None, 1)])
def test_the_first_checkpoint_after_the_context_steps_began_replaces_an_earlier_best(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, context_steps: int | None, best_step: int
) -> None:
    from spoco_zoo.train.checkpoint import load_checkpoint

    trainer = _trainer(tmp_path, context_steps)
    config = trainer.config.model_copy(update={"val_every": 1})
    config.clustering.tune = False
    trainer = Trainer(config, progress=False)
    monkeypatch.setattr(Trainer, "validate", lambda self: {"sbd": 1.0 - self.step / 10})  # every score lower
    trainer.fit()
    assert int(load_checkpoint(tmp_path / "best.pt")["step"]) == best_step


def test_shifted_patches_overlap_on_the_same_voxels() -> None:
    from spoco_zoo.train.patch_context import shifted_patches

    item = torch.arange(24 * 48 * 48).reshape(24, 48, 48)
    student = crop_centre(item, CONTEXT)
    gen = torch.Generator().manual_seed(0)
    shifts = set()
    for _ in range(200):
        patches = shifted_patches(PATCH, CONTEXT, gen)
        teacher = item[patches.teacher]
        assert tuple(teacher.shape) == tuple(PATCH)
        assert torch.equal(student[patches.in_student], teacher[patches.in_teacher])  # the same voxels
        shifts.add(tuple(t.start - c for t, c in zip(patches.teacher, CONTEXT)))
    assert {s[0] for s in shifts} == set(range(-4, 5)) and {s[2] for s in shifts} == set(range(-8, 9))


def test_the_consistency_term_compares_the_teacher_where_its_window_says() -> None:
    from spoco_zoo.config import LossConfig
    from spoco_zoo.losses.spoco import SpocoLoss

    loss = SpocoLoss(LossConfig(), foreground=False)
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(1, 4, 8, 16, 16, generator=gen)  # every voxel its own embedding
    labels = torch.full((1, 8, 16, 16), -1)
    labels[0, 2:5, 3:9, 3:9] = 1
    window = (slice(1, 8), slice(2, 16), slice(0, 12))
    teacher = student[(slice(None), slice(None), *window)].clone()
    aligned = loss(student, labels, teacher, torch.Generator().manual_seed(1), teacher_window=window)[1]
    assert aligned["consistency"] == pytest.approx(0.0, abs=1e-6)
    moved = (slice(0, 7), slice(2, 16), slice(0, 12))  # one slice off
    assert (
        loss(student, labels, teacher, torch.Generator().manual_seed(1), teacher_window=moved)[1]["consistency"]
        > 0.3  # 0.58
    )


def test_a_shifted_teacher_sees_image_around_the_patch_but_no_labels_there(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, 2, shifted_teacher=True, object_fraction=0.3)  # a consistency term: unlabeled voxels
    batch = trainer.batch(0)
    base, seen = _loss_of(trainer, 0, batch)
    assert seen == [(2, 1, 16, 32, 32)]  # the student: the bare patch
    ring = _ring(batch["labels"])
    relabelled = dict(batch, labels=torch.where(ring, torch.full_like(batch["labels"], 99), batch["labels"]))
    assert _loss_of(trainer, 0, relabelled)[0] == pytest.approx(base, rel=1e-6)  # ring labels: not scored
    darker = dict(batch, image=torch.where(ring, batch["image"] - 3.0, batch["image"]))
    assert abs(_loss_of(trainer, 0, darker)[0] - base) > 1e-5  # ring image: the teacher saw some of it


def test_a_shifted_teacher_needs_bare_steps_with_context() -> None:
    data = {"patch_shape": [32, 64, 64], "shifted_teacher": True, "synthetic": {"shape": [64, 128, 128]}}
    model = {"spatial_dims": 3, "depth": 3}
    with pytest.raises(ValueError, match="shifted_teacher"):
        TrainConfig.model_validate({"model": model, "data": data})
    with pytest.raises(ValueError, match="shifted_teacher"):
        TrainConfig.model_validate({"model": model, "data": {**data, "patch_context": [4, 8, 8]}})
    ok = {**data, "patch_context": [4, 8, 8], "context_steps": 10}
    assert TrainConfig.model_validate({"model": model, "data": ok}).data.shifted_teacher
