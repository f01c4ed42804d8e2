"""Per-image, per-channel intensity normalisation, identical to bioimage.io preprocessing.

- ``percentile``: ``(x - lo) / (hi - lo + eps)`` with ``lo, hi`` the ``p_low`` /
  ``p_high`` percentiles (linear interpolation) of the channel, no clipping --
  bioimage.io ``scale_range`` with ``mode="per_sample"`` and ``axes`` = the
  spatial axes (so statistics are per channel).
- ``zero_mean_unit_variance``: ``(x - mean) / (std + eps)`` with the population
  standard deviation (``ddof=0``) -- bioimage.io ``zero_mean_unit_variance``
  with the same axes.
"""

from __future__ import annotations

import numpy as np

from spoco_zoo.config import NormalizationConfig
from spoco_zoo.errors import DataError

__all__ = ["normalize", "channel_statistics"]


def _check(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim < 2:
        raise DataError(f"image: expected [C, *S] with at least one spatial axis, got shape {image.shape}")
    if image.size == 0:
        raise DataError(f"image: empty array of shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise DataError("image: contains NaN or infinite values, cannot normalise")
    return image


def channel_statistics(image: np.ndarray, cfg: NormalizationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(offset, scale)`` such that ``normalize(x) = (x - offset) / scale``.

    Parameters
    ----------
    image:
        Array ``[C, *S]``.
    cfg:
        Normalisation mode, percentiles and ``eps``.

    Returns
    -------
    offset, scale:
        float64 arrays ``[C]``; ``scale`` already includes ``eps``.
    """
    flat = _check(image).reshape(image.shape[0], -1).astype(np.float64)
    if cfg.mode == "percentile":
        low, high = np.percentile(flat, [cfg.p_low, cfg.p_high], axis=1)
        return low, high - low + cfg.eps
    return flat.mean(axis=1), flat.std(axis=1) + cfg.eps


def normalize(image: np.ndarray, cfg: NormalizationConfig) -> np.ndarray:
    """Normalise each channel of one image.

    Parameters
    ----------
    image:
        Array ``[C, *S]`` (any real dtype).
    cfg:
        :class:`~spoco_zoo.config.NormalizationConfig`.

    Returns
    -------
    numpy.ndarray
        float32 ``[C, *S]``.

    Raises
    ------
    DataError
        Fewer than two axes, empty array, NaN or infinite values.

    Examples
    --------
    >>> from spoco_zoo.config import NormalizationConfig
    >>> x = np.arange(101, dtype=np.float32)[None]
    >>> out = normalize(x, NormalizationConfig(p_low=0, p_high=100, eps=1e-6))
    >>> float(out.min()), round(float(out.max()), 4)
    (0.0, 1.0)
    """
    offset, scale = channel_statistics(image, cfg)
    extra = (1,) * (np.ndim(image) - 1)
    out = (np.asarray(image, dtype=np.float64) - offset.reshape(-1, *extra)) / scale.reshape(-1, *extra)
    return out.astype(np.float32)
