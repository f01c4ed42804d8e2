"""One run per output folder: a second run fails at once, a killed run's lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_training import tiny_train_sets
from typer.testing import CliRunner

from spoco_zoo.cli.main import app
from spoco_zoo.errors import LockError
from spoco_zoo.runlock import LOCK_NAME, RunLock

runner = CliRunner()
TINY_SETS = tiny_train_sets(n_train=2)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_lock(folder: Path, pid: int, host: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    path.write_text(json.dumps({"pid": pid, "host": host, "started": "2026-01-01T00:00:00", "command": "old run"}))
    return path


def test_second_lock_is_refused_and_release_removes_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with RunLock(folder) as first:
        assert first.took_over is None
        owner = json.loads((folder / LOCK_NAME).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(LockError, match=rf"another run uses this output folder \(.*pid {os.getpid()} on host"):
            RunLock(folder).acquire()
    assert not (folder / LOCK_NAME).exists()
    with RunLock(folder):  # free again
        pass


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = _dead_pid()
    _write_lock(tmp_path, dead, socket.gethostname())
    with RunLock(tmp_path) as lock:
        assert lock.took_over is not None and lock.took_over.pid == dead
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_locks_that_cannot_be_proven_stale_are_kept(tmp_path: Path) -> None:
    other_host = _write_lock(tmp_path / "a", 12345, socket.gethostname() + "-elsewhere")
    with pytest.raises(LockError, match="cannot check a process on another host"):
        RunLock(tmp_path / "a").acquire()
    assert other_host.exists()  # untouched
    # a live process of this host that (somehow) holds no flock: refused too
    _write_lock(tmp_path / "b", os.getppid(), socket.gethostname())
    with pytest.raises(LockError, match=f"pid {os.getppid()}"):
        RunLock(tmp_path / "b").acquire()


def test_train_into_a_locked_folder_fails_at_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with RunLock(out):
        started = time.perf_counter()
        result = runner.invoke(app, ["train", "--out", str(out), "--steps", "2", "--no-progress", *TINY_SETS])
        elapsed = time.perf_counter() - started
    assert result.exit_code == 1, result.output
    assert "another run uses this output folder" in result.stderr and f"pid {os.getpid()}" in result.stderr
    assert "Traceback" not in result.output and elapsed < 5.0
    assert sorted(p.name for p in out.iterdir()) == []  # nothing written, lock released


def test_two_real_trainings_one_folder(tmp_path: Path) -> None:
    """The second process fails at once naming the first; SIGTERM/kill leave a lock that is taken over."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "spoco_zoo.cli.main", "train", "--no-progress", "--out", str(out)]
    first = subprocess.Popen(
        [*cmd, "--steps", "100000", *TINY_SETS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.time() + 120
        while not (out / "last.pt").exists():
            assert first.poll() is None, first.communicate()
            assert time.time() < deadline, "first run wrote no checkpoint"
            time.sleep(0.2)
        second = subprocess.run([*cmd, "--steps", "2", *TINY_SETS], capture_output=True, text=True, timeout=120)
        assert second.returncode == 1, second.stderr
        assert f"pid {first.pid}" in second.stderr and "another run uses this output folder" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == first.pid  # left behind by the killed run
    resumed = subprocess.run([*cmd, "--resume", "--steps", "3", *TINY_SETS], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert not (out / LOCK_NAME).exists()
