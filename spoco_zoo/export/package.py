"""Checkpoint -> bioimage.io model package (.zip).

:func:`export_package` does, in order:

1. load the checkpoint (``student`` or ``teacher`` weights) and its ``TrainConfig``;
2. write the architecture source (``unet.py`` verbatim, or unet + in-graph
   clustering + wrapper when the ``instances`` output is requested) and build
   the model *from that file*;
3. make a synthetic test image (raw, not normalised), normalise it exactly as
   training did, and compute the expected outputs with eager PyTorch;
4. write the selected weight formats and check TorchScript / ONNX Runtime
   against eager PyTorch on the test input and on a second input of another
   valid size and batch size (``max |diff| < 1e-4``, else :class:`ExportError`);
5. cluster the test embeddings with the recommended settings for the cover image
   (input | PCA of the embeddings | instances) and render the model card;
6. build the RDF with ``bioimageio.spec`` and save the package to a temporary
   file next to ``output``, then rename it into place (atomic).

Validation with bioimageio.core is separate (:mod:`spoco_zoo.export.validate`); the
``spoco-zoo export`` command runs it by default.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from spoco_zoo.export.common import (
    PAPER_CITATION,
    PAPER_DOI,
    ExportError,
    PackageGeometry,
    default_test_shape,
    package_geometry,
    parse_formats,
)
from spoco_zoo.export.parity import EMBEDDINGS_TOLERANCE, LABEL_MISMATCH_PPM, ParityResult, compare_outputs

__all__ = ["ExportResult", "export_package", "clustering_config", "ingraph_available", "default_name"]

_NAME_CHARS = re.compile(r"^[A-Za-z0-9_+\- ()]+$")


@dataclass
class ExportResult:
    """What :func:`export_package` wrote and measured.

    Attributes
    ----------
    path:
        The package (.zip).
    formats:
        Weight formats in the package.
    instances:
        Whether the package has the ``instances`` output.
    parity:
        Per converted format (``torchscript``, ``onnx``, and ``pytorch_state_dict`` = the
        reloaded state dict) the comparison with eager PyTorch.
    onnx_exporter, onnx_opset:
        Which ONNX exporter produced the file and its opset (``None`` without ONNX).
    seconds:
        Wall time of the export.
    size_bytes:
        Size of the zip.
    test_shape:
        Spatial shape of the test tensors.
    clustering:
        ``config["spoco"]["clustering"]`` of the RDF.
    """

    path: Path
    formats: tuple[str, ...]
    instances: bool
    parity: dict[str, ParityResult] = field(default_factory=dict)
    onnx_exporter: str | None = None
    onnx_opset: int | None = None
    seconds: float = 0.0
    size_bytes: int = 0
    test_shape: tuple[int, ...] = ()
    clustering: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def ingraph_available() -> bool:
    """``True`` when :mod:`spoco_zoo.cluster.ingraph` can be imported (enables ``instances``)."""
    try:
        from spoco_zoo.cluster import ingraph  # noqa: F401
    except Exception:
        return False
    return True


def _json_safe(value: Any) -> Any:
    return json.loads(
        json.dumps(value, default=lambda v: float(v) if isinstance(v, (np.floating, np.integer)) else str(v))
    )


def clustering_config(config: Any, ingraph: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The RDF's ``config["spoco"]["clustering"]`` for a ``TrainConfig``.

    ``{"method", "bandwidth" (= clustering.bandwidth or loss.delta_var; not for hdbscan),
    "min_size", "background": "largest", **clustering.params}`` plus, when the package has
    the in-graph output, ``"ingraph"``: the constructor arguments compiled into the model.
    The dict is accepted as is by :func:`spoco_zoo.postprocess.embeddings_to_instances`.
    """
    from spoco_zoo.cluster.settings import recommended_clustering

    out = recommended_clustering(config.clustering, config.loss)
    if ingraph is not None:
        out["ingraph"] = dict(ingraph)
    return _json_safe(out)


def _ingraph_kwargs(config: Any, options: Mapping[str, Any] | None) -> dict[str, Any]:
    from spoco_zoo.cluster.settings import recommended_ingraph

    try:
        return recommended_ingraph(config.clustering, config.loss, options)
    except ValueError as err:
        raise ExportError(f"in-graph clustering options: {err}") from err


