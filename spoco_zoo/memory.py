"""How the process's C allocator hands memory back: kept for reuse in a command-line run.

PyTorch and numpy allocate their large arrays with ``malloc``. glibc serves blocks above its mmap
threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps them when freed, and trims the top of its
heap once enough of it is free, so every step of a training run or every block of a large volume maps its
activations anew and the kernel zero-fills them page by page: 16 million page faults and 36 s of system
time in a 60-step 3D run of the CPU preset on 2 cores, 70 million in a whole 3D benchmark row
(docs/benchmarks.md, "Keeping freed memory"). :func:`keep_freed_memory` tells glibc to serve every block
from its heap and to trim it only when more than 2 GiB of it are free at its top: freed blocks are reused,
and the process keeps about its peak memory until it exits. Commands that allocate the same sizes over and
over call it: ``spoco-zoo train`` before its steps, ``spoco-zoo segment --blockwise`` before its blocks
(the 3D benchmark's 128x512x512 volume in 193 s instead of 254 s on 2 cores; the row's peak memory 9.7
instead of 9.3 GB), and ``benchmarks/accuracy.py``. The whole-image ``segment`` does not: its arrays
come once each, and the blocks left free in the heap raised its peak from 1.9 to 2.6 GB on a 64x256x256
volume. Importing spoco-zoo changes nothing, so a long-lived host (napari, a notebook) keeps its
allocator as it was.

Numbers are unchanged: only where blocks come from changes.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["keep_freed_memory"]

# mallopt parameters of glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
#: ``M_TRIM_THRESHOLD``: free memory at the heap's top that glibc keeps (the largest ``int``, 2 GiB).
_KEEP_ALL = 2**31 - 1


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse instead of returning it to the kernel.

    Serves every block from the heap (``M_MMAP_MAX = 0``: no block gets its own ``mmap``) and trims the
    heap only when more than 2 GiB are free at its top (``M_TRIM_THRESHOLD`` at its largest). For
    short-lived processes that allocate and free large arrays over and over (training steps, block-wise
    segmentation); the process's memory stays near its peak until it exits.

    Returns
    -------
    bool
        Whether the allocator was changed: ``False`` where the C library is not glibc (macOS, Windows,
        musl), which are left as they are.

    Examples
    --------
    First thing in a script's ``main`` (it changes the whole process's allocator, so not run here):

    >>> from spoco_zoo.memory import keep_freed_memory
    >>> keep_freed_memory()  # doctest: +SKIP
    True
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: the C library it runs on (no library search)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only (musl has mallopt as a stub)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_ALL))
