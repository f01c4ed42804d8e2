"""PNG, JPEG and BMP inputs (grey/RGB, 8/16-bit, RGB-encoded label ids) and inputs that do not fit the model."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from spoco_zoo.cli.main import app
from spoco_zoo.cli.segment import expand_inputs, input_stem
from spoco_zoo.config import DataConfig
from spoco_zoo.data import build_datasets
from spoco_zoo.data.io import read_array, read_image, read_labels
from spoco_zoo.errors import DataError

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _grey(shape: tuple[int, int] = (20, 30), high: int = 256, dtype: type = np.uint8) -> np.ndarray:
    return (np.random.default_rng(0).integers(0, high, shape)).astype(dtype)


def _rgb(shape: tuple[int, int] = (20, 30)) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (*shape, 3)).astype(np.uint8)


def _png_16bit_rgb(path: Path, array: np.ndarray) -> Path:
    """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    height, width = array.shape[:2]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in array)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )
    return path


# ---------------------------------------------------------------------------- images
@pytest.mark.parametrize("suffix", [".png", ".bmp"])
def test_grey_8bit_reads_exactly(tmp_path: Path, suffix: str) -> None:
    grey = _grey()
    iio.imwrite(tmp_path / f"g{suffix}", grey)
    for dims in (None, 2):
        image = read_image(tmp_path / f"g{suffix}", spatial_dims=dims)
        assert image.shape == (1, 20, 30) and image.dtype == np.float32
        assert np.array_equal(image[0], grey.astype(np.float32))


def test_grey_16bit_png_keeps_all_bits(tmp_path: Path) -> None:
    grey = _grey(high=65536, dtype=np.uint16)
    grey[0, 0] = 65535
    iio.imwrite(tmp_path / "g16.png", grey)
    assert read_array(tmp_path / "g16.png").dtype == np.uint16
    image = read_image(tmp_path / "g16.png")
    assert image.shape == (1, 20, 30) and image.max() == 65535.0
    assert np.array_equal(image[0], grey.astype(np.float32))


@pytest.mark.parametrize("suffix", [".png", ".bmp"])
def test_rgb_is_channel_last_and_read_as_three_channels(tmp_path: Path, suffix: str) -> None:
    rgb = _rgb()
    iio.imwrite(tmp_path / f"c{suffix}", rgb)
    image = read_image(tmp_path / f"c{suffix}", spatial_dims=2)
    assert image.shape == (3, 20, 30) and image.dtype == np.float32
    for channel in range(3):
        assert np.array_equal(image[channel], rgb[..., channel].astype(np.float32))


def test_rgb_with_three_rows_is_still_channel_last(tmp_path: Path) -> None:
    """A PNG is never cyx, even when its first axis is short enough to look like channels."""
    rgb = _rgb((3, 30))
    iio.imwrite(tmp_path / "short.png", rgb)
    image = read_image(tmp_path / "short.png")
    assert image.shape == (3, 3, 30) and np.array_equal(image[1], rgb[..., 1].astype(np.float32))


def test_grey_stored_as_rgb_is_one_channel(tmp_path: Path) -> None:
    grey = _grey()
    iio.imwrite(tmp_path / "grey_rgb.png", np.stack([grey] * 3, axis=-1))
    image = read_image(tmp_path / "grey_rgb.png")
    assert image.shape == (1, 20, 30) and np.array_equal(image[0], grey.astype(np.float32))
    almost = np.stack([grey] * 3, axis=-1)
    almost[3, 4, 2] ^= 1  # one pixel differs: colour
    iio.imwrite(tmp_path / "almost.png", almost)
    assert read_image(tmp_path / "almost.png").shape == (3, 20, 30)


