"""Checkpoints never run code when opened: weights_only reads, crafted pickles refused, old files still read."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_training import tiny_train_sets
from typer.testing import CliRunner

from spoco_zoo.cli.main import app
from spoco_zoo.config import TrainConfig
from spoco_zoo.errors import CheckpointError
from spoco_zoo.train.checkpoint import FORMAT, build_model, load_checkpoint, load_model, save_checkpoint

runner = CliRunner()

TINY = {
    "steps": 2,
    "checkpoint_every": 1,
    "val_every": 1000,
    "model": {"depth": 2, "base_features": 4, "embedding_dim": 4},
    "data": {
        "patch_shape": [32, 32],
        "batch_size": 1,
        "synthetic": {"n_train": 1, "n_val": 1, "shape": [64, 64], "n_objects": 6},
    },
}
TINY_SETS = tiny_train_sets("model.embedding_dim=4")


class _Payload:
    """Unpickling this object runs ``exec``: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def _crafted(path: Path, marker: Path) -> Path:
    """A checkpoint that is valid in every respect except the hidden payload in ``metrics``."""
    config = TrainConfig.model_validate(TINY)
    weights = build_model(config).state_dict()
    torch.save(
        {
            "format": FORMAT,
            "version": 2,
            "config": config.to_dict(),
            "step": 1,
            "model_state": weights,
            "teacher_state": weights,
            "metrics": {"sbd": _Payload(marker)},
        },
        path,
    )
    return path


def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    path = _crafted(tmp_path / "evil.pt", marker)
    # the payload is real: an unsafe load runs it
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"
    marker.unlink()

    with pytest.raises(CheckpointError, match="refused") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "builtins.exec" in str(info.value)
    with pytest.raises(CheckpointError, match="refused"):
        load_model(path)
    assert not marker.exists()


def _cli_args(command: str, checkpoint: Path, tmp_path: Path) -> list[str]:
    if command == "export":
        return ["export", str(checkpoint), "--output", str(tmp_path / "model.zip"), "--no-validate"]
    if command == "segment":
        image = tmp_path / "image.tif"
        import tifffile

        tifffile.imwrite(image, np.random.default_rng(0).random((32, 32)).astype(np.float32))
        return ["segment", str(image), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "seg"), "--no-progress"]
    out = checkpoint.parent
    return ["train", "--out", str(out), "--resume", "--steps", "2", "--no-progress", *TINY_SETS]


@pytest.mark.parametrize(("command", "code"), [("export", 2), ("segment", 1), ("train", 1)])
def test_commands_refuse_a_crafted_checkpoint(tmp_path: Path, command: str, code: int) -> None:
    marker = tmp_path / "marker.txt"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    checkpoint = _crafted(run_dir / "last.pt", marker)
    result = runner.invoke(app, _cli_args(command, checkpoint, tmp_path))
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # reported, not raised
    assert "Traceback" not in result.output
    assert str(checkpoint) in result.stderr and "refused" in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "model.zip").exists() and not (tmp_path / "seg").exists()


def test_saved_checkpoints_need_no_allow_list(tmp_path: Path) -> None:
    """What save_checkpoint writes loads with plain weights_only=True; numpy's RNG state round-trips."""
    config = TrainConfig.model_validate(TINY)
    model = build_model(config)
    rng = np.random.RandomState(5)
    rng.random_sample(7)  # a state in the middle of the key
    state = rng.get_state()
    save_checkpoint(
        tmp_path / "c.pt",
        {
            "config": config,
            "step": np.int64(3),
            "model_state": model.state_dict(),
            "rng_state": {"torch": torch.get_rng_state(), "numpy": state},
            "history": [{"total": np.float32(0.25)}],
        },
    )
    raw = torch.load(tmp_path / "c.pt", weights_only=True)  # no allow-list at all
    assert raw["version"] == 2 and raw["step"] == 3 and raw["history"] == [{"total": 0.25}]
    loaded = load_checkpoint(tmp_path / "c.pt")
    restored = np.random.RandomState()
    restored.set_state(loaded["rng_state"]["numpy"])
    assert np.array_equal(restored.random_sample(5), rng.random_sample(5))
    assert loaded["config"] == config


def test_save_refuses_objects_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint\.metrics\.extra: cannot store a Payload"):
        save_checkpoint(tmp_path / "c.pt", {"config": {}, "step": 0, "metrics": {"extra": type("Payload", (), {})()}})
    assert list(tmp_path.iterdir()) == []


def test_version_1_checkpoints_still_load(tmp_path: Path) -> None:
    """Files of spoco-zoo 0.1 pickled numpy's RNG state as numpy arrays; they load, and resume exactly."""
    config = TrainConfig.model_validate(TINY)
    model = build_model(config)
    rng = np.random.RandomState(11)
    rng.random_sample(3)
    legacy = {
        "format": FORMAT,
        "version": 1,
        "config": config.to_dict(),
        "step": 4,
        "model_state": model.state_dict(),
        "teacher_state": model.state_dict(),
        "rng_state": {"torch": torch.get_rng_state(), "numpy": rng.get_state()},
    }
    buffer = io.BytesIO()
    torch.save(legacy, buffer)
    path = tmp_path / "old.pt"
    path.write_bytes(buffer.getvalue())
    assert "numpy.ndarray" in torch.serialization.get_unsafe_globals_in_checkpoint(str(path))

    loaded = load_checkpoint(path)
    assert loaded["step"] == 4 and loaded["version"] == 1
    restored = np.random.RandomState()
    restored.set_state(loaded["rng_state"]["numpy"])
    assert np.array_equal(restored.random_sample(4), rng.random_sample(4))
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded["model_state"][name], tensor)


def test_corrupt_and_foreign_files_name_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(CheckpointError, match="garbage.pt: cannot read checkpoint"):
        load_checkpoint(garbage)
    plain = tmp_path / "weights_only.pt"
    torch.save({"w": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="weights_only.pt: not a spoco-zoo checkpoint"):
        load_checkpoint(plain)
    bad_weights = tmp_path / "bad_weights.pt"
    torch.save({"format": FORMAT, "version": 2, "config": {}, "step": 0, "model_state": [1, 2]}, bad_weights)
    with pytest.raises(CheckpointError, match="model_state is not a mapping"):
        load_checkpoint(bad_weights)
