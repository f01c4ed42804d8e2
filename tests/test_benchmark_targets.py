"""`benchmarks/accuracy.py`'s judgements: which call is the timed whole 3D row, and issue 20's targets."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def accuracy() -> ModuleType:
    """The benchmark script as a module (it is a script, not part of the package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy.py"
    spec = importlib.util.spec_from_file_location("accuracy_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def whole_row(accuracy: ModuleType, argv: list[str]) -> bool:
    args = accuracy.build_parser().parse_args(argv)
    names = args.runs.split(",")
    return accuracy.whole_row([r for r in accuracy.RUNS if r.name in names], args)


@pytest.mark.parametrize(
    ("extra", "timed"),
    [
        ([], True),
        (["--steps", "750"], False),
        (["--reuse"], False),
        (["--seeds", "3"], False),
        (["--set", "model.base_features=8"], False),
        (["--max-size-3d", "256"], False),
        (["--no-sizes-3d"], False),
        (["--preset", "gpu"], False),
    ],
)
def test_only_the_preset_trained_here_on_every_size_is_the_timed_row(
    accuracy: ModuleType, extra: list[str], timed: bool
) -> None:
    """The 20-minute target is judged on one 3D run trained on the CPU preset as it is, with every size row;
    a call that changes the training or leaves out a size row times something else."""
    assert whole_row(accuracy, ["--runs", "3d-0.1", "--no-large", *extra]) is timed
    assert not whole_row(accuracy, ["--runs", "3d-0.1,3d-z3-0.1", "--no-large", *extra])
    assert not whole_row(accuracy, ["--runs", "2d-0.1", "--no-large", *extra])


def test_targets_are_judged_on_the_printed_figures(accuracy: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    rows = {
        "3d-0.1": {"data": "3D crowded", "seeds": [{}, {}, {}], "sbd": 0.88, "map": 0.62},
        "3d-1.0": {"data": "3D crowded", "seeds": [{}, {}, {}], "sbd": 0.95, "map": 0.85},
        "3d-z3-0.1": {"data": "3D crowded z3", "seeds": [{}], "sbd": 0.80, "map": 0.08},
        "3d-z3-1.0": {"data": "3D crowded z3", "seeds": [{}], "sbd": 0.91, "map": 0.66},
    }
    classical = {"3D crowded": {"sbd": 0.605, "map": 0.136}, "3D crowded z3": {"sbd": 0.571, "map": 0.095}}
    sizes = [
        {"run": "3d-0.1", "small_sbd": 0.88, "sbd": 0.87},
        {"run": "3d-0.1", "small_sbd": 0.88, "sbd": 0.84},
        {"run": "3d-z3-0.1", "small_sbd": 0.80, "sbd": 0.74},
    ]
    accuracy.print_targets(rows, classical, sizes)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "targets 3d: means over 3 trainings per run",
        "target 3d 10 % beats classical (SBD 0.880 vs 0.605, mAP 0.620 vs 0.136): met",
        "target 3d sparse/dense SBD >= 0.9 (0.926): met",
        "target 3d larger volumes within 0.05 SBD (worst +0.040 over 2 sizes): met",
        # SBD above the classical pipeline's, mAP below: both must be above
        "target 3d-z3 10 % beats classical (SBD 0.800 vs 0.571, mAP 0.080 vs 0.095): NOT met",
        "target 3d-z3 sparse/dense SBD >= 0.9 (0.879): NOT met",
        "target 3d-z3 larger volumes within 0.05 SBD (worst +0.060 over 1 sizes): NOT met",
    ]
