"""Test tensors of an exported package: a synthetic raw image, its normalised inputs and eager outputs.

The package's test input is a *raw* image (bioimage.io applies the preprocessing); the expected
outputs and every parity check come from eager PyTorch on the image normalised exactly as in
training. A second input of another valid size and batch size 2 guards the dynamic axes of the
converted weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spoco_zoo.errors import ExportError
from spoco_zoo.exporters.common import PackageGeometry

__all__ = [
    "ExportTensors",
    "synthetic_test_image",
    "objects_for_shape",
    "second_shape",
    "model_outputs",
    "make_tensors",
]


@dataclass
class ExportTensors:
    """Test data of one export, written into the package folder.

    Attributes
    ----------
    image:
        Raw test image ``[C, *S]`` float32 (not normalised).
    origin:
        How ``image`` was made (for the model card).
    inputs:
        Normalised network inputs: ``[1, C, *S]`` and ``[2, C, *S2]`` (another valid size).
    reference:
        Eager PyTorch outputs per input, in the order of ``outputs``.
    outputs:
        Output ids of the model (``embeddings`` and/or ``instances``).
    embeddings:
        Eager embeddings ``[E, *S]`` of the test input (also for the ``instances`` variant; for
        the cover image).
    test_input, test_outputs:
        The ``.npy`` test tensors of the RDF: input, and per output id.
    samples:
        TIFF sample tensors for people browsing the zoo: ``raw``, ``embeddings``, ``instances``.
    """

    image: np.ndarray
    origin: str
    inputs: list[np.ndarray]
    reference: list[list[np.ndarray]]
    outputs: tuple[str, ...]
    embeddings: np.ndarray
    test_input: Path
    test_outputs: dict[str, Path] = field(default_factory=dict)
    samples: dict[str, Path] = field(default_factory=dict)


def synthetic_test_image(shape: Sequence[int], channels: int, n_objects: int, seed: int) -> tuple[np.ndarray, str]:
    """Raw test image ``[C, *shape]`` float32 from the synthetic generator, and where it came from.

    Extra channels are shifted / scaled copies, so each channel has its own statistics.
    """
    from spoco_zoo.data.synthetic import make_synthetic_sample

    image, _ = make_synthetic_sample(tuple(shape), n_objects, seed)
    origin = f"spoco_zoo.data.synthetic.make_synthetic_sample({tuple(shape)}, n_objects={n_objects}, seed={seed})"
    image = np.asarray(image, dtype=np.float32)
    stack = [image * (1.0 + 0.25 * c) + 0.05 * c for c in range(channels)]
    return np.stack(stack).astype(np.float32), origin


def objects_for_shape(config: Any, shape: Sequence[int]) -> int:
    """Objects in a synthetic image of ``shape`` at the training data's density (4..400)."""
    syn = config.data.synthetic
    ref = float(np.prod(syn.shape)) if len(syn.shape) == len(shape) else float(np.prod(shape))
    return int(max(4, min(400, round(syn.n_objects * float(np.prod(shape)) / max(ref, 1.0)))))


def second_shape(shape: Sequence[int], geo: PackageGeometry) -> tuple[int, ...]:
    """Another valid shape: each axis ``(i+1)`` steps smaller (or larger when at the minimum)."""
    out = []
    for i, s in enumerate(shape):
        smaller = s - geo.step * (i + 1)
        out.append(smaller if smaller >= geo.min_size[i] else s + geo.step * (i + 1))
    return tuple(out)


def model_outputs(model: Any, x: np.ndarray) -> list[np.ndarray]:
    """Outputs of an eager model on ``x`` as numpy arrays (one or two: embeddings, instances)."""
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(x)))
    if isinstance(out, (tuple, list)):
        return [o.detach().cpu().numpy() for o in out]
    return [out.detach().cpu().numpy()]


def _write_samples(stage: Path, image: np.ndarray, outputs: dict[str, np.ndarray]) -> dict[str, Path]:
    import tifffile

    files = {"raw": (stage / "sample_input_raw.tif", image)}
    if "embeddings" in outputs:
        files["embeddings"] = (stage / "sample_output_embeddings.tif", outputs["embeddings"][0].astype(np.float16))
    if "instances" in outputs:
        files["instances"] = (stage / "sample_output_instances.tif", outputs["instances"][0, 0].astype(np.int32))
    for path, data in files.values():
        tifffile.imwrite(path, np.ascontiguousarray(data), compression="zlib")
    return {key: path for key, (path, _) in files.items()}


def make_tensors(
    stage: Path,
    model: Any,
    config: Any,
    shape: Sequence[int],
    geo: PackageGeometry,
    seed: int,
    outputs: Sequence[str] = ("embeddings", "instances"),
) -> ExportTensors:
    """Make the test image and the parity inputs, run the eager model and write the test files.

    Parameters
    ----------
    stage:
        Package folder the ``.npy`` / ``.tif`` files go to.
    model:
        Eager model built from the package's architecture file, returning ``outputs`` (a U-Net, or
        a wrapper whose ``unet`` attribute is the U-Net).
    config:
        The checkpoint's ``TrainConfig`` (channels, normalisation, synthetic data density).
    shape, geo:
        Valid spatial shape of the test input and the package geometry.
    seed:
        Seed of the test image (``seed + 1`` and ``seed + 2`` for the second input).
    outputs:
        The model's output ids, in order.
    """
    import torch

    from spoco_zoo.data.normalize import normalize

    channels, norm = config.model.in_channels, config.data.normalization
    n_objects = objects_for_shape(config, shape)
    image, origin = synthetic_test_image(shape, channels, n_objects, seed)
    other = second_shape(shape, geo)
    second = np.stack([normalize(synthetic_test_image(other, channels, n_objects, seed + k)[0], norm) for k in (1, 2)])
    inputs = [normalize(image, norm)[None], second]
    reference = [model_outputs(model, x) for x in inputs]
    if len(reference[0]) != len(outputs):
        raise ValueError(f"the model returns {len(reference[0])} outputs, expected {list(outputs)}")
    with torch.no_grad():
        embeddings = getattr(model, "unet", model)(torch.from_numpy(inputs[0]))[0].numpy()
    tensors = ExportTensors(
        image=image,
        origin=origin,
        inputs=inputs,
        reference=reference,
        outputs=tuple(outputs),
        embeddings=embeddings,
        test_input=stage / "test_input_raw.npy",
    )
    np.save(tensors.test_input, image[None])
    first = dict(zip(outputs, reference[0]))
    if "instances" in first and not np.any(first["instances"]):
        # bioimage.io rejects an all-zero test output ("Output values are too small for reliable testing")
        raise ExportError(
            f"output 'instances': the model finds no object on the export's test image ({origin}, "
            f"shape {tuple(shape)}): its foreground channel calls every pixel background or every object is "
            "smaller than the clustering's min_size. Train longer (a short training has not learned the "
            "foreground yet), pass --test-shape for a larger test image, or export --variant embeddings."
        )
    for name, array in first.items():
        path = stage / f"test_output_{name}.npy"
        np.save(path, array.astype(np.int32 if name == "instances" else np.float32))
        tensors.test_outputs[name] = path
    tensors.samples = _write_samples(stage, image, first)
    return tensors
