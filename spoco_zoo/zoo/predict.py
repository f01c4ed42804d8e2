"""Run an exported package with bioimageio.core's prediction pipeline.

:func:`zoo_embeddings` is what ``spoco-zoo segment --model model.zip`` uses: the
package does its own preprocessing (raw images go in), the network runs through
bioimageio.core (pytorch_state_dict, TorchScript or ONNX weights), and the recommended
clustering comes from the RDF (``config["spoco"]["clustering"]``).

No Python from the package runs (:mod:`spoco_zoo.zoo.trust`): the package is checked
(:func:`load_package`), ``pytorch_state_dict`` weights run with the installed spoco-zoo
architecture when the package's source is byte for byte ours, TorchScript and ONNX need no
Python, and anything else is refused unless ``trust_package_code`` is set.

Single pass or tiles
--------------------
Images up to ``max_pixels`` are predicted in one pass, larger ones (or any image with
``tile_shape``) tile by tile. The package's preprocessing is computed on the whole image; the
normalised image is padded (symmetric) at the far end of each axis to a multiple of the size
step, and nothing else: no context is invented at the image border (a mirrored halo is not what
the network saw in training and cost 0.04 SBD on 256x256 images). Each tile is its core plus up
to the package's halo of the image's own context on the size-step grid
(:func:`spoco_zoo.inference.tile_window`, the rule of :func:`spoco_zoo.inference.predict_embeddings`),
run through bioimageio.core one window at a time, so with BatchNorm (running statistics) tiled
embeddings match a single pass everywhere up to the context beyond the halo (the halo is measured
to 0.001 on probe images; seams of the quickstart model differ by up to 0.09, with the same
labels); with group normalisation (``norm="group"``) they differ. bioimageio.core's own blocking
(``predict_sample_with_fixed_blocking``, what other consumers may use) pads the sample border by
the halo and so differs from a single pass near the border only. The in-graph ``instances``
output is not returned for tiled predictions (labels would restart in every block) -- cluster the
embeddings instead; the single-output ``instances`` variant is tiled with bioimageio.core's blocks.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from spoco_zoo.errors import PackageError
from spoco_zoo.shapes import pad_to_shape, valid_size
from spoco_zoo.zoo.trust import check_package_file, safe_description

__all__ = ["ZooPrediction", "zoo_predict", "zoo_embeddings", "package_config", "load_package", "check_package"]

_AXES = {2: ("y", "x"), 3: ("z", "y", "x")}


@dataclass
class ZooPrediction:
    """Outputs of one image.

    Attributes
    ----------
    embeddings:
        ``float32 [E, *S]``, or ``None`` for a package without the ``embeddings`` output.
    instances:
        ``int32 [*S]`` from the package's in-graph clustering, or ``None`` (no such output, or tiled
        while the package has embeddings).
    clustering:
        The RDF's ``config["spoco"]["clustering"]`` (for :func:`spoco_zoo.postprocess.embeddings_to_instances`).
    spoco:
        The whole ``config["spoco"]`` section.
    tiled:
        Whether the image was predicted in blocks.
    weight_format:
        The weight format that ran.
    """

    embeddings: np.ndarray | None
    instances: np.ndarray | None
    clustering: dict[str, Any]
    spoco: dict[str, Any] = field(default_factory=dict)
    tiled: bool = False
    weight_format: str | None = None


def load_package(package: str | Path) -> Any:
    """The checked bioimage.io description of a spoco-zoo package (nothing in it is run).

    Raises
    ------
    PackageError
        Naming the package: not a package (:func:`spoco_zoo.zoo.trust.check_package_file`), an
        invalid description, not a format-0.5 model, or not spoco-zoo's (inputs/outputs).
    """
    from bioimageio.spec import InvalidDescr, load_description
    from bioimageio.spec.model import v0_5

    path = check_package_file(package)
    try:
        descr = load_description(path, perform_io_checks=False)
    except Exception as err:  # unreadable YAML and friends
        raise PackageError(f"{path}: cannot read the package description: {err}") from None
    if isinstance(descr, InvalidDescr):
        summary = descr.validation_summary
        errors = [f"{'.'.join(map(str, e.loc))}: {e.msg}" for d in summary.details for e in d.errors][:2]
        raise PackageError(f"{path}: not a valid bioimage.io description ({'; '.join(errors) or summary.status})")
    if not isinstance(descr, v0_5.ModelDescr):
        raise PackageError(
            f"{path}: expected a bioimage.io model (format 0.5), got {descr.type} {descr.format_version}"
        )
    ids = [str(t.id) for t in descr.inputs], [str(t.id) for t in descr.outputs]
    if ids[0] != ["raw"] or not {"embeddings", "instances"} & set(ids[1]):
        raise PackageError(
            f"{path}: not a spoco-zoo package (inputs {ids[0]}, outputs {ids[1]}; expected raw -> embeddings "
            "and/or instances)"
        )
    return descr


def package_config(descr: Any) -> dict[str, Any]:
    """``config["spoco"]`` of a loaded description (empty dict when absent)."""
    extra = getattr(descr.config, "model_extra", None) or {}
    spoco = extra.get("spoco") or {}
    return dict(spoco) if isinstance(spoco, dict) else {}


def _geometry(descr: Any) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
    """Minimum extent and halo per spatial axis of the input (largest halo of any output), and the step."""
    from bioimageio.spec.model import v0_5

    raw = descr.inputs[0]
    space = [a for a in raw.axes if getattr(a, "type", None) == "space"]
    if not all(isinstance(a.size, v0_5.ParameterizedSize) for a in space):
        raise ValueError("spoco-zoo packages have parameterized spatial sizes")
    halos = []
    for axis in space:
        found = [int(getattr(a, "halo", 0) or 0) for t in descr.outputs for a in t.axes if str(a.id) == str(axis.id)]
        halos.append(max(found, default=0))
    return tuple(int(a.size.min) for a in space), int(space[0].size.step), tuple(halos)


def zoo_predict(
    package: str | Path,
    image: np.ndarray,
    *,
    weight_format: str | None = None,
    devices: Sequence[str] | None = None,
    max_pixels: int | None = None,
    tile_shape: Sequence[int] | None = None,
    trust_package_code: bool = False,
) -> ZooPrediction:
    """Predict one raw image with a spoco-zoo package through bioimageio.core.

    Parameters
    ----------
    package:
        Path of the ``.zip`` (or ``rdf.yaml``).
    image:
        Raw image ``[C, *S]`` (not normalised; the package applies its preprocessing).
        A 2D/3D array without channel axis is accepted for single-channel models.
    weight_format:
        ``pytorch_state_dict``, ``torchscript`` or ``onnx``; default: the first of these in the package.
    devices:
        E.g. ``["cpu"]`` or ``["cuda"]``; default: CUDA when available.
    max_pixels:
        Largest image (pixels/voxels) predicted in one pass; default 2**20, or 2**18 when the
        package has the in-graph ``instances`` output (its memory grows with pixels x clusters).
    tile_shape:
        Force blocked prediction; the core of each block (output pixels kept per block, rounded up
        to the size step). Blocks are the core plus the package's halo on each side.
    trust_package_code:
        Let bioimageio.core run the package's own Python (architecture source, custom processing)
        when it is not the installed spoco-zoo's; see :mod:`spoco_zoo.zoo.trust`. Without it,
        ``pytorch_state_dict`` weights run with the installed architecture and TorchScript/ONNX
        weights run no Python from the package.

    Raises
    ------
    PackageError
        Not a (spoco-zoo) package, or it would run code that is not spoco-zoo's (names the package).
    ValueError
        An image whose shape does not fit.
    """
    import torch
    from bioimageio.core import Sample, Tensor, create_prediction_pipeline
    from bioimageio.core.axis import AxisId
    from bioimageio.core.common import MemberId

    from spoco_zoo.inference import predict_embeddings

    descr = load_package(package)
    descr, weight_format = safe_description(descr, package, weight_format, trust_code=trust_package_code)
    spoco = package_config(descr)
    raw_descr = descr.inputs[0]
    dims = sum(1 for a in raw_descr.axes if getattr(a, "type", None) == "space")
    channels = next(a.size for a in raw_descr.axes if getattr(a, "type", None) == "channel")
    axes = _AXES[dims]
    image = np.asarray(image)
    if image.ndim == dims and channels == 1:
        image = image[None]
    if image.ndim != dims + 1 or image.shape[0] != channels:
        raise ValueError(f"image: shape {image.shape} does not fit the model input [C={channels}, {', '.join(axes)}]")
    if not np.issubdtype(image.dtype, np.number) or not np.all(np.isfinite(image)):
        raise ValueError("image: must be a finite numeric array")
    spatial = tuple(int(s) for s in image.shape[1:])
    min_size, step, halo = _geometry(descr)
    has_instances = any(str(t.id) == "instances" for t in descr.outputs)
    if max_pixels is None:
        max_pixels = 2**18 if has_instances else 2**20
    tiled = tile_shape is not None or int(np.prod(spatial)) > max_pixels

    raw_dims = ("batch", "channel", *axes)
    sample = Sample(
        members={MemberId("raw"): Tensor.from_numpy(image[None].astype(np.float32), dims=raw_dims)},
        stat={},
        id="image",
    )
    with create_prediction_pipeline(
        descr, weight_format=cast(Any, weight_format), devices=list(devices) if devices else None
    ) as pp:
        used = weight_format
        full = [valid_size(s, step) for s in spatial]
        cores = list(full)
        if tiled:
            wanted = list(tile_shape) if tile_shape is not None else ([256, 256] if dims == 2 else [64, 128, 128])
            if len(wanted) != dims:
                raise ValueError(f"tile_shape {tuple(wanted)} must have {dims} axes")
            cores = [min(valid_size(max(int(w), 1), step), f) for w, f in zip(wanted, full)]
        pp.apply_preprocessing(sample)
        data = pad_to_shape(sample.members[MemberId("raw")].data.to_numpy(), full, mode="symmetric")

        def run(window: np.ndarray) -> dict[str, np.ndarray]:
            one = Sample(members={MemberId("raw"): Tensor.from_numpy(window, dims=raw_dims)}, stat=sample.stat, id=0)
            members = pp.predict_sample_without_blocking(
                one, skip_preprocessing=True, skip_input_padding=True, skip_output_cropping=True
            ).members
            return {str(k): v.data.to_numpy() for k, v in members.items()}

        crop = (0, slice(None)) + tuple(slice(0, s) for s in spatial)
        has_embeddings = any(str(t.id) == "embeddings" for t in descr.outputs)
        if not tiled or cores == full:
            out = run(data)  # one pass over the image itself: no context beyond its border
        elif has_embeddings:

            def network(x: Any) -> Any:  # one window through the package: [1, C, *T] -> [1, E, *T]
                return torch.from_numpy(run(x.numpy())["embeddings"])

            # the tiles of spoco_zoo.inference: context from the image only, as the single pass sees it
            tiled_embeddings = predict_embeddings(network, data[0], cores, halo, step, "cpu")
            out = {"embeddings": tiled_embeddings[None]}
        else:
            # the single-output 'instances' variant: bioimageio.core's blocks (core + 2 * halo), which pad the
            # sample's border by the halo; an axis shorter than a block is padded (symmetric) to one block
            shape = [max(f, c + 2 * h) for f, c, h in zip(full, cores, halo)]
            data = pad_to_shape(data, shape, mode="symmetric")
            padded = Sample(members={MemberId("raw"): Tensor.from_numpy(data, dims=raw_dims)}, stat=sample.stat, id=0)
            block = {AxisId("batch"): 1, AxisId("channel"): channels}
            block.update({AxisId(a): max(m, c + 2 * h) for a, c, m, h in zip(axes, cores, min_size, halo)})
            with warnings.catch_warnings():
                # unfilled int32 'instances' blocks start as NaN -> harmless cast warning
                warnings.simplefilter("ignore", RuntimeWarning)
                blocked = pp.predict_sample_with_fixed_blocking(
                    padded, input_block_shape={MemberId("raw"): block}, skip_preprocessing=True
                ).members
                out = {str(k): v.data.to_numpy() for k, v in blocked.items()}
    embeddings = None
    if "embeddings" in out:
        embeddings = np.ascontiguousarray(out["embeddings"][crop], dtype=np.float32)
    instances = None
    if has_instances and (not tiled or embeddings is None) and "instances" in out:
        instances = np.ascontiguousarray(out["instances"][crop][0], dtype=np.int32)
    clustering = dict(spoco.get("clustering") or {})
    return ZooPrediction(embeddings, instances, clustering, spoco, tiled, used)


def check_package(package: str | Path, weight_format: str | None = None, trust_package_code: bool = False) -> str:
    """Check a package before predicting with it; returns the weight format that will run.

    Raises
    ------
    PackageError
        Naming the package: not a spoco-zoo package, no such weight format, or code that is not the
        installed spoco-zoo's without ``trust_package_code`` (see :mod:`spoco_zoo.zoo.trust`).
    """
    descr = load_package(package)
    return safe_description(descr, package, weight_format, trust_code=trust_package_code)[1]


def zoo_embeddings(package: str | Path, image: np.ndarray, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Embeddings of a raw image and the package's recommended clustering.

    Parameters
    ----------
    package:
        A spoco-zoo bioimage.io package (``.zip``).
    image:
        Raw image ``[C, *S]`` (not normalised).
    **kwargs:
        ``weight_format``, ``devices``, ``max_pixels``, ``tile_shape``, ``trust_package_code``
        (see :func:`zoo_predict`).

    Returns
    -------
    embeddings, clustering:
        ``float32 [E, *S]`` and ``config["spoco"]["clustering"]``; instances are
        ``spoco_zoo.postprocess.embeddings_to_instances(embeddings, clustering)``.

    Examples
    --------
    >>> emb, clustering = zoo_embeddings("model.zip", image)          # doctest: +SKIP
    >>> labels = embeddings_to_instances(emb, clustering)              # doctest: +SKIP
    """
    result = zoo_predict(package, image, **kwargs)
    if result.embeddings is None:
        raise ValueError(f"{package}: the package has no 'embeddings' output (variant 'instances')")
    return result.embeddings, result.clustering