def default_name(spatial_dims: int, instances: bool) -> str:
    """``"SPOCO 2D embeddings and instances"`` and the like."""
    return f"SPOCO {spatial_dims}D embeddings" + (" and instances" if instances else "")


def _check_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not 5 <= len(name) <= 128 or not _NAME_CHARS.match(name):
        raise ExportError(
            f"--name {name!r}: a bioimage.io model name has 5-128 characters from letters, digits, spaces and _+-()"
        )
    return name


def _test_image(shape: Sequence[int], channels: int, n_objects: int, seed: int) -> tuple[np.ndarray, str]:
    """Raw test image ``[C, *shape]`` float32 and where it came from."""
    try:
        from spoco_zoo.data.synthetic import make_synthetic_sample

        image, _ = make_synthetic_sample(tuple(shape), n_objects, seed)
        origin = f"spoco_zoo.data.synthetic.make_synthetic_sample({tuple(shape)}, n_objects={n_objects}, seed={seed})"
    except ImportError:
        from scipy import ndimage as ndi

        rng = np.random.default_rng(seed)
        image = ndi.gaussian_filter(rng.standard_normal(tuple(shape)), 3.0)
        image = (image - image.min()) / (np.ptp(image) + 1e-12)
        origin = f"smoothed Gaussian noise (seed {seed})"
    image = np.asarray(image, dtype=np.float32)
    # extra channels: shifted/scaled copies, so each channel has its own statistics
    stack = [image * (1.0 + 0.25 * c) + 0.05 * c for c in range(channels)]
    return np.stack(stack).astype(np.float32), origin


def _n_objects(config: Any, shape: Sequence[int]) -> int:
    syn = config.data.synthetic
    ref = float(np.prod(syn.shape)) if len(syn.shape) == len(shape) else float(np.prod(shape))
    return int(max(4, min(400, round(syn.n_objects * float(np.prod(shape)) / max(ref, 1.0)))))


def _second_shape(shape: Sequence[int], geo: PackageGeometry) -> tuple[int, ...]:
    """Another valid shape: each axis ``(i+1)`` steps smaller (or larger when at the minimum)."""
    out = []
    for i, s in enumerate(shape):
        smaller = s - geo.step * (i + 1)
        out.append(smaller if smaller >= geo.min_size else s + geo.step * (i + 1))
    return tuple(out)


def _outputs(model: Any, x: np.ndarray) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(x)))
    if isinstance(out, (tuple, list)):
        return [o.detach().cpu().numpy() for o in out]
    return [out.detach().cpu().numpy()]


def _write_samples(stage: Path, image: np.ndarray, outputs: Sequence[np.ndarray]) -> dict[str, Path]:
    """TIFF sample tensors (for people browsing the zoo): raw input, embeddings (float16), instances."""
    import tifffile

    files = {"raw": (stage / "sample_input_raw.tif", image)}
    files["embeddings"] = (stage / "sample_output_embeddings.tif", outputs[0][0].astype(np.float16))
    if len(outputs) > 1:
        files["instances"] = (stage / "sample_output_instances.tif", outputs[1][0, 0].astype(np.int32))
    for path, data in files.values():
        tifffile.imwrite(path, np.ascontiguousarray(data), compression="zlib")
    return {key: path for key, (path, _) in files.items()}


def _cluster_for_cover(embeddings: np.ndarray, clustering: dict[str, Any], seed: int) -> tuple[np.ndarray, str]:
    try:
        from spoco_zoo.postprocess import embeddings_to_instances

        return np.asarray(
            embeddings_to_instances(embeddings, clustering)
        ), f"{clustering['method']} (spoco_zoo.postprocess)"
    except ImportError:
        pass
    try:
        from spoco_zoo.cluster import cluster_embeddings  # type: ignore[attr-defined]

        params = {k: v for k, v in clustering.items() if k not in ("method", "ingraph")}
        return np.asarray(cluster_embeddings(embeddings, clustering["method"], **params)), clustering["method"]
    except ImportError:
        pass
    from sklearn.cluster import KMeans

    flat = embeddings.reshape(embeddings.shape[0], -1).T
    k = 8
    labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(flat)
    return labels.reshape(embeddings.shape[1:]).astype(np.int32), f"k-means (k={k}) fallback"