def test_opaque_alpha_is_dropped_and_transparency_refused(tmp_path: Path) -> None:
    rgb = _rgb()
    opaque = np.concatenate([rgb, np.full((20, 30, 1), 255, np.uint8)], axis=-1)
    iio.imwrite(tmp_path / "opaque.png", opaque)
    image = read_image(tmp_path / "opaque.png")
    assert image.shape == (3, 20, 30) and np.array_equal(image[2], rgb[..., 2].astype(np.float32))
    grey_alpha = np.stack([_grey(), np.full((20, 30), 255, np.uint8)], axis=-1)
    iio.imwrite(tmp_path / "la.png", grey_alpha)
    assert read_image(tmp_path / "la.png").shape == (1, 20, 30)

    transparent = opaque.copy()
    transparent[:5, :, 3] = 0
    iio.imwrite(tmp_path / "transparent.png", transparent)
    with pytest.raises(DataError, match="alpha") as err:
        read_image(tmp_path / "transparent.png")
    assert str(err.value).startswith(str(tmp_path / "transparent.png"))


def test_jpeg_grey_and_rgb(tmp_path: Path) -> None:
    smooth = np.tile(np.linspace(20, 220, 32, dtype=np.float32), (24, 1)).astype(np.uint8)
    for name in ("g.jpg", "g.jpeg"):
        iio.imwrite(tmp_path / name, smooth)
        image = read_image(tmp_path / name)
        assert image.shape == (1, 24, 32) and image.dtype == np.float32
        assert np.abs(image[0] - smooth).max() <= 8  # lossy, but close
    colour = np.stack([smooth, 255 - smooth, np.full_like(smooth, 128)], axis=-1)
    iio.imwrite(tmp_path / "c.jpg", colour)
    image = read_image(tmp_path / "c.jpg", spatial_dims=2)
    assert image.shape == (3, 24, 32)
    assert np.abs(image[1] - (255 - smooth)).mean() < 4


def test_16bit_rgb_png_is_read_at_8_bits(tmp_path: Path) -> None:
    array = np.full((4, 5, 3), 0x1234, np.uint16)
    array[..., 1] = 0xAB00
    image = read_image(_png_16bit_rgb(tmp_path / "rgb16.png", array))
    assert image.shape == (3, 4, 5) and image[0].max() == 0x12 and image[1].max() == 0xAB


def test_corrupt_and_truncated_files_raise_data_error_starting_with_the_path(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    good = tmp_path / "good.png"
    iio.imwrite(good, _rgb((64, 64)))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for path in (corrupt, truncated, empty):
        for read in (read_image, read_labels):
            if read is read_labels and path.suffix == ".jpg":
                continue
            with pytest.raises(DataError) as err:
                read(path)
            assert str(err.value).startswith(f"{path}: "), err.value
    with pytest.raises(DataError, match="missing.png: file not found"):
        read_image(tmp_path / "missing.png")


# ---------------------------------------------------------------------------- labels
def test_grey_label_pngs_hold_ids(tmp_path: Path) -> None:
    ids8 = np.zeros((16, 16), np.uint8)
    ids8[2:6, 2:6], ids8[8:12, 8:12] = 3, 200
    iio.imwrite(tmp_path / "l8.png", ids8)
    labels = read_labels(tmp_path / "l8.png", spatial_dims=2)
    assert labels.dtype == np.int64 and labels.shape == (16, 16) and np.array_equal(labels, ids8)
    ids16 = ids8.astype(np.uint16) * 300
    iio.imwrite(tmp_path / "l16.png", ids16)
    assert np.array_equal(read_labels(tmp_path / "l16.png"), ids16.astype(np.int64))
    iio.imwrite(tmp_path / "l.bmp", ids8)
    assert np.array_equal(read_labels(tmp_path / "l.bmp"), ids8)


def test_rgb_label_png_decodes_cvppp_ids(tmp_path: Path) -> None:
    ids = np.zeros((12, 12), np.int64)
    ids[1:4, 1:4], ids[5:8, 5:8], ids[9:11, 1:11] = 1, 300, 70000
    rgb = np.stack([(ids >> 16) & 255, (ids >> 8) & 255, ids & 255], axis=-1).astype(np.uint8)
    assert rgb[6, 6].tolist() == [0, 1, 44] and rgb[10, 5].tolist() == [1, 17, 112]
    iio.imwrite(tmp_path / "rgb_labels.png", rgb)
    labels = read_labels(tmp_path / "rgb_labels.png", spatial_dims=2)
    assert labels.dtype == np.int64 and np.array_equal(labels, ids)
    assert sorted(np.unique(labels).tolist()) == [0, 1, 300, 70000]

    opaque = np.concatenate([rgb, np.full((12, 12, 1), 255, np.uint8)], axis=-1)
    iio.imwrite(tmp_path / "rgba_labels.png", opaque)
    assert np.array_equal(read_labels(tmp_path / "rgba_labels.png"), ids)
    see_through = opaque.copy()
    see_through[..., :3][ids == 0] = 255  # white but fully transparent background
    see_through[..., 3][ids == 0] = 0
    iio.imwrite(tmp_path / "transparent_labels.png", see_through)
    assert np.array_equal(read_labels(tmp_path / "transparent_labels.png"), ids)


def test_paletted_label_png_gives_palette_indices(tmp_path: Path) -> None:
    from PIL import Image

    indices = np.zeros((10, 10), np.uint8)
    indices[1:4, 1:4], indices[6:9, 6:9] = 1, 2
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (3 * 253))
    image.save(tmp_path / "palette.png")
    assert np.array_equal(read_labels(tmp_path / "palette.png"), indices)
    assert read_image(tmp_path / "palette.png").shape == (3, 10, 10)  # the image is what it shows


