"""The command line's allocator setting: freed arrays are reused, not mapped and zero-filled anew."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


def test_the_command_line_entry_point_keeps_freed_memory() -> None:
    """``spoco-zoo`` (the script) calls ``main``, which sets the allocator before the command runs."""
    from importlib.metadata import entry_points

    scripts = {e.value for e in entry_points(group="console_scripts") if e.name == "spoco-zoo"}
    assert scripts == {"spoco_zoo.cli.main:main"}


def test_other_platforms_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
