"""Every command on bad input or a hostile file system: one line naming the path or option, exit 1 or 2.

No traceback, nothing already written lost. Read-only folders are real (``chmod 555``) and, since
root ignores permissions, also simulated: writes under them raise ``PermissionError`` as the
kernel would. A full disk is simulated by a writer that fails half-way with ``ENOSPC``.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from tiny_training import tiny_train_sets
from typer.testing import CliRunner

from spoco_zoo.atomic import atomic_path
from spoco_zoo.cli.main import app

RUN_FILES = ["best.pt", "config.yaml", "last.pt", "metrics.csv", "training_curves.png"]  # what a finished run leaves

runner = CliRunner()
TINY_SETS = tiny_train_sets()


class ReadOnlyFolder:
    """``root`` made read-only: ``chmod 555`` plus write primitives that refuse paths under it."""

    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def __init__(self, root: Path, mp: pytest.MonkeyPatch) -> None:
        self.root = root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o555)
        real_open, real_os_open = builtins.open, os.open
        real = {name: getattr(os, name) for name in ("mkdir", "replace", "rename", "unlink", "remove", "rmdir")}

        def deny(path: Any) -> None:
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))

        def checked_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+") and self.inside(file):
                deny(file)
            return real_open(file, mode, *args, **kwargs)

        def checked_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & self._WRITE_FLAGS and self.inside(path):
                deny(path)
            return real_os_open(path, flags, *args, **kwargs)

        def guard(name: str, index: int) -> Callable[..., Any]:
            def checked(*args: Any, **kwargs: Any) -> Any:
                if self.inside(args[index]):
                    deny(args[index])
                return real[name](*args, **kwargs)

            return checked

        mp.setattr(builtins, "open", checked_open)
        mp.setattr(io, "open", checked_open)
        mp.setattr(os, "open", checked_os_open)
        for name, index in (("mkdir", 0), ("replace", 1), ("rename", 1), ("unlink", 0), ("remove", 0), ("rmdir", 0)):
            mp.setattr(os, name, guard(name, index))

    def inside(self, path: Any) -> bool:
        try:
            resolved = Path(os.path.abspath(os.fsdecode(path)))
        except (TypeError, ValueError):
            return False
        return resolved == self.root or self.root in resolved.parents


@pytest.fixture
def read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "read_only"
    ReadOnlyFolder(folder, monkeypatch)
    yield folder
    folder.chmod(0o755)


@dataclass
class World:
    """Files the cases point at."""

    tmp: Path
    checkpoint: Path
    image: Path
    a_file: Path
    a_folder: Path
    pred: Path
    gt: Path
    read_only: Path


@pytest.fixture
def world(tmp_path: Path, random_checkpoint_2d: Path, read_only: Path) -> World:
    image = tmp_path / "image.tif"
    tifffile.imwrite(image, np.random.default_rng(0).random((64, 64)).astype(np.float32))
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("precious")
    a_folder = tmp_path / "a_folder"
    a_folder.mkdir()
    (a_folder / "keep.txt").write_text("precious")
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    for folder in (pred, gt):
        folder.mkdir()
        labels = np.zeros((16, 16), np.uint16)
        labels[2:8, 2:8] = 1
        tifffile.imwrite(folder / "a.tif", labels)
    return World(tmp_path, random_checkpoint_2d, image, a_file, a_folder, pred, gt, read_only)


#: (id, command line, exit code, text in stderr); {tmp}, {ckpt}, {image}, {file}, {folder}, {pred}, {gt}, {ro}
#: stand for the files of :class:`World` ({ro}: a read-only folder, {file}: a file where a folder is expected).
CASES: list[tuple[str, str, int, str]] = [
    ("train-set-not-yaml", "train --set data.patch_shape=[64,64", 2, "[64,64"),
    ("train-set-unknown-key", "train --set data.nope=1", 2, "'nope'"),
    ("train-device", "train --out {tmp}/r --device banana", 1, "banana"),
    ("train-out-is-a-file", "train --out {file} TINY", 1, "{file}"),
    ("train-out-under-a-file", "train --out {file}/run", 1, "is a file"),
    ("train-config-is-a-folder", "train --config {folder}", 2, "{folder}"),
    ("train-config-missing", "train --config {tmp}/no.yaml", 2, "no.yaml"),
    ("train-images-missing", "train --images {tmp}/no.tif", 2, "no.tif"),
    ("train-read-only", "train --out {ro} TINY", 1, "{ro}/.spoco-zoo.lock: permission denied"),
    ("train-steps", "train --steps 0", 2, "steps"),
    ("export-missing", "export {tmp}/no.pt -o {tmp}/m.zip", 2, "no.pt"),
    ("export-not-zip", "export {ckpt} -o {tmp}/m.txt", 2, "m.txt"),
    ("export-output-folder", "export {ckpt} -o {tmp}/d.zip", 2, "is a folder"),
    ("export-formats", "export {ckpt} -o {tmp}/m.zip --formats x", 2, "'x'"),
    ("export-ingraph", "export {ckpt} -o {tmp}/m.zip --ingraph a=[1", 2, "a=[1"),
    ("export-read-only", "export {ckpt} -o {ro}/m.zip", 2, "permission denied"),
    ("export-checkpoint-is-a-folder", "export {folder} -o {tmp}/m.zip", 2, "{folder}"),
    ("validate-missing", "validate {tmp}/no.zip", 2, "no.zip"),
    ("validate-not-a-zip", "validate {file}", 1, "{file}: not a zip file"),
    ("validate-folder", "validate {folder}", 1, "{folder}: is a folder"),
    ("validate-formats", "validate {file} --formats x", 2, "--formats: unknown weight format(s) 'x'"),
    ("segment-device", "segment {image} -c {ckpt} -o {tmp}/o --device banana", 2, "banana"),
    ("segment-output-is-a-file", "segment {image} -c {ckpt} -o {file}", 1, "{file}"),
    ("segment-read-only", "segment {image} -c {ckpt} -o {ro}/s", 1, "permission denied"),
    ("segment-input-missing", "segment {tmp}/no.tif -c {ckpt} -o {tmp}/o", 1, "no.tif"),
    ("segment-input-folder-empty", "segment {folder} -c {ckpt} -o {tmp}/o", 1, "{folder}"),
    ("segment-halo", "segment {image} -c {ckpt} -o {tmp}/o --halo x", 2, "--halo"),
    ("segment-param", "segment {image} -c {ckpt} -o {tmp}/o -p a=[1", 2, "a=[1"),
    ("segment-weight-format", "segment {image} -m {file} -o {tmp}/o --weight-format x", 2, "--weight-format"),
    ("segment-model-not-a-package", "segment {image} -m {file} -o {tmp}/o", 1, "{file}: not a zip file"),
    ("evaluate-csv-folder", "evaluate {pred} {gt} --csv {folder}", 1, "--csv {folder}: is a folder"),
    ("evaluate-json-folder", "evaluate {pred} {gt} --json {folder}", 1, "--json {folder}: is a folder"),
    ("evaluate-pred-is-a-file", "evaluate {file} {gt}", 1, "PRED_DIR"),
    ("evaluate-csv-read-only", "evaluate {pred} {gt} --csv {ro}/s.csv", 1, "{ro}/s.csv: permission denied"),
    ("evaluate-csv-under-a-file", "evaluate {pred} {gt} --csv {file}/s.csv", 1, "{file}: already exists (a file"),
    ("synthetic-shape", "synthetic {tmp}/s --shape 2 --shape 2", 1, "shape"),
    ("synthetic-object-fraction", "synthetic {tmp}/s --object-fraction 2", 1, "object_fraction"),
    ("synthetic-n", "synthetic {tmp}/s --n 0", 2, "--n"),
    ("synthetic-out-is-a-file", "synthetic {file} --n 1 --shape 16 --shape 16", 1, "{file}"),
    ("synthetic-read-only", "synthetic {ro}/s --n 1 --shape 16 --shape 16", 1, "permission denied"),
]


def _fill(text: str, w: World) -> str:
    names = {"tmp": w.tmp, "ckpt": w.checkpoint, "image": w.image, "file": w.a_file, "folder": w.a_folder}
    names.update(pred=w.pred, gt=w.gt, ro=w.read_only)
    return text.format(**{key: str(value) for key, value in names.items()})


def _flat(text: str) -> str:
    """Output without rich's box drawing and line wrapping."""
    return " ".join(text.translate({ord(c): " " for c in "│╭╮╰╯─"}).split())


