"""Checkpoint -> bioimage.io model package (.zip).

:func:`export_package` is a pipeline of named steps:

1. :func:`~spoco_zoo.exporters.plan.plan_export` -- the :class:`~spoco_zoo.exporters.options.ExportOptions`
   (each option checked when the object was made) applied to the checkpoint (``student`` or ``teacher``
   weights, :func:`~spoco_zoo.exporters.plan.load_weights`) and its ``TrainConfig``: a ``.zip`` target,
   geometry, clustering, name; the plan is final once made;
2. :func:`build_model` -- write the architecture source (``unet.py`` verbatim, or unet + in-graph
   clustering + wrappers when the variant has the ``instances`` output) and build the model
   *from that file*; the halo was measured on the weights when the plan was made
   (:func:`spoco_zoo.models.receptive_field.package_halo`);
3. :func:`~spoco_zoo.exporters.tensors.make_tensors` -- a synthetic raw test image, normalised
   exactly as in training, and the eager outputs;
4. :func:`~spoco_zoo.exporters.weights.write_weights` -- the weight formats, each checked against
   eager PyTorch (``max |diff| < 1e-4`` on two inputs of different sizes, else
   :class:`~spoco_zoo.errors.ExportError`);
5. :func:`write_cover` -- input | PCA of the embeddings | instances (recommended clustering);
6. :func:`~spoco_zoo.exporters.rdf.build_model_descr` -- the description, built once with
   ``bioimageio.spec`` (its ``README.md`` is a placeholder until step 8);
7. :func:`~spoco_zoo.zoo.consumers.consumer_report` -- what ilastik and deepImageJ get, checked on
   the description and the weight files;
8. :func:`~spoco_zoo.exporters.card.card_values` + :func:`~spoco_zoo.exporters.card.render_model_card`
   -- the model card, with the consumer rows; :func:`~spoco_zoo.exporters.rdf.set_documentation`
   then records it in the description (the entry holds the file's sha256);
9. :func:`write_zip` -- the package, written atomically (:func:`spoco_zoo.atomic.atomic_path`).

Validation with bioimageio.core is separate (:mod:`spoco_zoo.zoo.validate`); the
``spoco-zoo export`` command runs it by default.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spoco_zoo.atomic import atomic_path, check_writable
from spoco_zoo.errors import CheckpointError, ExportError
from spoco_zoo.exporters.metadata import Publication, package_tags, spoco_section, training_details
from spoco_zoo.exporters.options import ExportOptions
from spoco_zoo.exporters.parity import ParityResult
from spoco_zoo.exporters.plan import ExportPlan, plan_export
from spoco_zoo.exporters.rdf import set_documentation
from spoco_zoo.exporters.tensors import ExportTensors, make_tensors
from spoco_zoo.exporters.variants import get_variant
from spoco_zoo.exporters.weights import WrittenWeights, write_weights
from spoco_zoo.zoo.architecture import (
    ArchitectureSource,
    embeddings_architecture,
    instances_architecture,
    load_architecture,
)
from spoco_zoo.zoo.consumers import consumer_report

__all__ = [
    "ExportResult",
    "export_package",
    "build_model",
    "write_cover",
    "write_card",
    "describe_package",
    "publication_notes",
    "write_zip",
]


@dataclass
class ExportResult:
    """What :func:`export_package` wrote and measured.

    Attributes
    ----------
    path:
        The package (.zip).
    formats:
        Weight formats in the package.
    variant:
        The package variant (:mod:`spoco_zoo.exporters.variants`).
    outputs:
        Output ids of the package.
    weights:
        The weight writers' records (:class:`~spoco_zoo.exporters.weights.WrittenWeights`); the
        properties ``parity`` (per format, the comparison with eager PyTorch; ``pytorch_state_dict`` =
        the reloaded state dict), ``onnx_exporter``, ``onnx_opset``, ``onnx_ir_version`` and
        ``torchscript_file_version`` (``None`` without that format) read them.
    halo:
        The package halo per spatial axis (pixels per side).
    consumers:
        What each consumer gets, as checked at export (:func:`spoco_zoo.zoo.consumers.consumer_report`).
    seconds:
        Wall time of the export.
    size_bytes:
        Size of the zip.
    test_shape:
        Spatial shape of the test tensors.
    clustering:
        ``config["spoco"]["clustering"]`` of the RDF.
    notes:
        Remarks for the user (e.g. an ONNX exporter fallback).
    """

    path: Path
    formats: tuple[str, ...]
    variant: str
    outputs: tuple[str, ...]
    weights: WrittenWeights | None = None
    halo: tuple[int, ...] = ()
    consumers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    size_bytes: int = 0
    test_shape: tuple[int, ...] = ()
    clustering: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def instances(self) -> bool:
        """Whether the package has the ``instances`` output (its variant's)."""
        return get_variant(self.variant).has_instances

    @property
    def parity(self) -> dict[str, ParityResult]:
        return {} if self.weights is None else self.weights.parity

    @property
    def onnx_exporter(self) -> str | None:
        return None if self.weights is None else self.weights.onnx_exporter

    @property
    def onnx_opset(self) -> int | None:
        return None if self.weights is None else self.weights.onnx_opset

    @property
    def onnx_ir_version(self) -> int | None:
        return None if self.weights is None else self.weights.onnx_ir_version

    @property
    def torchscript_file_version(self) -> int | None:
        return None if self.weights is None else self.weights.torchscript_file_version


def build_model(stage: Path, plan: ExportPlan) -> tuple[ArchitectureSource, type, Any]:
    """Write the architecture file into ``stage`` and build the eval-mode model from it.

    With the in-graph clustering (``plan.ingraph``) the model is the variant's U-Net + clustering
    wrapper, whose state dict is the U-Net's under the prefix ``unet.``.

    Returns
    -------
    arch, cls, model:
        The architecture source, the class imported from the written file and the model.
    """
    unet_kwargs = plan.config.model.unet_kwargs()
    if not plan.variant.has_instances:
        arch = embeddings_architecture(unet_kwargs)
    else:
        arch = instances_architecture(unet_kwargs, dict(plan.ingraph or {}), plan.variant.callable)
    cls = load_architecture(arch, stage)
    model = cls(**arch.kwargs).eval()
    prefix = "unet." if plan.variant.has_instances else ""
    try:
        model.load_state_dict({f"{prefix}{k}": v for k, v in plan.model_state.items()})
    except RuntimeError as err:
        raise CheckpointError(f"{plan.checkpoint}: weights do not fit the stored model config: {err}") from err
    return arch, cls, model


def _parameter_count(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def write_cover(path: Path, tensors: ExportTensors, clustering: Mapping[str, Any]) -> str:
    """Cover image (input | PCA of the embeddings | instances) of the test image; returns a summary.

    The instances come from the package's recommended clustering
    (:func:`spoco_zoo.postprocess.embeddings_to_instances`); for 3D models the volume is
    clustered and its middle z slice shown.
    """
    from spoco_zoo.exporters.cover import make_cover, write_png
    from spoco_zoo.postprocess import embeddings_to_instances

    embeddings, image = tensors.embeddings, tensors.image
    labels = np.asarray(embeddings_to_instances(embeddings, dict(clustering)))
    if embeddings.ndim == 4:  # [E, z, y, x]: the middle z slice
        mid = embeddings.shape[1] // 2
        embeddings, image, labels = embeddings[:, mid], image[:, mid], labels[mid]
    if clustering.get("foreground") is not None:  # the PCA shows the embedding channels only
        embeddings = embeddings[:-1]
    write_png(path, make_cover(image, embeddings, labels))
    return f"{clustering['method']}, {len(np.unique(labels[labels > 0]))} instances on the test image"


def write_card(
    path: Path,
    plan: ExportPlan,
    model: Any,
    tensors: ExportTensors,
    written: WrittenWeights,
    consumers: Mapping[str, str],
    template: Path | None = None,
) -> None:
    """Render the model card (:mod:`spoco_zoo.exporters.card`) for this export into ``path``."""
    from spoco_zoo.exporters.card import card_values, render_model_card

    values = card_values(
        name=plan.name,
        description=plan.description,
        config=plan.config,
        state=plan.state,
        weights=plan.weights,
        formats=plan.formats,
        outputs=plan.outputs,
        geo=plan.geometry,
        parameter_count=_parameter_count(model),
        parity=written.parity,
        clustering=plan.clustering,
        test_origin=tensors.origin,
        consumers=consumers,
        publication=plan.publication,
        weight_comments=written.files.comments,
    )
    path.write_text(render_model_card(values, template), encoding="utf-8")


def describe_package(stage: Path, plan: ExportPlan, model: Any, tensors: ExportTensors, written: WrittenWeights) -> Any:
    """The validated ``bioimageio.spec`` model description of the files in ``stage``."""
    from spoco_zoo.exporters.rdf import RdfContent, build_model_descr

    config, geo = plan.config, plan.geometry
    spoco = spoco_section(
        config, plan.state, weights=plan.weights, clustering=plan.clustering, outputs=plan.outputs, geometry=geo
    )
    return build_model_descr(
        RdfContent(
            name=plan.name,
            description=plan.description,
            authors=plan.publication.authors,
            maintainers=plan.publication.maintainers,
            license=plan.publication.license,
            git_repo=plan.publication.git_repo,
            tags=package_tags(plan.spatial_dims, plan.formats, plan.tags),
            spatial_dims=plan.spatial_dims,
            in_channels=config.model.in_channels,
            embedding_dim=config.model.embedding_dim,
            foreground=config.model.foreground,
            geometry=geo,
            normalization=config.data.normalization.model_dump(mode="json"),
            test_input=tensors.test_input,
            test_outputs=tensors.test_outputs,
            samples=tensors.samples,
            cover=stage / "cover.png",
            documentation=stage / "README.md",
            weights=written.files,
            spoco_config=spoco,
            label_mismatch_ppm=plan.options.label_mismatch_ppm,
            parameter_count=_parameter_count(model),
            training=training_details(config),
            version=plan.publication.version,
            pixel_size=plan.pixel_size,
        )
    )


def publication_notes(publication: Publication) -> list[str]:
    """Reminders of what bioimage.io still needs before the package can be uploaded."""
    return [f"for bioimage.io add {item}" for item in publication.missing()]


def write_zip(descr: Any, output: Path) -> None:
    """Save the package atomically: an existing ``output`` is replaced only when the zip is complete.

    Raises
    ------
    ExportError
        ``bioimageio.spec`` could not write the package (the message names ``output``).
    """
    from bioimageio.spec import save_bioimageio_package

    try:
        with atomic_path(output) as tmp:
            save_bioimageio_package(descr, output_path=tmp)
    except ExportError:
        raise
    except Exception as err:
        raise ExportError(f"{output}: writing the package failed: {err}") from err


def export_package(
    checkpoint: str | Path,
    output: str | Path,
    options: ExportOptions | None = None,
    *,
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
    options:
        What to make (:class:`~spoco_zoo.exporters.options.ExportOptions`: formats, weights, variant,
        metadata, halo, test shape, converters, parity limits); ``None``: the defaults, i.e. the ``full``
        variant with all three weight formats.
    log:
        Called with one line per step (progress reporting).

    Returns
    -------
    ExportResult

    Raises
    ------
    spoco_zoo.errors.CheckpointError
        Missing, corrupt or incompatible checkpoint (the message names the file).
    spoco_zoo.errors.ExportError
        An option that does not fit the model, conversion failure, parity failure (with the numbers) or
        a description the spec rejects.
    OSError
        The folder of ``output`` cannot be written (checked before the conversions).

    Examples
    --------
    >>> from spoco_zoo.exporters.options import ExportOptions
    >>> options = ExportOptions(variant="instances", formats="torchscript,onnx", authors=["Ada;github_user=ada"])
    >>> export_package("runs/quickstart/best.pt", "nuclei.zip", options)  # doctest: +SKIP
    """
    started = time.perf_counter()
    options = options or ExportOptions()
    plan = plan_export(Path(checkpoint), Path(output), options)
    say = log or (lambda _msg: None)
    say(f"checkpoint {plan.checkpoint}: {plan.summary()}")

    result = ExportResult(
        plan.output,
        plan.formats,
        plan.variant.name,
        plan.outputs,
        test_shape=plan.shape,
        clustering=plan.clustering,
        halo=plan.geometry.halo,
    )
    check_writable(plan.output.parent)  # a read-only or missing folder fails now, not after the conversions
    with tempfile.TemporaryDirectory(prefix="spoco-export-") as tmp:
        stage = Path(tmp) / "package"
        stage.mkdir()
        arch, cls, model = build_model(stage, plan)
        tensors = make_tensors(stage, model, plan.config, plan.shape, plan.geometry, options.seed, plan.outputs)
        say(f"test input {tuple(tensors.inputs[0].shape)} ({tensors.origin}); second {tuple(tensors.inputs[1].shape)}")
        written = write_weights(stage, plan, arch, cls, model, tensors, log=say)
        result.weights = written
        result.notes.extend(written.notes)
        say(f"cover: {write_cover(stage / 'cover.png', tensors, plan.clustering)}")
        card = stage / "README.md"
        card.write_text("(model card)\n", encoding="utf-8")  # replaced below, once the consumer checks ran
        descr = describe_package(stage, plan, model, tensors, written)
        result.consumers = consumer_report(descr, written, stage)
        write_card(card, plan, model, tensors, written, result.consumers, options.card_template)
        set_documentation(descr, card)  # the description recorded the placeholder's sha256
        write_zip(descr, plan.output)
        for line in publication_notes(plan.publication):
            result.notes.append(line)
    result.size_bytes = plan.output.stat().st_size
    result.seconds = time.perf_counter() - started
    say(f"wrote {plan.output} ({result.size_bytes / 1e6:.2f} MB) in {result.seconds:.1f} s")
    return result