def _ingraph_effective(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments of the in-graph clustering with its defaults filled in."""
    from spoco_zoo.cluster.ingraph import InGraphClustering

    module = InGraphClustering(**dict(kwargs))
    names = ("bandwidth", "n_seeds", "n_iter", "gaussian", "max_instances", "min_size")
    return {n: getattr(module, n) for n in names if hasattr(module, n)}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _card_values(
    *,
    name: str,
    description: str,
    config: Any,
    state: Mapping[str, Any],
    weights: str,
    formats: Sequence[str],
    instances: bool,
    geo: PackageGeometry,
    parameter_count: int,
    parity: Mapping[str, ParityResult],
    clustering: Mapping[str, Any],
    test_origin: str,
) -> dict[str, Any]:
    from spoco_zoo import __version__

    model, loss, data = config.model, config.loss, config.data
    dims = model.spatial_dims
    spatial = "z, y, x" if dims == 3 else "y, x"
    norm = data.normalization
    if norm.mode == "percentile":
        preprocessing = (
            f"`scale_range` per image and per channel: `(x - lo) / (hi - lo + {norm.eps:g})` where `lo` and `hi` "
            f"are the {norm.p_low:g} and {norm.p_high:g} percentiles of the channel's intensities over the spatial "
            "axes (no clipping) -- exactly the normalisation used in training."
        )
    else:
        preprocessing = (
            f"`zero_mean_unit_variance` per image and per channel over the spatial axes (eps {norm.eps:g}) "
            "-- exactly the normalisation used in training."
        )
    if data.train_images is None:
        syn = data.synthetic
        training_data = (
            f"spoco-zoo's built-in synthetic images ({syn.n_train} training / {syn.n_val} validation images of "
            f"{'x'.join(map(str, syn.shape))} pixels, about {syn.n_objects} crowded, touching objects each, "
            f"seed {syn.seed})"
        )
        short = "synthetic data"
    else:
        training_data = (
            f"{len(data.train_images)} user-provided training image(s) ({len(data.val_images or [])} for validation)"
        )
        short = "the user's training images"
    metrics = {k: v for k, v in dict(state.get("metrics") or {}).items()}
    if metrics:
        rows = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in sorted(metrics.items()))
        metrics_text = (
            f"Validation metrics stored in the checkpoint (step {state.get('step', '?')}):\n\n"
            f"| metric | value |\n| --- | --- |\n{rows}"
        )
    else:
        metrics_text = "The checkpoint stores no validation metrics (evaluate with `spoco-zoo evaluate`)."
    parity_rows = ["| weights | max abs difference to eager PyTorch | label pixels differing |", "| --- | --- | --- |"]
    for fmt in formats:
        p = parity.get(fmt)
        if p is None:
            continue
        labels = ", ".join(f"{c.label_mismatches}/{c.label_pixels}" for c in p.cases) if instances else "n/a"
        parity_rows.append(f"| {fmt} | {p.max_abs:.2e} | {labels} |")
    loss_rows = "\n".join(
        f"| {k} | {_fmt(v)} |"
        for k, v in loss.model_dump().items()
        if k
        in (
            "delta_var",
            "delta_dist",
            "alpha",
            "beta",
            "gamma",
            "embedding_weight",
            "instance_weight",
            "consistency_weight",
            "anchors_per_object",
            "consistency_anchors",
            "kernel",
        )
    )
    if instances:
        ig = _ingraph_effective(clustering.get("ingraph", {}))
        instances_row = (
            "| output `instances` | axes `"
            + ", ".join(["b", "c", *spatial.split(", ")])
            + "`, 1 channel, int32 labels (0 = background) |\n"
        )
        instances_text = (
            "The package has two outputs. `embeddings` are the raw network output. `instances` are label "
            "images computed *inside the model graph* by a fixed-iteration mean-shift clustering of the "
            f"embeddings ({'Gaussian' if ig.get('gaussian') else 'flat'} kernel, "
            f"bandwidth {_fmt(ig.get('bandwidth'))}, "
            f"{ig.get('n_seeds')} sampled seeds, {ig.get('n_iter')} iterations, "
            f"at most {ig.get('max_instances')} clusters "
            "including background), so tools "
            "that only run the network (deepImageJ, ilastik, bioimageio.core) get instances directly. "
            "For the best quality, cluster the `embeddings` with the recommended Python clustering below."
        )
        limits = (
            "- The in-graph `instances` are per input window: when a tool predicts in tiles, labels are not "
            "consistent across tiles. Predict whole images, or cluster the stitched `embeddings` instead.\n"
        )
        dij = "the `instances` output can be shown as a label image."
        ila = "the `instances` output is a label image."
    else:
        instances_row = ""
        instances_text = (
            "The package outputs the embeddings only. Turn them into instances with the recommended "
            "clustering below (`spoco_zoo.postprocess.embeddings_to_instances`)."
        )
        limits = ""
        dij = "the embeddings still need clustering outside deepImageJ."
        ila = "instances need clustering outside ilastik."
    return {
        "name": name,
        "description": description,
        "spoco_zoo_version": __version__,
        "export_date": _dt.date.today().isoformat(),
        "weights": weights,
        "steps": state.get("step", "?"),
        "spatial_dims": f"{dims}D",
        "embedding_dim": model.embedding_dim,
        "depth": model.depth,
        "base_features": model.base_features,
        "norm": model.norm,
        "parameter_count": f"{parameter_count:,}",
        "input_axes": ", ".join(["b", "c", *spatial.split(", ")]),
        "output_axes": ", ".join(["b", "c", *spatial.split(", ")]),
        "in_channels": model.in_channels,
        "min_size": geo.min_size,
        "step": geo.step,
        "halo": geo.halo,
        "formats": ", ".join(f"`{f}`" for f in formats),
        "instances_row": instances_row,
        "preprocessing": preprocessing,
        "instances_text": instances_text,
        "training_data": training_data,
        "training_data_short": short,
        "object_fraction": f"{100 * data.object_fraction:g}%"
        if not data.labels_are_sparse
        else "a subset (labels given sparse)",
        "patch_shape": "x".join(map(str, data.patch_shape)),
        "batch_size": data.batch_size,
        "lr": _fmt(config.lr),
        "ema_momentum": _fmt(loss.ema_momentum),
        "loss_rows": loss_rows,
        "metrics": metrics_text + f"\n\nTest tensors: {test_origin}.",
        "parity": "\n".join(parity_rows),
        "channel_axes_hint": "C, " + spatial,
        "spatial_axes_hint": spatial,
        "clustering_json": json.dumps(dict(clustering), indent=2),
        "deepimagej_hint": dij,
        "ilastik_hint": ila,
        "instances_limitations": limits,
        "citation": PAPER_CITATION,
        "doi": PAPER_DOI,
        "license": "MIT (weights and this description).",
    }


def _load(checkpoint: Path, weights: str) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    from spoco_zoo.errors import CheckpointError
    from spoco_zoo.train.checkpoint import load_checkpoint

    if weights not in ("student", "teacher"):
        raise ExportError(f"--weights {weights!r}: use 'student' or 'teacher'")
    state = load_checkpoint(Path(checkpoint))
    key = "model_state" if weights == "student" else "teacher_state"
    if key not in state:
        raise CheckpointError(f"{checkpoint}: checkpoint has no {weights} weights ({key})")
    return state, state["config"], state[key]


def export_package(
    checkpoint: str | Path,
    output: str | Path,
    *,
    formats: None | str | Sequence[str] = None,
    weights: Literal["student", "teacher"] = "student",
    name: str | None = None,
    authors: Sequence[str] | None = None,
    description: str | None = None,
    tags: Sequence[str] = (),
    instances: bool | None = None,
    ingraph_options: Mapping[str, Any] | None = None,
    test_shape: Sequence[int] | None = None,
    seed: int = 0,
    onnx_exporter: Literal["auto", "dynamo", "legacy"] = "auto",
    opset: int = 18,
    torchscript_method: Literal["auto", "script", "trace"] = "auto",
    card_template: Path | None = None,
    tolerance: float = EMBEDDINGS_TOLERANCE,
    label_mismatch_ppm: float = LABEL_MISMATCH_PPM,
    version: str | None = None,
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a spoco-zoo checkpoint as a bioimage.io model package.

    Parameters
    ----------
    checkpoint:
        A ``spoco-zoo`` checkpoint (``best.pt`` / ``last.pt``).
    output:
        Target ``.zip``; written atomically (temporary file in the same folder + rename),
        an existing file is replaced only when the export succeeded.
    formats:
        Weight formats (see :func:`spoco_zoo.export.common.parse_formats`); default all three.
    weights:
        ``"student"`` or ``"teacher"`` (EMA) weights of the checkpoint.
    name, authors, description, tags:
        RDF metadata; sensible defaults from the config. Extra ``tags`` are appended.
    instances:
        Add the ``instances`` output (in-graph clustering). ``None``: when
        :mod:`spoco_zoo.cluster.ingraph` is available.
    ingraph_options:
        Overrides for the in-graph clustering (``n_seeds``, ``max_instances``, ``kernel``, ...;
        see :func:`spoco_zoo.cluster.ingraph.ingraph_kwargs`).
    test_shape:
        Spatial shape of the test tensors (rounded up to a valid size); default 128x128 / 48x64x64.
    seed:
        Seed of the synthetic test image.
    onnx_exporter, opset:
        See :func:`spoco_zoo.export.onnx.export_onnx`.
    torchscript_method:
        See :func:`spoco_zoo.export.torchscript.to_torchscript`.
    card_template:
        Model-card template (default ``model_cards/spoco_model.md``).
    tolerance, label_mismatch_ppm:
        Parity limits for embeddings (max abs) and labels (pixels per million; also written to the
        RDF as the reproducibility allowance of ``instances``).
    version:
        Optional model version (SemVer) for the RDF.
    log:
        Called with one line per step (progress reporting).

    Returns
    -------
    ExportResult

    Raises
    ------
    spoco_zoo.train.checkpoint.CheckpointError
        Missing, corrupt or incompatible checkpoint (the message names the file).
    ExportError
        Bad option, conversion failure, parity failure (with the numbers) or a description the
        spec rejects.
    """
    import torch
    from bioimageio.spec import save_bioimageio_package

    from spoco_zoo.data.normalize import normalize
    from spoco_zoo.export._bioimageio_compat import ensure_compat
    from spoco_zoo.export.architecture import embeddings_architecture, instances_architecture, load_architecture
    from spoco_zoo.export.card import render_model_card
    from spoco_zoo.export.cover import make_cover, write_png
    from spoco_zoo.export.rdf import RdfContent, WeightsFiles, build_model_descr

    ensure_compat()
    started = time.perf_counter()
    say = log or (lambda _msg: None)
    fmts = parse_formats(formats)
    output = Path(output)
    if output.suffix.lower() != ".zip":
        raise ExportError(f"--output {output}: a bioimage.io package must be a .zip file")
    if not math.isfinite(tolerance) or tolerance <= 0:
        raise ExportError(f"tolerance must be positive, got {tolerance}")
    if onnx_exporter not in ("auto", "dynamo", "legacy"):
        raise ExportError(f"--onnx-exporter {onnx_exporter!r}: use auto, dynamo or legacy")
    if "onnx" in fmts and opset < 17:
        raise ExportError(f"--opset {opset}: ONNX weights need opset >= 17")
    if torchscript_method not in ("auto", "script", "trace"):
        raise ExportError(f"torchscript_method {torchscript_method!r}: use auto, script or trace")

    state, config, model_state = _load(Path(checkpoint), weights)
    if instances is None:
        instances = ingraph_available()
    elif instances and not ingraph_available():
        raise ExportError("instances=True needs spoco_zoo.cluster.ingraph (the in-graph clustering module)")
    dims = config.model.spatial_dims
    geo = package_geometry(config.model.depth)
    shape = default_test_shape(dims, geo, test_shape)
    name = _check_name(name or default_name(dims, bool(instances)))
    result = ExportResult(path=output, formats=fmts, instances=bool(instances), test_shape=shape)
    say(
        f"checkpoint {checkpoint}: {dims}D U-Net depth {config.model.depth}, "
        f"E={config.model.embedding_dim}, {weights} weights"
    )

    ig_kwargs = _ingraph_kwargs(config, ingraph_options) if instances else None
    clustering = clustering_config(config, ig_kwargs)
    result.clustering = clustering

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="spoco-export-") as tmp:
        stage = Path(tmp) / "package"
        stage.mkdir()
        # 2. architecture file -> model
        unet_kwargs = config.model.unet_kwargs()
        arch = (
            instances_architecture(unet_kwargs, ig_kwargs or {}) if instances else embeddings_architecture(unet_kwargs)
        )
        cls = load_architecture(arch, stage)
        model = cls(**arch.kwargs).eval()
        prefixed = {(f"unet.{k}" if instances else k): v for k, v in model_state.items()}
        try:
            model.load_state_dict(prefixed)
        except RuntimeError as err:
            from spoco_zoo.errors import CheckpointError

            raise CheckpointError(f"{checkpoint}: weights do not fit the stored model config: {err}") from err
        parameter_count = int(sum(p.numel() for p in model.parameters()))

        # 3. test tensors
        image, origin = _test_image(shape, config.model.in_channels, _n_objects(config, shape), seed)
        normalized = normalize(image, config.data.normalization)[None]
        image2, _ = _test_image(
            _second_shape(shape, geo), config.model.in_channels, _n_objects(config, shape), seed + 1
        )
        image2b, _ = _test_image(
            _second_shape(shape, geo), config.model.in_channels, _n_objects(config, shape), seed + 2
        )
        second = np.stack([normalize(image2, config.data.normalization), normalize(image2b, config.data.normalization)])
        inputs = [normalized, second]
        say(f"test input {tuple(normalized.shape)} ({origin}); second parity input {tuple(second.shape)}")
        reference = [_outputs(model, x) for x in inputs]
        np.save(stage / "test_input_raw.npy", image[None])
        np.save(stage / "test_output_embeddings.npy", reference[0][0].astype(np.float32))
        test_instances = None
        if instances:
            test_instances = stage / "test_output_instances.npy"
            np.save(test_instances, reference[0][1].astype(np.int32))
        samples = _write_samples(stage, image, reference[0])

        # 4. weights + parity
        files = WeightsFiles(architecture_callable=arch.callable, architecture_kwargs=_json_safe(arch.kwargs))
        outputs = ("embeddings", "instances") if instances else ("embeddings",)
        if "pytorch_state_dict" in fmts:
            path = stage / "weights_pytorch_state_dict.pt"
            torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, path)
            files.pytorch_state_dict, files.architecture = path, stage / arch.filename
            reloaded = cls(**arch.kwargs).eval()
            reloaded.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            parity = compare_outputs(
                "pytorch_state_dict", reference[:1], [_outputs(reloaded, inputs[0])], tolerance, label_mismatch_ppm
            )
            parity.raise_if_failed()
            result.parity["pytorch_state_dict"] = parity
            files.comments["pytorch_state_dict"] = f"spoco-zoo {weights} weights after {state.get('step', '?')} steps"
            say(f"pytorch_state_dict: {path.stat().st_size / 1e6:.2f} MB, architecture {arch.filename}:{arch.callable}")
        example = torch.from_numpy(normalized)
        if "torchscript" in fmts:
            from spoco_zoo.export.torchscript import save_torchscript, to_torchscript, torchscript_parity

            path = save_torchscript(
                to_torchscript(model, example, method=torchscript_method), stage / "weights_torchscript.pt"
            )
            parity = torchscript_parity(path, reference, inputs, tolerance, label_mismatch_ppm)
            parity.raise_if_failed()
            result.parity["torchscript"] = parity
            files.torchscript = path
            files.comments["torchscript"] = "scripted and frozen with torch.jit from the eager model"
            say(f"torchscript: max |diff| {parity.max_abs:.2e}")
        if "onnx" in fmts:
            from spoco_zoo.export.onnx import export_onnx, onnx_parity

            info = export_onnx(
                model,
                example,
                stage / "weights.onnx",
                spatial_dims=dims,
                step=geo.step,
                output_names=outputs,
                opset=opset,
                exporter=onnx_exporter,
            )
            parity = onnx_parity(info.path, reference, inputs, tolerance, label_mismatch_ppm)
            parity.raise_if_failed()
            result.parity["onnx"] = parity
            result.onnx_exporter, result.onnx_opset = info.exporter, info.opset
            files.onnx, files.onnx_opset = info.path, info.opset
            files.comments["onnx"] = (
                f"torch.onnx.export ({info.exporter} exporter), opset {info.opset}, dynamic batch and spatial axes"
            )
            if info.notes:
                result.notes.append(f"ONNX: fell back to the {info.exporter} exporter ({info.notes})")
            say(f"onnx ({info.exporter}, opset {info.opset}): max |diff| {parity.max_abs:.2e}")

        # 5. cover + card
        embeddings = reference[0][0][0]
        if dims == 3:  # the cover shows the middle z slice: cluster just that slice
            mid = embeddings.shape[1] // 2
            embeddings, cover_image = embeddings[:, mid], image[:, mid]
        else:
            cover_image = image
        labels, how = _cluster_for_cover(embeddings, clustering, seed)
        write_png(stage / "cover.png", make_cover(cover_image, embeddings, labels))
        say(f"cover: {how}, {len(np.unique(labels[labels > 0]))} instances on the test image")
        fraction = config.data.object_fraction
        description = description or (
            f"SPOCO pixel-embedding U-Net ({dims}D, {config.model.embedding_dim} channels) trained from sparse "
            f"object annotations ({100 * fraction:g}% of objects labelled) with spoco-zoo. Cluster the embeddings "
            "with config.spoco.clustering" + (" or use the in-graph 'instances' output." if instances else ".")
        )
        card = render_model_card(
            _card_values(
                name=name,
                description=description,
                config=config,
                state=state,
                weights=weights,
                formats=fmts,
                instances=bool(instances),
                geo=geo,
                parameter_count=parameter_count,
                parity=result.parity,
                clustering=clustering,
                test_origin=origin,
            ),
            card_template,
        )
        (stage / "README.md").write_text(card, encoding="utf-8")

        # 6. RDF + zip
        from spoco_zoo import __version__

        spoco = _json_safe(
            {
                "clustering": clustering,
                "loss": config.loss.model_dump(mode="json"),
                "normalization": config.data.normalization.model_dump(mode="json"),
                "model": config.model.model_dump(mode="json"),
                "training": {
                    "steps": state.get("step"),
                    "weights": weights,
                    "object_fraction": config.data.object_fraction,
                    "labels_are_sparse": config.data.labels_are_sparse,
                    "patch_shape": list(config.data.patch_shape),
                    "batch_size": config.data.batch_size,
                    "data": "synthetic" if config.data.train_images is None else "files",
                },
                "metrics": dict(state.get("metrics") or {}),
                "outputs": list(outputs),
                "geometry": {"min": geo.min_size, "step": geo.step, "halo": geo.halo},
                "spoco_zoo_version": __version__,
            }
        )
        training = {
            "training_preprocessing": f"{config.data.normalization.mode} normalisation per image and channel",
            "training_batch_size": float(config.data.batch_size),
            "initial_learning_rate": float(config.lr),
            "loss_function": "SPOCO (pull/push + instance Dice + consistency)",
            "loss_function_kwargs": _json_safe(config.loss.model_dump(mode="json")),
            "optimizer": "AdamW",
            "optimizer_kwargs": {"lr": float(config.lr), "weight_decay": float(config.weight_decay)},
        }
        base_tags = [
            "spoco",
            "instance-segmentation",
            "pixel-embeddings",
            "embeddings",
            "sparse-annotation",
            f"{dims}d",
            "unet",
            "pytorch",
        ]
        base_tags += [t for t in ("torchscript", "onnx") if t in fmts]
        descr = build_model_descr(
            RdfContent(
                name=name,
                description=description,
                authors=list(authors or ["spoco-zoo user"]),
                tags=[*base_tags, *tags],
                spatial_dims=dims,
                in_channels=config.model.in_channels,
                embedding_dim=config.model.embedding_dim,
                geometry=geo,
                normalization=config.data.normalization.model_dump(mode="json"),
                test_input=stage / "test_input_raw.npy",
                test_embeddings=stage / "test_output_embeddings.npy",
                test_instances=test_instances,
                samples=samples,
                cover=stage / "cover.png",
                documentation=stage / "README.md",
                weights=files,
                spoco_config=spoco,
                label_mismatch_ppm=label_mismatch_ppm,
                parameter_count=parameter_count,
                training=training,
                version=version,
            )
        )
        fd, tmp_zip = tempfile.mkstemp(prefix=f".{output.stem}.", suffix=".tmp.zip", dir=output.parent)
        os.close(fd)
        try:
            save_bioimageio_package(descr, output_path=Path(tmp_zip))
            with open(tmp_zip, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp_zip, 0o644)  # mkstemp creates 0600; packages are meant to be shared
            os.replace(tmp_zip, output)
        except Exception as err:
            if os.path.exists(tmp_zip):
                os.unlink(tmp_zip)
            if isinstance(err, ExportError):
                raise
            raise ExportError(f"{output}: writing the package failed: {err}") from err
    result.size_bytes = output.stat().st_size
    result.seconds = time.perf_counter() - started
    say(f"wrote {output} ({result.size_bytes / 1e6:.2f} MB) in {result.seconds:.1f} s")
    return result
