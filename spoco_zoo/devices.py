"""Which torch device to run on (numpy and torch only)."""

from __future__ import annotations

import torch

from spoco_zoo.errors import DataError

__all__ = ["resolve_device"]


def resolve_device(device: None | str | torch.device = "auto") -> torch.device:
    """The :class:`torch.device` for a device option.

    Parameters
    ----------
    device:
        ``None`` or ``"auto"``: CUDA when available, else the CPU. Anything else (``"cpu"``,
        ``"cuda"``, ``"cuda:1"``, a :class:`torch.device`) is used as given.

    Returns
    -------
    torch.device

    Raises
    ------
    DataError
        An unknown device string, or CUDA requested on a machine without it (the message starts
        with ``device:``).

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("auto").type in ("cpu", "cuda")
    True
    """
    if device is None or (isinstance(device, str) and device.strip() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise DataError(f"device: cannot use {str(device)!r} (use auto, cpu, cuda, cuda:N or mps)") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device: {str(device)!r} requested but CUDA is not available")
    return resolved
