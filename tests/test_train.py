"""Trainer: the loss goes down, runs resume exactly, kills lose nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from spoco_zoo.config import TrainConfig
from spoco_zoo.train.checkpoint import load_checkpoint
from spoco_zoo.train.trainer import Trainer, update_teacher
from spoco_zoo.train.validation import predict_whole


def _config(out_dir: Path, **extra: Any) -> TrainConfig:
    raw: dict[str, Any] = {
        "steps": 8,
        "lr": 3e-3,
        "out_dir": str(out_dir),
        "checkpoint_every": 4,
        "val_every": 1000,
        "log_every": 1,
        "model": {"depth": 2, "base_features": 8, "embedding_dim": 8},
        "data": {
            "patch_shape": [64, 64],
            "batch_size": 2,
            "object_fraction": 0.3,
            "synthetic": {"n_train": 4, "n_val": 1, "shape": [96, 96], "n_objects": 12},
        },
    }
    for key, value in extra.items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return TrainConfig.model_validate(raw)


def test_short_training_lowers_loss(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "run", steps=200, **{"loss.consistency_weight": 0.5})
    result = Trainer(cfg, progress=False).fit()
    totals = np.array([h["total"] for h in result.history])
    start, end = totals[:10].mean(), totals[-10:].mean()
    assert result.step == 200
    assert end < 0.6 * start, f"loss did not drop enough: {start:.3f} -> {end:.3f}"
    # best/last checkpoints hold config + weights + normalisation
    state = load_checkpoint(result.last_checkpoint)
    assert state["step"] == 200
    assert state["config"].data.normalization.mode == "percentile"
    assert set(state) >= {"model_state", "teacher_state", "optimizer_state", "rng_state"}
    assert result.best_checkpoint is not None and result.best_checkpoint.exists()


@pytest.mark.parametrize("channels_last", [False, True])
def test_resume_is_exact(tmp_path: Path, channels_last: bool) -> None:
    """Stopping at step 4 and resuming gives bit-identical weights to an uninterrupted run (also with
    the convolutions channels-last: the checkpoint stores contiguous tensors, resuming restores the order)."""
    full = Trainer(_config(tmp_path / "full", channels_last_cpu=channels_last), progress=False)
    full.fit()

    partial_cfg = _config(tmp_path / "partial", channels_last_cpu=channels_last)
    Trainer(partial_cfg, progress=False).fit(max_steps=4)
    saved = load_checkpoint(tmp_path / "partial" / "last.pt")
    assert saved["step"] == 4
    assert all(tensor.is_contiguous() for tensor in saved["model_state"].values())

    resumed = Trainer(partial_cfg, progress=False)
    resumed.setup()
    resumed.restore(tmp_path / "partial" / "last.pt")
    weights = [
        m.weight
        for m in resumed.student.modules()
        if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1 and m.kernel_size[0] > 1
    ]
    assert all(w.is_contiguous(memory_format=torch.channels_last) != w.is_contiguous() for w in weights)
    assert all(w.is_contiguous() != channels_last for w in weights)
    restored_state = resumed.optimizer.state_dict()["state"]
    for key, value in saved["optimizer_state"]["state"].items():
        for name, tensor in value.items():
            assert torch.equal(restored_state[key][name], tensor), f"optimizer state {key}/{name} differs"

    result = Trainer(partial_cfg, progress=False).fit(resume=True)
    assert result.step == 8
    final = load_checkpoint(tmp_path / "partial" / "last.pt")
    for name, tensor in full.student.state_dict().items():
        assert torch.allclose(final["model_state"][name], tensor, atol=1e-6), name
    for name, tensor in full.teacher.state_dict().items():
        assert torch.allclose(final["teacher_state"][name], tensor, atol=1e-6), name


def test_channels_last_cpu_steps_compute_the_same_function(tmp_path: Path) -> None:
    """``channels_last_cpu``: the same initial weights, every convolution's activations channels-last
    during the steps, and the same losses and weights up to float rounding."""
    default = Trainer(_config(tmp_path / "a", device="cpu", **{"loss.consistency_weight": 0.5}), progress=False)
    last = Trainer(
        _config(tmp_path / "b", device="cpu", channels_last_cpu=True, **{"loss.consistency_weight": 0.5}),
        progress=False,
    )
    default.setup(), last.setup()
    for (name, a), b in zip(default.student.state_dict().items(), last.student.state_dict().values()):
        assert torch.equal(a, b), name
    layouts: list[bool] = []  # whether each convolution's output is channels-last

    def record(module: torch.nn.Module, _inputs: Any, out: Any) -> None:
        # (a one-channel input's weights are in both orders: the first convolution's output stays as it is)
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and module.in_channels > 1:
            layouts.append(out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous())

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        terms_default = [default.train_step(step) for step in range(3)]
        assert layouts and not any(layouts)
        layouts.clear()
        terms_last = [last.train_step(step) for step in range(3)]
        assert layouts and all(layouts)
    finally:
        handle.remove()
    for a, b in zip(terms_default, terms_last):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-5), key
    # (AdamW turns rounding in a near-zero gradient into a step of up to lr = 3e-3: weights agree to 1e-3)
    for (name, a), b in zip(default.student.state_dict().items(), last.student.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-3), name
    # validation predicts contiguous embeddings, as with the default order
    image = last.val_samples[0][0]
    embeddings = predict_whole(last.student, image, last.device)
    assert embeddings.is_contiguous()
    assert torch.allclose(embeddings, predict_whole(default.student, image, default.device), atol=1e-3)


def test_interrupt_saves_last_checkpoint(tmp_path: Path) -> None:
    def stop(step: int, terms: dict[str, float]) -> None:
        if step == 3:
            raise KeyboardInterrupt

    result = Trainer(_config(tmp_path / "run"), progress=False, on_step=stop).fit()
    assert result.interrupted
    assert load_checkpoint(result.last_checkpoint)["step"] == 3
    resumed = Trainer(_config(tmp_path / "run"), progress=False).fit(resume=True)
    assert resumed.step == 8


def test_request_stop_from_another_thread_keeps_the_checkpoint(tmp_path: Path) -> None:
    """The GUI's Stop button: request_stop() from another thread ends the run after the current step."""
    import threading

    reached = threading.Event()
    trainer = Trainer(_config(tmp_path / "run", steps=50), progress=False, on_step=lambda s, t: reached.set())

    def stop_soon() -> None:
        reached.wait(60)
        trainer.request_stop()

    stopper = threading.Thread(target=stop_soon)
    stopper.start()
    result = trainer.fit()
    stopper.join()
    assert result.interrupted
    assert 1 <= result.step < 50
    assert load_checkpoint(result.last_checkpoint)["step"] == result.step


