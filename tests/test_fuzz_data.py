"""Property-based tests: the image/label readers and the label conventions raise nothing but DataError.

Random arrays (every numpy dtype family, 0-5 axes, NaN/inf, huge values) written as TIFF, HDF5 and
Zarr, random and corrupted bytes under every supported extension, and random label arrays for the
conventions. Whatever comes back must satisfy the readers' contract; whatever is refused must be a
:class:`~spoco_zoo.errors.DataError` that names the file. Runs are short (CI budget) and
deterministic (``derandomize``); ``SPOCO_ZOO_FUZZ_EXAMPLES`` sets how many examples each test tries.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spoco_zoo.data.conventions import LABEL_CONVENTIONS, from_training_labels, to_training_labels
from spoco_zoo.data.io import read_image, read_labels
from spoco_zoo.errors import DataError

FUZZ = settings(
    # SPOCO_ZOO_FUZZ_EXAMPLES=2000 for a longer search than CI's
    max_examples=int(os.environ.get("SPOCO_ZOO_FUZZ_EXAMPLES", "60")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DTYPES = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="="),
    hnp.unsigned_integer_dtypes(endianness="="),
    hnp.floating_dtypes(endianness="="),
    hnp.complex_number_dtypes(endianness="="),
)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6)
ARRAYS = DTYPES.flatmap(lambda dtype: hnp.arrays(dtype, SHAPES))
SPATIAL_DIMS = st.sampled_from([None, 2, 3])
IGNORE = st.integers(min_value=-(2**40), max_value=0)


def _write_tiff(path: Path, array: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(path, array)


def _write_hdf5(path: Path, array: np.ndarray) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        handle.create_dataset("data", data=array)


def _write_zarr(path: Path, array: np.ndarray) -> None:
    import zarr

    stored = zarr.open_array(str(path), mode="w", shape=array.shape, dtype=array.dtype)
    stored[...] = array


WRITERS: dict[str, tuple[str, Callable[[Path, np.ndarray], None]]] = {
    "tiff": (".tif", _write_tiff),
    "hdf5": (".h5", _write_hdf5),
    "zarr": (".zarr", _write_zarr),
}


def _check_image(image: np.ndarray, spatial_dims: int | None) -> None:
    assert image.dtype == np.float32 and image.ndim in (3, 4) and np.isfinite(image).all()
    if spatial_dims is not None:
        assert image.ndim == spatial_dims + 1


def _check_labels(labels: np.ndarray, spatial_dims: int | None, ignore_label: int) -> None:
    assert labels.dtype == np.int64 and labels.ndim in ((2, 3) if spatial_dims is None else (spatial_dims,))
    assert np.all((labels >= 0) | (labels == ignore_label))


def _read_both(path: Path, spatial_dims: int | None, ignore_label: int) -> None:
    """Read ``path`` as an image and as labels: valid results or DataError naming the file."""
    for read, check in (
        (lambda: read_image(path, spatial_dims=spatial_dims), lambda a: _check_image(a, spatial_dims)),
        (
            lambda: read_labels(path, spatial_dims=spatial_dims, ignore_label=ignore_label),
            lambda a: _check_labels(a, spatial_dims, ignore_label),
        ),
    ):
        try:
            result = read()
        except DataError as err:
            assert str(path) in str(err), err
        else:
            check(result)


@pytest.mark.parametrize("fmt", sorted(WRITERS))
@FUZZ
@given(array=ARRAYS, spatial_dims=SPATIAL_DIMS, ignore_label=IGNORE)
def test_readers_take_any_array(fmt: str, array: np.ndarray, spatial_dims: int | None, ignore_label: int) -> None:
    suffix, write = WRITERS[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz{suffix}"
        try:
            write(path, array)
        except Exception:  # the writer library refuses this array: nothing to read
            return
        _read_both(path, spatial_dims, ignore_label)


def _valid_bytes(fmt: str) -> bytes:
    """A small valid file of ``fmt`` as bytes (``zarr``: a zipped store)."""
    array = (np.arange(48, dtype=np.uint16).reshape(6, 8) % 5).astype(np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        if fmt == "zarr":
            import zarr
            from zarr.storage import ZipStore

            store = ZipStore(Path(tmp) / "a.zarr.zip", mode="w")
            zarr.create_array(store, data=array)
            store.close()
            return (Path(tmp) / "a.zarr.zip").read_bytes()
        suffix, write = WRITERS[fmt]
        write(Path(tmp) / f"a{suffix}", array)
        return (Path(tmp) / f"a{suffix}").read_bytes()


CORRUPTIONS = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8)


@pytest.mark.parametrize(("fmt", "suffix"), [("tiff", ".tif"), ("hdf5", ".h5"), ("zarr", ".zarr.zip")])
@FUZZ
@given(flips=CORRUPTIONS, cut=st.floats(0, 1), spatial_dims=SPATIAL_DIMS)
def test_readers_take_corrupted_files(
    fmt: str, suffix: str, flips: list[tuple[float, int]], cut: float, spatial_dims: int | None
) -> None:
    data = bytearray(_valid_bytes(fmt))
    for where, value in flips:
        data[int(where * len(data))] = value
    data = data[: max(1, int(cut * len(data)))] if cut < 0.5 else data  # half the cases also truncated
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"corrupt{suffix}"
        path.write_bytes(bytes(data))
        _read_both(path, spatial_dims, -1)


@pytest.mark.parametrize("suffix", [".tif", ".tiff", ".h5", ".hdf5", ".zarr.zip"])
@FUZZ
@given(data=st.binary(min_size=0, max_size=2048))
def test_readers_take_random_bytes(suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"random{suffix}"
        path.write_bytes(data)
        _read_both(path, None, -1)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def test_zarr_object_arrays_are_refused_unread(tmp_path: Path) -> None:
    """An object Zarr array stores pickles that run code when decoded: refused, nothing unpickled."""
    marker = tmp_path / "marker.txt"
    path = tmp_path / "objects.zarr"
    path.mkdir()
    (path / ".zarray").write_text(
        '{"zarr_format": 2, "shape": [2], "chunks": [2], "dtype": "|O", "compressor": null, '
        '"fill_value": null, "filters": [{"id": "pickle"}], "order": "C"}'
    )
    (path / "0").write_bytes(pickle.dumps([_Payload(marker), 1]))
    with pytest.raises(DataError, match="objects.zarr"):
        read_image(path)
    with zipfile.ZipFile(tmp_path / "o.zarr.zip", "w") as zf:
        for member in path.iterdir():
            zf.write(member, member.name)
    with pytest.raises(DataError, match="o.zarr.zip"):
        read_labels(tmp_path / "o.zarr.zip")
    assert not marker.exists()
    pickle.loads((path / "0").read_bytes())  # the payload is real
    assert marker.exists()


def test_hdf5_string_arrays_are_refused(tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "s.h5", "w") as handle:
        handle.create_dataset("names", data=np.array([b"a", b"b"], dtype=h5py.string_dtype()))
    with pytest.raises(DataError, match=r"s\.h5: unsupported data type"):
        read_image(tmp_path / "s.h5")


LABEL_ARRAYS = st.one_of(ARRAYS, hnp.arrays(st.sampled_from([np.dtype("U3"), np.dtype("O")]), SHAPES))


@FUZZ
@given(
    labels=LABEL_ARRAYS,
    convention=st.one_of(st.sampled_from(LABEL_CONVENTIONS), st.text(max_size=12)),
    ignore_label=st.integers(min_value=-(2**70), max_value=2**70),
)
def test_conventions_take_any_array(labels: np.ndarray, convention: str, ignore_label: int) -> None:
    for convert in (to_training_labels, from_training_labels):
        try:
            out: Any = convert(labels, convention, ignore_label)
        except DataError:
            continue
        assert convention in LABEL_CONVENTIONS and -(2**63) <= ignore_label <= 0
        assert out.dtype == np.int64 and out.shape == labels.shape
        known = out[out != ignore_label]
        assert np.all(known >= 0)
        # annotated objects keep their ids
        ints = np.asarray(labels).astype(np.int64)
        assert np.array_equal(out[ints > 0], ints[ints > 0])


def test_conventions_reject_what_the_fuzzing_found() -> None:
    with pytest.raises(DataError, match="dtype"):
        to_training_labels(np.array(["a", "b"]), "objects_only")
    with pytest.raises(DataError, match="dtype"):
        to_training_labels(np.array([0.5, 1.0]), "objects_only")
    with pytest.raises(DataError, match="int64"):
        to_training_labels(np.array([2**63], dtype=np.uint64), "objects_and_background")
    with pytest.raises(DataError, match="ignore_label"):
        from_training_labels(np.array([1, 2]), "objects_only", ignore_label=3)
    with pytest.raises(DataError, match=r"negative values \[-1\] other than ignore_label \(0\)"):
        to_training_labels(np.array([-1, 2], dtype=np.int8), "objects_and_background", ignore_label=0)
