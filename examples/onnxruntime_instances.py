"""Instance labels from a spoco-zoo bioimage.io package with ONNX Runtime alone.

No PyTorch, no spoco-zoo, no bioimageio.core: this file needs ``numpy``,
``onnxruntime`` and ``PyYAML`` (to read the package's ``rdf.yaml``), plus
``tifffile`` only when reading/writing TIFF images. It is what any consumer of
the package does:

1. read the RDF from the zip: the ONNX weights file, the input's preprocessing
   (``scale_range`` percentiles or ``zero_mean_unit_variance``, per channel) and
   the valid input sizes (``min + n * step`` per spatial axis);
2. normalise the image, pad it (symmetric) to a valid size;
3. run the ONNX graph: outputs ``embeddings`` ``[1, E, *S]`` and, in packages
   exported with the in-graph clustering (the default), ``instances``
   ``[1, 1, *S]`` int32;
4. crop back to the image size.

Usage::

    python examples/onnxruntime_instances.py model.zip image.tif labels.tif
    python examples/onnxruntime_instances.py model.zip image.npy labels.npy

The image is ``[*S]`` (one channel) or ``[C, *S]``, 2D (``yx``) or 3D (``zyx``)
as the package says.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import yaml


def read_package(path: Path) -> tuple[dict[str, Any], bytes]:
    """The RDF (as a dict) and the bytes of the ONNX weights of a package zip."""
    with zipfile.ZipFile(path) as zf:
        rdf_name = next((n for n in zf.namelist() if n.endswith(("rdf.yaml", "bioimageio.yaml"))), None)
        if rdf_name is None:
            raise ValueError(f"{path}: no rdf.yaml / bioimageio.yaml in the zip, not a bioimage.io package")
        rdf = yaml.safe_load(zf.read(rdf_name))
        onnx_entry = (rdf.get("weights") or {}).get("onnx")
        if not onnx_entry:
            raise ValueError(f"{path}: the package has no onnx weights (formats: {sorted(rdf.get('weights') or {})})")
        return rdf, zf.read(onnx_entry["source"])


def normalize(image: np.ndarray, preprocessing: list[dict[str, Any]]) -> np.ndarray:
    """Apply the input's preprocessing to ``image [C, *S]``, statistics per channel."""
    out = image.astype(np.float32)
    for step in preprocessing:
        kind, kw = step["id"], step.get("kwargs", {})
        flat = out.reshape(out.shape[0], -1).astype(np.float64)
        eps = float(kw.get("eps", 1e-6))
        if kind == "scale_range":
            lo, hi = np.percentile(flat, [kw.get("min_percentile", 0.0), kw.get("max_percentile", 100.0)], axis=1)
            offset, scale = lo, hi - lo + eps
        elif kind == "zero_mean_unit_variance":
            offset, scale = flat.mean(axis=1), flat.std(axis=1) + eps
        elif kind == "ensure_dtype":
            continue
        else:
            raise ValueError(f"preprocessing step {kind!r} is not supported by this script")
        shape = (-1,) + (1,) * (out.ndim - 1)
        out = ((out - offset.reshape(shape)) / scale.reshape(shape)).astype(np.float32)
    return out


def valid_shape(shape: tuple[int, ...], axes: list[dict[str, Any]]) -> tuple[int, ...]:
    """Smallest ``min + n * step`` >= each spatial size."""
    space = [a for a in axes if a.get("type") == "space"]
    result = []
    for size, axis in zip(shape, space):
        spec = axis.get("size")
        lo, step = (spec["min"], spec["step"]) if isinstance(spec, dict) else (int(spec), 0)
        if step == 0:
            result.append(lo)
        else:
            result.append(lo + max(0, -(-(size - lo) // step)) * step)
    return tuple(result)


def predict(package: Path, image: np.ndarray, threads: int = 0) -> dict[str, np.ndarray]:
    """Outputs of the package's ONNX graph for one image, cropped to its size.

    Returns ``{"embeddings": float32 [E, *S], "instances": int32 [*S]}`` (``instances``
    only when the package has that output).
    """
    rdf, onnx_bytes = read_package(package)
    inp = rdf["inputs"][0]
    n_space = sum(a.get("type") == "space" for a in inp["axes"])
    if image.ndim == n_space:
        image = image[None]
    if image.ndim != n_space + 1:
        raise ValueError(f"image of shape {image.shape}: the package expects {n_space}D images, [*S] or [C, *S]")
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or infinite values")
    x = normalize(image, inp.get("preprocessing", []))
    spatial = x.shape[1:]
    target = valid_shape(spatial, inp["axes"])
    x = np.pad(x, [(0, 0)] + [(0, t - s) for s, t in zip(spatial, target)], mode="symmetric")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # onnxruntime-gpu (spoco-zoo's `gpu` extra) offers the CUDA provider; plain onnxruntime the CPU one.
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    session = ort.InferenceSession(onnx_bytes, options, providers=providers)
    names = [o.name for o in session.get_outputs()]
    values = session.run(None, {session.get_inputs()[0].name: x[None]})
    crop = tuple(slice(0, s) for s in spatial)
    out = {}
    for _name, value in zip(names, values):
        key = "instances" if value.dtype.kind in "iu" else "embeddings"
        arr = value[0]
        out[key] = arr[0][crop] if key == "instances" else arr[(slice(None), *crop)]
    return out


def _read(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path)
    import tifffile

    return tifffile.imread(path)


def _write(path: Path, labels: np.ndarray) -> None:
    if path.suffix == ".npy":
        np.save(path, labels)
    else:
        import tifffile

        tifffile.imwrite(path, labels.astype(np.uint16 if labels.max() < 2**16 else np.uint32), compression="zlib")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path, help="bioimage.io package zip exported by spoco-zoo")
    parser.add_argument("image", type=Path, help="input image (.tif or .npy)")
    parser.add_argument("output", type=Path, help="label image to write (.tif or .npy)")
    parser.add_argument("--embeddings", type=Path, default=None, help="also save the embeddings (.npy)")
    args = parser.parse_args(argv)
    out = predict(args.package, _read(args.image))
    if "instances" not in out:
        print(
            f"{args.package}: exported without the in-graph instances output; cluster the embeddings "
            "with spoco_zoo.postprocess.embeddings_to_instances",
            file=sys.stderr,
        )
        return 2
    _write(args.output, out["instances"])
    if args.embeddings is not None:
        np.save(args.embeddings, out["embeddings"])
    n = len(np.unique(out["instances"])) - int((out["instances"] == 0).any())
    print(f"{args.output}: {n} instances, shape {out['instances'].shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
