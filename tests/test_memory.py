"""The command line's allocator setting: freed arrays are reused, not mapped and zero-filled anew."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tifffile

from spoco_zoo.data.synthetic import make_synthetic_sample
from spoco_zoo.errors import DataError
from spoco_zoo.memory import keep_freed_memory

# allocates and frees a 64 MiB tensor 20 times; prints the page faults of the loop (after ten to settle)
_ALLOCATE = """
import resource, sys
import torch
from spoco_zoo.memory import keep_freed_memory
changed = keep_freed_memory() if sys.argv[1] == "keep" else False
for _ in range(10):  # the heap settles (its first blocks are placed among small ones)
    torch.ones(1 << 23, dtype=torch.float64).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    torch.ones(1 << 23, dtype=torch.float64).sum()  # 8 Mi float64, as PyTorch allocates activations
print(changed, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[bool, int]:
    done = subprocess.run([sys.executable, "-c", _ALLOCATE, mode], capture_output=True, text=True, check=True)
    changed, faults = done.stdout.split()
    return changed == "True", int(faults)


def test_freed_memory_is_reused_without_page_faults() -> None:
    changed, kept = _faults("keep")
    if not changed:
        pytest.skip("not glibc: the allocator is left as it is")
    _, default = _faults("default")
    # glibc maps each 64 MiB block anew: 16 Ki pages of 4 KiB faulted in per allocation
    assert default > 20 * 10_000
    assert kept < default / 50


def test_train_and_blockwise_segment_keep_freed_memory(
    random_checkpoint_3d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``train`` sets the allocator before its steps and ``segment --blockwise`` before its blocks; the
    whole-image ``segment`` does not (its arrays come once each: kept memory would only raise its peak)."""
    from typer.testing import CliRunner

    from spoco_zoo.cli.main import app

    calls: list[str] = []

    def record(name: str, result: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            if isinstance(result, Exception):
                raise result
            return result

        return call

    monkeypatch.setattr("spoco_zoo.memory.keep_freed_memory", record("keep", True))  # the process stays as it is
    monkeypatch.setattr("spoco_zoo.train.trainer.Trainer.fit", record("fit", DataError("stopped by the test")))
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "run"), "--steps", "1", "--no-progress"])
    assert result.exit_code == 1 and "stopped by the test" in result.output
    assert calls == ["keep", "fit"]

    calls.clear()
    monkeypatch.setattr("spoco_zoo.blockwise.run.segment_files", record("blocks", 0))
    monkeypatch.setattr("spoco_zoo.segmentation.segment_with_checkpoint", record("whole", DataError("whole")))
    image, _ = make_synthetic_sample((16, 40, 48), 8, seed=0)
    tifffile.imwrite(tmp_path / "vol.tif", image)
    common = [str(tmp_path / "vol.tif"), "--checkpoint", str(random_checkpoint_3d), "--device", "cpu", "--no-progress"]
    result = runner.invoke(app, ["segment", *common, "--output", str(tmp_path / "b"), "--blockwise"])
    assert result.exit_code == 0, result.output
    assert calls == ["keep", "blocks"]
    calls.clear()
    result = runner.invoke(app, ["segment", *common, "--output", str(tmp_path / "w")])
    assert calls == ["whole"]


def test_other_platforms_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
