"""The bioimage.io model description (format 0.5), built with the ``bioimageio.spec`` API.

Layout of the description (see ``docs/design.md``, "Exported package"):

* input ``raw``: ``batch, channel (C), [z,] y, x``; spatial sizes
  ``ParameterizedSize(min=2*halo + 2**depth, step=2**depth)``; preprocessing = the
  checkpoint's normalisation (``scale_range`` with percentiles, or
  ``zero_mean_unit_variance``) per sample and per channel (``axes`` = the
  spatial axes), so raw images go in;
* outputs, by variant (:mod:`spoco_zoo.exporters.variants`): ``embeddings``
  (``batch, channel (E), [z,] y, x``, float32) and/or ``instances`` (``batch, channel (1),
  [z,] y, x`` int32 labels from the in-graph clustering, with a reproducibility allowance for
  label flips in ``config.bioimageio.reproducibility_tolerance``); spatial sizes by
  ``SizeReference`` to ``raw`` and a halo (see :func:`spoco_zoo.exporters.common.package_geometry`);
  the outputs have the input's axes in the input's order (ilastik assumes so);
* ``config.spoco``: clustering recommendation, loss settings, normalisation,
  training summary, spoco-zoo version.

Network use: with ``perform_io_checks`` (which bioimageio.core always switches on for testing)
every http(s) URL is probed and every ``github_user`` is looked up at api.github.com. Without
``--git-repo`` and ``--maintainer`` (the defaults) the description holds neither -- citations
are DOIs -- and it validates offline; with them, validation needs the network (as the zoo's
upload does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spoco_zoo.errors import ExportError
from spoco_zoo.exporters.common import PAPER_ARXIV_DOI, PAPER_CITATION, PAPER_DOI, PackageGeometry

__all__ = ["WeightsFiles", "RdfContent", "build_model_descr", "set_documentation", "SPATIAL_AXES"]

SPATIAL_AXES = {2: ("y", "x"), 3: ("z", "y", "x")}


@dataclass
class WeightsFiles:
    """Weight files to describe; ``None`` = format not exported."""

    pytorch_state_dict: Path | None = None
    architecture: Path | None = None
    architecture_callable: str = "UNet"
    architecture_kwargs: dict[str, Any] = field(default_factory=dict)
    torchscript: Path | None = None
    onnx: Path | None = None
    onnx_opset: int = 18
    comments: dict[str, str] = field(default_factory=dict)


@dataclass
class RdfContent:
    """Everything :func:`build_model_descr` needs (files are local paths)."""

    name: str
    description: str
    authors: Sequence[dict[str, str]]
    tags: Sequence[str]
    spatial_dims: int
    in_channels: int
    embedding_dim: int
    geometry: PackageGeometry
    normalization: dict[str, Any]
    test_input: Path
    test_outputs: dict[str, Path]
    cover: Path
    documentation: Path
    weights: WeightsFiles
    spoco_config: dict[str, Any]
    samples: dict[str, Path] = field(default_factory=dict)
    label_mismatch_ppm: float = 1000.0
    #: the network's last output channel is a foreground logit (after the embedding channels)
    foreground: bool = False
    parameter_count: int | None = None
    training: dict[str, Any] = field(default_factory=dict)
    version: str | None = None
    license: str = "MIT"
    maintainers: Sequence[dict[str, str]] = ()
    git_repo: str | None = None
    #: micrometres per pixel along the spatial axes (z, y, x / y, x): the space axes' ``scale``
    pixel_size: tuple[float, ...] | None = None


def _scale(pixel_size: Sequence[float] | None, axis: int) -> dict[str, Any]:
    """The ``scale`` and ``unit`` of the ``axis``-th space axis (nothing when no pixel size is known)."""
    if pixel_size is None:
        return {}
    return {"scale": float(pixel_size[axis]), "unit": "micrometer"}


def _preprocessing(normalization: dict[str, Any], axes: Sequence[str]) -> list[Any]:
    from bioimageio.spec.model.v0_5 import (
        AxisId,
        ScaleRangeDescr,
        ScaleRangeKwargs,
        ZeroMeanUnitVarianceDescr,
        ZeroMeanUnitVarianceKwargs,
    )

    mode = normalization.get("mode", "percentile")
    eps = float(normalization.get("eps", 1e-6))
    if not 0 < eps <= 0.1:
        raise ExportError(f"data.normalization.eps = {eps}: bioimage.io preprocessing needs 0 < eps <= 0.1")
    ax = [AxisId(a) for a in axes]
    if mode == "percentile":
        p_low, p_high = float(normalization["p_low"]), float(normalization["p_high"])
        if p_high <= 1:
            raise ExportError(
                f"data.normalization.p_high = {p_high}: bioimage.io scale_range needs max_percentile > 1 "
                "(percentiles are given in 0..100)"
            )
        return [ScaleRangeDescr(kwargs=ScaleRangeKwargs(axes=ax, min_percentile=p_low, max_percentile=p_high, eps=eps))]
    if mode == "zero_mean_unit_variance":
        return [ZeroMeanUnitVarianceDescr(kwargs=ZeroMeanUnitVarianceKwargs(axes=ax, eps=eps))]
    raise ExportError(f"data.normalization.mode = {mode!r} has no bioimage.io equivalent")


def _sample(samples: dict[str, Path], tensor_id: str) -> dict[str, Any]:
    """``sample_tensor`` kwargs (an image file for humans) when one was written."""
    from bioimageio.spec.model.v0_5 import FileDescr

    path = samples.get(tensor_id)
    return {"sample_tensor": FileDescr(source=path)} if path is not None else {}


def build_model_descr(content: RdfContent) -> Any:
    """Build and validate the ``bioimageio.spec.model.v0_5.ModelDescr``.

    Raises
    ------
    ExportError
        A field is rejected by the spec (the pydantic message is included).
    """
    import torch
    from bioimageio.spec.model.v0_5 import (
        ArchitectureFromFileDescr,
        Author,
        AxisId,
        BatchAxis,
        BioimageioConfig,
        ChannelAxis,
        CiteEntry,
        Config,
        Doi,
        FileDescr,
        Identifier,
        InputTensorDescr,
        IntervalOrRatioDataDescr,
        LicenseId,
        Maintainer,
        ModelDescr,
        OnnxWeightsDescr,
        OutputTensorDescr,
        ParameterizedSize,
        PytorchStateDictWeightsDescr,
        ReproducibilityTolerance,
        SizeReference,
        SpaceInputAxis,
        SpaceOutputAxis,
        SpaceOutputAxisWithHalo,
        TensorId,
        TorchscriptWeightsDescr,
        TrainingDetails,
        Version,
        WeightsDescr,
    )

    c = content
    axes = SPATIAL_AXES[c.spatial_dims]
    geo = c.geometry
    raw_id = TensorId("raw")
    torch_version = Version(torch.__version__.split("+")[0])
    try:
        raw = InputTensorDescr(
            id=raw_id,
            description="raw image, not normalised (the package applies the preprocessing)",
            axes=[
                BatchAxis(),
                ChannelAxis(channel_names=["raw"] if c.in_channels == 1 else [f"raw{i}" for i in range(c.in_channels)]),
                *[
                    SpaceInputAxis(
                        id=AxisId(a),
                        size=ParameterizedSize(min=geo.min_size[i], step=geo.step),
                        **_scale(c.pixel_size, i),
                    )
                    for i, a in enumerate(axes)
                ],
            ],
            test_tensor=FileDescr(source=c.test_input),
            **_sample(c.samples, "raw"),
            data=IntervalOrRatioDataDescr(type="float32"),
            preprocessing=_preprocessing(c.normalization, axes),
        )

        def space_out() -> list[Any]:
            out: list[Any] = []
            for i, a in enumerate(axes):
                size = SizeReference(tensor_id=raw_id, axis_id=AxisId(a))
                if geo.halo[i]:
                    out.append(
                        SpaceOutputAxisWithHalo(id=AxisId(a), size=size, halo=geo.halo[i], **_scale(c.pixel_size, i))
                    )
                else:  # the spec's halo is >= 1: an axis without one is a plain output axis
                    out.append(SpaceOutputAxis(id=AxisId(a), size=size, **_scale(c.pixel_size, i)))
            return out

        outputs = []
        tolerances = []
        if "embeddings" in c.test_outputs:
            outputs.append(
                OutputTensorDescr(
                    id=TensorId("embeddings"),
                    description=(
                        f"{c.embedding_dim}-dimensional pixel embeddings, then a foreground logit: cluster the pixels "
                        "where it is > 0"
                        if c.foreground
                        else f"{c.embedding_dim}-dimensional pixel embeddings (cluster them into instances)"
                    ),
                    axes=[
                        BatchAxis(),
                        ChannelAxis(
                            channel_names=[f"e{i}" for i in range(c.embedding_dim)]
                            + (["foreground"] if c.foreground else [])
                        ),
                        *space_out(),
                    ],
                    test_tensor=FileDescr(source=c.test_outputs["embeddings"]),
                    **_sample(c.samples, "embeddings"),
                    data=IntervalOrRatioDataDescr(type="float32"),
                )
            )
        if "instances" in c.test_outputs:
            outputs.append(
                OutputTensorDescr(
                    id=TensorId("instances"),
                    description="instance labels (0 = background) from in-graph mean-shift clustering",
                    axes=[BatchAxis(), ChannelAxis(channel_names=["instances"]), *space_out()],
                    test_tensor=FileDescr(source=c.test_outputs["instances"]),
                    **_sample(c.samples, "instances"),
                    data=IntervalOrRatioDataDescr(type="int32", range=(0, None)),
                )
            )
            tolerances.append(
                ReproducibilityTolerance(
                    relative_tolerance=0.0,
                    absolute_tolerance=0.0,
                    mismatched_elements_per_million=int(c.label_mismatch_ppm),
                    output_ids=[TensorId("instances")],
                )
            )
        if not outputs:
            raise ExportError("the package needs at least one output")

        w = c.weights
        entries: dict[str, Any] = {}
        root = (
            "pytorch_state_dict"
            if w.pytorch_state_dict is not None
            else ("torchscript" if w.torchscript is not None else "onnx")
        )

        def parent_of(fmt: str) -> Any:
            # the first exported format is the "original"; the others were converted from it
            return None if fmt == root else root

        if w.pytorch_state_dict is not None:
            if w.architecture is None:
                raise ExportError("pytorch_state_dict weights need an architecture file")
            entries["pytorch_state_dict"] = PytorchStateDictWeightsDescr(
                source=w.pytorch_state_dict,
                architecture=ArchitectureFromFileDescr(
                    source=w.architecture, callable=Identifier(w.architecture_callable), kwargs=w.architecture_kwargs
                ),
                pytorch_version=torch_version,
                comment=w.comments.get("pytorch_state_dict", ""),
            )
        if w.torchscript is not None:
            entries["torchscript"] = TorchscriptWeightsDescr(
                source=w.torchscript,
                pytorch_version=torch_version,
                parent=parent_of("torchscript"),
                comment=w.comments.get("torchscript", ""),
            )
        if w.onnx is not None:
            entries["onnx"] = OnnxWeightsDescr(
                source=w.onnx, opset_version=w.onnx_opset, parent=parent_of("onnx"), comment=w.comments.get("onnx", "")
            )
        if not entries:
            raise ExportError("no weight format selected")

        training = TrainingDetails(**c.training) if c.training else TrainingDetails()
        descr = ModelDescr(
            name=c.name,
            description=c.description,
            authors=[Author(**a) for a in c.authors],
            maintainers=[Maintainer(**m) for m in c.maintainers],
            git_repo=c.git_repo,
            cite=[
                CiteEntry(text=PAPER_CITATION, doi=Doi(PAPER_DOI)),
                CiteEntry(
                    text="Wolny et al. (2021), arXiv:2103.14572 [preprint of the CVPR paper]", doi=Doi(PAPER_ARXIV_DOI)
                ),
            ],
            license=LicenseId(c.license),
            tags=list(dict.fromkeys(c.tags)),
            covers=[FileDescr(source=c.cover)],
            documentation=FileDescr(source=c.documentation),
            inputs=[raw],
            outputs=outputs,
            weights=WeightsDescr(**entries),
            version=Version(c.version) if c.version else None,
            config=Config.model_validate(
                {
                    "bioimageio": BioimageioConfig(
                        reproducibility_tolerance=tolerances,
                        architecture_type="unet",
                        architecture_description="U-Net producing pixel embeddings (SPOCO)",
                        task="instance-segmentation",
                        model_parameter_count=c.parameter_count,
                        training=training,
                    ),
                    "spoco": c.spoco_config,  # an extra section of Config
                }
            ),
        )
    except ExportError:
        raise
    except Exception as err:  # pydantic ValidationError and friends
        raise ExportError(f"bioimage.io model description rejected: {err}") from err
    return descr


def set_documentation(descr: Any, path: Path) -> None:
    """Point the description's ``documentation`` at ``path`` as the file is now.

    A ``FileDescr`` records its file's sha256 when it is built, so a documentation file rewritten
    after :func:`build_model_descr` no longer matches the description (saving the package fails
    with a sha256 mismatch). The entry is replaced in place; ``bioimageio.spec`` validates the
    assignment (``.md`` suffix, the card's validation section) and nothing else in the description
    depends on the file.

    Raises
    ------
    ExportError
        The spec rejects the file (the message is included).
    """
    from bioimageio.spec.model.v0_5 import FileDescr

    try:
        descr.documentation = FileDescr(source=path)
    except Exception as err:  # pydantic ValidationError and friends
        raise ExportError(f"{path}: bioimage.io documentation rejected: {err}") from err