def test_existing_run_needs_resume_flag(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "run", steps=2)
    Trainer(cfg, progress=False).fit()
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(cfg, progress=False).fit()
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        Trainer(_config(tmp_path / "other"), progress=False).fit(resume=True)


def test_sigkill_leaves_a_loadable_checkpoint_and_resume_finishes(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "spoco_zoo.cli.main",
        "train",
        "--no-progress",
        "--out",
        str(out),
        "--steps",
        "400",
        "--set",
        "checkpoint_every=1",
        "--set",
        "val_every=1000",
        "--set",
        "model.depth=2",
        "--set",
        "model.base_features=4",
        "--set",
        "data.patch_shape=[32,32]",
        "--set",
        "data.batch_size=1",
        "--set",
        "data.synthetic.n_train=2",
        "--set",
        "data.synthetic.n_val=1",
        "--set",
        "data.synthetic.shape=[64,64]",
        "--set",
        "data.synthetic.n_objects=8",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "last.pt").exists():
            time.sleep(0.2)
        assert (out / "last.pt").exists(), proc.stdout.read().decode() if proc.poll() is not None else "no checkpoint"
        time.sleep(1.0)  # let it write several more checkpoints, then kill mid-run
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    state = load_checkpoint(out / "last.pt")  # never half-written
    step = state["step"]
    assert 1 <= step < 400

    cfg = TrainConfig.model_validate(state["config"].to_dict() | {"steps": step + 2})
    result = Trainer(cfg, progress=False).fit(resume=True)
    assert result.step == step + 2


def test_update_teacher_is_exponential_moving_average() -> None:
    student, teacher = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        student.weight.fill_(1.0)
        teacher.weight.fill_(0.0)
    update_teacher(teacher, student, momentum=0.9)
    assert torch.allclose(teacher.weight, torch.full((2, 2), 0.1))


def test_amp_cpu_trains_in_bfloat16_and_validates_in_float32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spoco_zoo.train import acceleration

    monkeypatch.setattr(acceleration, "cpu_computes_bfloat16", lambda: True)
    cfg = _config(tmp_path / "run", steps=120, amp_cpu=True, device="cpu", **{"loss.consistency_weight": 0.5})
    trainer = Trainer(cfg, progress=False)
    assert trainer.amp_dtype == torch.bfloat16 and trainer.predict_dtype is None
    seen: list[tuple[bool, torch.dtype]] = []  # (gradients on, output dtype) of every convolution

    def record(module: torch.nn.Module, _inputs: Any, out: Any) -> None:
        if isinstance(module, torch.nn.Conv2d):
            seen.append((torch.is_grad_enabled(), out.dtype))

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        result = trainer.fit()
        totals = np.array([h["total"] for h in result.history])
        assert np.isfinite(totals).all()
        assert totals[-10:].mean() < 0.7 * totals[:10].mean(), f"bfloat16 steps did not learn: {totals[:10].mean():.3f}"
        assert {dtype for grad, dtype in seen if grad} == {torch.bfloat16}  # the student's steps
        seen.clear()
        scores = trainer.validate()
    finally:
        handle.remove()
    assert "sbd" in scores and {dtype for _, dtype in seen} == {torch.float32}  # validation predicts as segment does


def test_amp_cpu_is_float32_without_native_bfloat16(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spoco_zoo.train import acceleration

    monkeypatch.setattr(acceleration, "cpu_computes_bfloat16", lambda: False)
    trainer = Trainer(_config(tmp_path / "run", amp_cpu=True, device="cpu"), progress=False)
    assert trainer.amp_dtype is None and not trainer.use_amp
    # and off unless asked, whatever the CPU
    monkeypatch.setattr(acceleration, "cpu_computes_bfloat16", lambda: True)
    assert Trainer(_config(tmp_path / "run2", device="cpu"), progress=False).amp_dtype is None