@pytest.mark.parametrize(("command", "code", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_commands_report_bad_input_in_one_line(world: World, command: str, code: int, expected: str) -> None:
    (world.tmp / "d.zip").mkdir()
    argv = [arg for word in command.split() for arg in (TINY_SETS if word == "TINY" else [_fill(word, world)])]
    before = {p: p.read_bytes() for p in world.tmp.rglob("*") if p.is_file() and not p.is_relative_to(world.read_only)}
    result = runner.invoke(app, argv, terminal_width=300)
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert _fill(expected, world).lower() in _flat(result.stderr).lower(), result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    if errors:  # ours (usage errors are typer's box)
        assert len(errors) == 1 and len(errors[0]) < 600, result.stderr
    after = {p: p.read_bytes() for p in before if p.exists()}
    assert after == before  # nothing that existed was changed or removed
    assert not list(world.read_only.iterdir())


def test_every_command_is_covered() -> None:
    commands = {c[0].split("-")[0] for c in CASES}
    assert commands == {"train", "export", "validate", "segment", "evaluate", "synthetic"}


def _full_disk(path: str | Path, data: bytes) -> Path:
    """An atomic write that fails half-way with ENOSPC (what a full disk does)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    return Path(path)  # pragma: no cover


def test_full_disk_during_training_keeps_the_last_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    first = runner.invoke(app, ["train", "--out", str(out), "--steps", "2", "--no-progress", *TINY_SETS])
    assert first.exit_code == 0, first.output
    saved = {name: (out / name).read_bytes() for name in ("last.pt", "best.pt")}  # config.yaml: --steps changes

    monkeypatch.setattr("spoco_zoo.train.checkpoint.atomic_write_bytes", _full_disk)
    result = runner.invoke(app, ["train", "--out", str(out), "--steps", "4", "--resume", "--no-progress", *TINY_SETS])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.stderr == f"error: {out / 'last.pt'}: no space left on the device\n"
    assert {name: (out / name).read_bytes() for name in saved} == saved
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES  # no temp or lock file


@pytest.mark.parametrize(
    ("argv", "code", "expected"),
    [
        (["train", "--set", "data.patch_shape=[64,64"], 2, "data.patch_shape=[64,64"),
        (["synthetic", "OUT", "--shape", "2", "--shape", "2"], 1, "every extent of [2, 2] must be at least 4"),
        (["train", "--out", "OUT", "--device", "banana"], 1, "device: cannot use 'banana'"),
    ],
    ids=["set", "shape", "device"],
)
def test_real_processes_print_no_traceback(tmp_path: Path, argv: list[str], code: int, expected: str) -> None:
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    done = subprocess.run([sys.executable, "-m", "spoco_zoo.cli.main", *argv], capture_output=True, text=True)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and expected in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert not (tmp_path / "out").exists()
