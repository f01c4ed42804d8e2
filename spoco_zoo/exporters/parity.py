"""Numerical parity of converted weights against eager PyTorch (numpy only).

Embeddings must agree to ``max |a - b| < tol`` (default 1e-4, float32).
Instance labels are compared pixel by pixel: a converted graph may flip a
pixel whose embedding sits on a clustering tie, so a small fraction of
mismatched pixels (``label_ppm`` per million) is tolerated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spoco_zoo.errors import ExportError

__all__ = [
    "EMBEDDINGS_TOLERANCE",
    "LABEL_MISMATCH_PPM",
    "ParityCase",
    "ParityResult",
    "compare_outputs",
    "run_and_compare",
]

#: Maximum absolute difference allowed between converted and eager embeddings.
EMBEDDINGS_TOLERANCE = 1e-4
#: Instance-label pixels per million allowed to differ from eager PyTorch.
LABEL_MISMATCH_PPM = 1000


@dataclass
class ParityCase:
    """One test input: its shape, the embeddings' max abs difference, label mismatches."""

    shape: tuple[int, ...]
    max_abs: float
    label_mismatches: int = 0
    label_pixels: int = 0

    @property
    def label_ppm(self) -> float:
        return 1e6 * self.label_mismatches / self.label_pixels if self.label_pixels else 0.0


@dataclass
class ParityResult:
    """Parity of one weight format on all test inputs."""

    weight_format: str
    cases: list[ParityCase] = field(default_factory=list)
    tolerance: float = EMBEDDINGS_TOLERANCE
    label_ppm_tolerance: float = LABEL_MISMATCH_PPM

    @property
    def max_abs(self) -> float:
        return max((c.max_abs for c in self.cases), default=0.0)

    @property
    def max_label_ppm(self) -> float:
        return max((c.label_ppm for c in self.cases), default=0.0)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and self.max_abs < self.tolerance and self.max_label_ppm <= self.label_ppm_tolerance

    def summary(self) -> str:
        parts = [f"{self.weight_format}: max |diff| {self.max_abs:.2e} (tol {self.tolerance:.0e})"]
        for case in self.cases:
            text = f"input {case.shape}: {case.max_abs:.2e}"
            if case.label_pixels:
                text += f", labels {case.label_mismatches}/{case.label_pixels} px differ"
            parts.append(text)
        return "; ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {
            "max_abs": self.max_abs,
            "max_label_ppm": self.max_label_ppm,
            "cases": [
                {
                    "shape": list(c.shape),
                    "max_abs": c.max_abs,
                    "label_mismatches": c.label_mismatches,
                    "label_pixels": c.label_pixels,
                }
                for c in self.cases
            ],
        }

    def raise_if_failed(self) -> None:
        """Raise :class:`ExportError` with the numbers unless :attr:`passed`."""
        if not self.passed:
            raise ExportError(
                f"parity check failed for {self.weight_format} weights (embeddings must agree with eager "
                f"PyTorch to < {self.tolerance:.0e}, labels to <= {self.label_ppm_tolerance:g} ppm): {self.summary()}"
            )


def compare_outputs(
    weight_format: str,
    reference: Sequence[Sequence[np.ndarray]],
    candidate: Sequence[Sequence[np.ndarray]],
    tolerance: float = EMBEDDINGS_TOLERANCE,
    label_ppm: float = LABEL_MISMATCH_PPM,
) -> ParityResult:
    """Compare outputs ``[(embeddings, [instances])]`` per test input.

    Parameters
    ----------
    reference, candidate:
        For each test input, the model outputs: float outputs (embeddings) are compared by their
        largest absolute difference, integer outputs (instance labels) pixel by pixel.

    Returns
    -------
    ParityResult
        Not raised on failure; call :meth:`ParityResult.raise_if_failed`.
    """
    result = ParityResult(weight_format, tolerance=tolerance, label_ppm_tolerance=label_ppm)
    if len(reference) != len(candidate):
        raise ExportError(f"{weight_format}: {len(candidate)} outputs for {len(reference)} test inputs")
    for ref, cand in zip(reference, candidate):
        if len(ref) != len(cand):
            raise ExportError(f"{weight_format}: model returns {len(cand)} outputs, expected {len(ref)}")
        case = ParityCase(tuple(int(s) for s in np.asarray(ref[0]).shape), 0.0)
        for expected, got in zip(ref, cand):
            expected, got = np.asarray(expected), np.asarray(got)
            labels = np.issubdtype(expected.dtype, np.integer)
            kind = "instances" if labels else "embeddings"
            if expected.shape != got.shape:
                raise ExportError(f"{weight_format}: {kind} shape {got.shape}, eager PyTorch gives {expected.shape}")
            if labels:  # label images: count differing pixels
                case.label_mismatches += int(np.count_nonzero(expected != got))
                case.label_pixels += int(expected.size)
                continue
            diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
            case.max_abs = max(case.max_abs, float(diff.max()) if diff.size else 0.0)
            if not np.all(np.isfinite(got)):
                case.max_abs = float("inf")
        result.cases.append(case)
    return result


def run_and_compare(
    name: str,
    run: Callable[[Path, Sequence[np.ndarray]], list[list[np.ndarray]]],
    path: Path,
    reference: Sequence[Sequence[np.ndarray]],
    inputs: Sequence[np.ndarray],
    tolerance: float,
    label_ppm: float,
    cannot_run: str,
) -> ParityResult:
    """Run the saved weights at ``path`` on ``inputs`` with ``run`` and compare with ``reference``.

    A failure to run raises :class:`ExportError` ``"{path}: {cannot_run}: {error}"``.
    """
    try:
        candidate = run(path, inputs)
    except Exception as err:
        raise ExportError(f"{path}: {cannot_run}: {err}") from err
    return compare_outputs(name, reference, candidate, tolerance, label_ppm)