def test_jpeg_and_16bit_colour_labels_are_refused(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "labels.jpg", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"labels\.jpg: .*JPEG.*cannot hold label ids") as err:
        read_labels(tmp_path / "labels.jpg")
    assert str(err.value).startswith(str(tmp_path / "labels.jpg"))
    with pytest.raises(DataError, match="lossy"):
        read_labels(tmp_path / "other.JPEG")  # refused by name, before reading
    rgb16 = _png_16bit_rgb(tmp_path / "rgb16.png", np.ones((4, 5, 3), np.uint16))
    with pytest.raises(DataError, match=r"rgb16\.png: a 16-bit colour PNG"):
        read_labels(rgb16)


def test_png_pairs_build_a_dataset(tmp_path: Path) -> None:
    """The training data path (``_read_pairs``): RGB images, RGB-encoded label PNGs."""
    ids = np.zeros((64, 64), np.int64)
    ids[4:20, 4:20], ids[30:50, 30:50] = 300, 70000
    image = _rgb((64, 64))
    iio.imwrite(tmp_path / "a.png", image)
    rgb_ids = np.stack([(ids >> 16) & 255, (ids >> 8) & 255, ids & 255], axis=-1).astype(np.uint8)
    iio.imwrite(tmp_path / "a_labels.png", rgb_ids)
    cfg = DataConfig(train_images=[tmp_path / "a.png"], train_labels=[tmp_path / "a_labels.png"], patch_shape=[32, 32])
    train, _ = build_datasets(cfg, spatial_dims=2, seed=0)
    assert train.images[0].shape == (3, 64, 64)
    assert set(np.unique(train.labels[0][train.labels[0] > 0]).tolist()) <= {300, 70000}

    wrong = cfg.model_copy(update={"train_labels": [tmp_path / "a.jpg"]})
    with pytest.raises(DataError, match="cannot hold label ids"):
        build_datasets(wrong, spatial_dims=2, seed=0)


