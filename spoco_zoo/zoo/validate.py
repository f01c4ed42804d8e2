"""Validate a package the way the model zoo does, one weight format at a time.

0. **the file**: a zip with ``rdf.yaml`` and safe member names
   (:func:`spoco_zoo.zoo.trust.check_package_file`; anything else raises ``PackageError``).
1. **rdf**: ``bioimageio.spec.load_description(package, perform_io_checks=True)``
   (format, file hashes, test tensors against the declared axes).
2. **each weight format**: ``bioimageio.core.test_model(package, weight_format=...)``
   (reproduce the test outputs from the test input with the package's own
   preprocessing, within ``config.bioimageio.reproducibility_tolerance``; then run
   batch sizes 1 and 2 at three valid sizes), plus our own measurement of the
   largest error on the test tensors (max abs difference of ``embeddings``,
   mismatched ``instances`` pixels).

No Python from the package runs (:mod:`spoco_zoo.zoo.trust`): ``pytorch_state_dict`` is tested
with the installed spoco-zoo architecture when the package's source is byte for byte ours, and a
format that would run other code is a failed row, unless ``trust_package_code`` is set.

Offline: nothing here needs the network. ``bioimageio.core`` always validates with
``perform_io_checks=True`` (it overrides ``BIOIMAGEIO_PERFORM_IO_CHECKS``), which
probes every http(s) URL in the description (``bioimageio.spec.settings.http_timeout``
seconds each; a failure is a warning) and looks up every ``github_user`` at
api.github.com (a failure is an *error*). spoco-zoo packages contain neither
(citations are DOIs, authors are names, no ``git_repo``/``maintainers``), so
validation makes no requests -- the tests run it with sockets disabled.
Packages from elsewhere may need ``BIOIMAGEIO_HTTP_TIMEOUT=1`` when offline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from spoco_zoo.zoo.formats import WEIGHT_FORMATS, parse_formats
from spoco_zoo.zoo.trust import SAFE_FORMATS, TRUST_HINT, check_package_file, package_code, safe_description

__all__ = ["CheckResult", "ValidationReport", "validate_package", "validation_table"]


@dataclass
class CheckResult:
    """One row of the validation table.

    Attributes
    ----------
    name:
        ``"rdf"`` or a weight format.
    passed:
        Whether the check passed.
    errors:
        Largest error per output on the test tensors: ``embeddings`` max abs difference,
        ``instances`` mismatched pixels per million. Empty for the ``rdf`` row.
    message:
        Short reason (first error) or a summary.
    seconds:
        Time taken.
    """

    name: str
    passed: bool
    errors: dict[str, float] = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0

    def error_text(self) -> str:
        parts = []
        for key, value in self.errors.items():
            parts.append(f"{key} {value:.0f} ppm" if key == "instances" else f"{key} {value:.2e}")
        return ", ".join(parts) or "-"


@dataclass
class ValidationReport:
    """All checks of one package; :attr:`passed` when every row passed."""

    package: Path
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def get(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)


def _summary_errors(summary: Any, limit: int = 2) -> list[str]:
    msgs: list[str] = []
    for detail in getattr(summary, "details", []):
        for err in getattr(detail, "errors", []):
            loc = ".".join(str(p) for p in getattr(err, "loc", ()) if p != "weights")
            text = " ".join(str(getattr(err, "msg", err)).split())
            msgs.append(f"{detail.name}: {loc + ': ' if loc else ''}{text}")
    return msgs[:limit]


def _measure(descr: Any, weight_format: str, devices: Sequence[str] | None) -> dict[str, float]:
    # weight-format names are checked by bioimageio.core itself; its signature wants a Literal
    """Largest deviation of the reproduced test outputs from the packaged ones."""
    from bioimageio.core import create_prediction_pipeline
    from bioimageio.core.digest_spec import get_test_input_sample, get_test_output_sample

    sample = get_test_input_sample(descr)
    expected = get_test_output_sample(descr)
    with create_prediction_pipeline(descr, weight_format=cast(Any, weight_format), devices=devices) as pp:
        out = pp.predict_sample_without_blocking(sample, skip_input_padding=True, skip_output_cropping=True)
    errors: dict[str, float] = {}
    for member, tensor in expected.members.items():
        got = out.members.get(member)
        if got is None:
            errors[str(member)] = float("inf")
            continue
        a = got.data.to_numpy().astype(np.float64)
        b = tensor.data.to_numpy().astype(np.float64)
        if a.shape != b.shape:
            errors[str(member)] = float("inf")
        elif str(member) == "instances":
            errors["instances"] = 1e6 * float(np.count_nonzero(a != b)) / max(b.size, 1)
        else:
            errors[str(member)] = float(np.abs(a - b).max()) if b.size else 0.0
    return errors


def _runnable(package: Path, descr: Any, weight_format: str, trust_code: bool) -> tuple[Any, Any]:
    """``(source for test_model, description for the measurement)`` of one weight format.

    TorchScript/ONNX (no package code) and trusted packages run as they are; ``pytorch_state_dict``
    gets the installed spoco-zoo architecture (:func:`spoco_zoo.zoo.trust.safe_description`) in a
    freshly loaded description, so that each format's test has its own validation summary.
    """
    from bioimageio.spec import load_description

    if trust_code or weight_format in SAFE_FORMATS:
        return package, descr
    fresh = load_description(package, perform_io_checks=True)
    safe, _ = safe_description(fresh, package, weight_format)
    return safe, safe


def validate_package(
    package: str | Path,
    formats: None | str | Sequence[str] = None,
    devices: Sequence[str] | None = None,
    trust_package_code: bool = False,
    measure_errors: bool = True,
) -> ValidationReport:
    """Run the spec validation and ``bioimageio.core.test_model`` for every weight format.

    No Python from the package runs (:mod:`spoco_zoo.zoo.trust`): ``pytorch_state_dict`` is
    tested with the installed spoco-zoo architecture when the package's source is byte for byte
    ours; a format that would run foreign code (another architecture source or library callable,
    custom processing, Keras/TensorFlow weights) is a failed row saying so.

    Parameters
    ----------
    package:
        The ``.zip`` (or ``rdf.yaml``) to check.
    formats:
        Weight formats to test (default: all in the package). A requested format that the
        package lacks is a failed row.
    devices:
        Passed to bioimageio.core (e.g. ``["cpu"]``); default: CUDA when available.
    trust_package_code:
        Test every format as the package describes it, running its own code.
    measure_errors:
        Also predict the test input once more per format and report the largest deviation from
        the packaged test output (``CheckResult.errors``). ``spoco-zoo export`` skips it: it has
        just measured the parity of every format against eager PyTorch.

    Returns
    -------
    ValidationReport
        Never raises for an invalid package description; the failures are in the rows.

    Raises
    ------
    PackageError
        ``package`` is not a package at all: missing, a folder, not a zip, no ``rdf.yaml`` in the
        zip, or zip members with absolute paths or ``..`` (refused before anything is read).
    ExportError
        ``formats`` holds an unknown name.
    """
    from bioimageio.core import test_model
    from bioimageio.spec import InvalidDescr, load_description
    from bioimageio.spec.model import v0_4, v0_5

    wanted = parse_formats(formats) if formats is not None else None
    package = check_package_file(package)
    report = ValidationReport(package=package)

    started = time.perf_counter()
    try:
        descr = load_description(package, perform_io_checks=True)
    except Exception as err:  # unreadable zip, broken YAML
        report.checks.append(
            CheckResult("rdf", False, message=f"cannot load: {err}", seconds=time.perf_counter() - started)
        )
        return report
    if isinstance(descr, InvalidDescr):
        msgs = _summary_errors(descr.validation_summary, limit=3) or [str(descr.validation_summary.status)]
        report.checks.append(CheckResult("rdf", False, message="; ".join(msgs), seconds=time.perf_counter() - started))
        return report
    if not isinstance(descr, (v0_4.ModelDescr, v0_5.ModelDescr)):
        message = f"not a model description ({descr.type} {descr.format_version})"
        report.checks.append(CheckResult("rdf", False, message=message, seconds=time.perf_counter() - started))
        return report
    summary = descr.validation_summary
    warnings = sum(len(getattr(d, "warnings", []) or []) for d in summary.details)
    present = [wf for wf in WEIGHT_FORMATS if getattr(descr.weights, wf, None) is not None]
    others = [wf for wf, entry in descr.weights if entry is not None and wf not in present]
    report.checks.append(
        CheckResult(
            "rdf",
            summary.status in ("valid-format", "passed"),
            message=(
                f"{descr.type} {descr.format_version}, weights: {', '.join(present + others)}; {warnings} warning(s)"
            ),
            seconds=time.perf_counter() - started,
        )
    )
    foreign = {} if trust_package_code else package_code(descr)
    for wf in wanted or present + others:
        started = time.perf_counter()
        if getattr(descr.weights, wf, None) is None:
            report.checks.append(CheckResult(wf, False, message="weight format not in the package"))
            continue
        refused = foreign.get("processing", []) + foreign.get(wf, [])
        if refused:
            message = f"not run: {'; '.join(refused)} would run code that is not spoco-zoo's; {TRUST_HINT}"
            report.checks.append(CheckResult(wf, False, message=message))
            continue
        try:
            source, run_descr = _runnable(package, descr, wf, trust_package_code)
        except Exception as err:  # the description loaded once already; be safe
            message = f"cannot prepare the test: {type(err).__name__}: {err}"
            report.checks.append(CheckResult(wf, False, message=message, seconds=time.perf_counter() - started))
            continue
        try:
            result = test_model(source, weight_format=cast(Any, wf), devices=list(devices) if devices else None)
            passed = result.status == "passed"
            msgs = _summary_errors(result)
        except Exception as err:  # bioimageio.core should not raise, but be safe
            passed, msgs = False, [f"bioimageio.core test_model raised {type(err).__name__}: {err}"]
        errors: dict[str, float] = {}
        try:
            if measure_errors:
                errors = _measure(run_descr, wf, devices)
        except Exception as err:
            passed = False
            msgs.append(f"prediction failed: {type(err).__name__}: {err}")
        message = "; ".join(msgs) if msgs else "bioimageio.core test_model passed"
        if wf == "torchscript":
            message += _traced_note(package, descr)
        report.checks.append(CheckResult(wf, passed, errors, message, time.perf_counter() - started))
    return report


def _traced_note(package: Path, descr: Any) -> str:
    """A note for the TorchScript row when its in-graph decoder was traced
    (:func:`spoco_zoo.zoo.consumers.traced_decoder`)."""
    import io
    import zipfile

    from spoco_zoo.zoo.consumers import traced_decoder

    member = str(descr.weights.torchscript.source)
    try:
        if zipfile.is_zipfile(package):
            with zipfile.ZipFile(package) as zf:
                traced = traced_decoder(io.BytesIO(zf.read(member)))
        else:
            traced = traced_decoder(package.parent / member)
    except Exception:  # the row's own test reports a file that cannot be loaded
        return ""
    if not traced:
        return ""
    return (
        "; note: the in-graph decoder was traced, its loops unrolled (about twice the memory in PyTorch's "
        "default executor): export the checkpoint again with this spoco-zoo"
    )


def validation_table(report: ValidationReport) -> Any:
    """A ``rich.table.Table`` with one row per check: name, status, max error, message, time."""
    from rich.table import Table

    table = Table(title=f"bioimage.io validation: {report.package.name}", show_lines=False)
    table.add_column("check / weight format")
    table.add_column("status")
    table.add_column("max error (test tensors)")
    table.add_column("message", overflow="fold")
    table.add_column("time", justify="right")
    for c in report.checks:
        status = "[green]passed[/green]" if c.passed else "[bold red]FAILED[/bold red]"
        table.add_row(c.name, status, c.error_text(), c.message, f"{c.seconds:.1f} s")
    return table