# ---------------------------------------------------------------------------- input vs model
def test_volume_for_a_2d_model_and_2d_image_for_a_3d_model(tmp_path: Path) -> None:
    volume = tmp_path / "vol.tif"
    tifffile.imwrite(volume, np.zeros((16, 64, 64), np.uint16))
    with pytest.raises(DataError) as err:
        read_image(volume, spatial_dims=2)
    message = str(err.value)
    assert message.startswith(f"{volume}: looks like a 3D volume (16 planes of 64x64, shape (16, 64, 64))")
    assert "the model is 2D" in message
    assert read_image(volume, spatial_dims=3).shape == (1, 16, 64, 64)
    assert read_image(volume).shape == (1, 16, 64, 64)

    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((40, 48), np.uint16))
    with pytest.raises(DataError, match=r"flat\.tif: is a 2D image \(shape \(40, 48\)\), but the model is 3D"):
        read_image(flat, spatial_dims=3)
    iio.imwrite(tmp_path / "flat.png", np.zeros((40, 48, 3), np.uint8) + np.array([1, 2, 3], np.uint8))
    with pytest.raises(DataError, match=r"flat\.png: is a 2D image .*, but the model is 3D"):
        read_image(tmp_path / "flat.png", spatial_dims=3)


def test_valid_channel_layouts_still_read(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "cyx.tif", np.zeros((4, 20, 20), np.float32))
    tifffile.imwrite(tmp_path / "yxc.tif", np.zeros((20, 30, 3), np.float32))
    tifffile.imwrite(tmp_path / "czyx.tif", np.zeros((2, 5, 20, 20), np.float32))
    assert read_image(tmp_path / "cyx.tif", spatial_dims=2).shape == (4, 20, 20)
    assert read_image(tmp_path / "yxc.tif", spatial_dims=2).shape == (3, 20, 30)
    assert read_image(tmp_path / "czyx.tif", spatial_dims=3).shape == (2, 5, 20, 20)
    assert read_image(tmp_path / "cyx.tif", spatial_dims=3).shape == (1, 4, 20, 20)


# ---------------------------------------------------------------------------- command line
def test_folders_pick_up_png_jpeg_bmp(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.png", "b.jpg", "c.JPEG", "d.bmp"):
        (folder / name).write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    assert [p.name for p in expand_inputs([folder])] == ["a.png", "b.jpg", "c.JPEG", "d.bmp"]
    assert [input_stem(p) for p in expand_inputs([folder])] == ["a", "b", "c", "d"]

    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["train", "--images", str(folder), "--labels", str(empty)])
    assert result.exit_code == 2, result.output
    assert "--labels" in result.output and "PNG/JPEG/BMP" in result.output


def test_segment_cli_on_a_png(tmp_path: Path, random_checkpoint_2d: Path) -> None:
    grey = (np.random.default_rng(5).random((40, 48)) * 255).astype(np.uint8)
    src = tmp_path / "cells.png"
    iio.imwrite(src, np.stack([grey] * 3, axis=-1))  # grey stored as RGB: one channel for a 1-channel model
    out = tmp_path / "out"
    args = ["segment", str(src), "--checkpoint", str(random_checkpoint_2d), "--output", str(out)]
    result = runner.invoke(app, [*args, "--no-progress", "--device", "cpu", "--min-size", "0"])
    assert result.exit_code == 0, result.output
    labels = tifffile.imread(out / "cells_instances.tif")
    assert labels.shape == (40, 48) and "cells_instances.tif" in result.output


def test_segment_cli_refuses_a_volume_for_a_2d_model(tmp_path: Path, random_checkpoint_2d: Path) -> None:
    volume = tmp_path / "vol.tif"
    tifffile.imwrite(volume, np.zeros((16, 64, 64), np.uint16))
    out = tmp_path / "out"
    args = ["segment", str(volume), "--checkpoint", str(random_checkpoint_2d), "--output", str(out)]
    result = runner.invoke(app, [*args, "--no-progress", "--device", "cpu"])
    assert result.exit_code == 1, result.output
    assert f"{volume}: looks like a 3D volume (16 planes of 64x64" in result.output
    assert "the model is 2D" in result.output and "Traceback" not in result.output
    assert "channel(s)" not in result.output
    assert not (out / "vol_instances.tif").exists()
