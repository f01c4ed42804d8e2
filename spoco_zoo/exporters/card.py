"""The model card: the package's ``README.md``, rendered from ``model_cards/spoco_model.md``.

:func:`card_values` writes the prose for the placeholders from the checkpoint and the export
(training data, preprocessing, outputs, parity, clustering, hints per tool);
:func:`render_model_card` fills the template (package data, found with :mod:`importlib.resources`).
"""

from __future__ import annotations

import datetime as _dt
import json
import string
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spoco_zoo.errors import ExportError
from spoco_zoo.exporters.common import PAPER_CITATION, PAPER_DOI, PackageGeometry
from spoco_zoo.exporters.parity import ParityResult

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

__all__ = ["DEFAULT_TEMPLATE", "default_template", "render_model_card", "card_values", "ingraph_effective"]

DEFAULT_TEMPLATE = "spoco_model.md"


def default_template() -> Traversable:
    """The model-card template shipped as package data (``model_cards/spoco_model.md``).

    Found through :mod:`importlib.resources`, so it works from a source tree, an editable install
    and a wheel alike.
    """
    return resources.files("spoco_zoo.model_cards").joinpath(DEFAULT_TEMPLATE)


def render_model_card(values: Mapping[str, object], template: Path | None = None) -> str:
    """Fill the template's ``${placeholders}`` with ``values``.

    Parameters
    ----------
    values:
        Placeholder name -> value (converted with ``str``).
    template:
        Template file; default :func:`default_template` (the card shipped with spoco-zoo).

    Raises
    ------
    ExportError
        The template cannot be read or uses a placeholder not in ``values`` (named in the message).
    """
    source: Traversable | Path = default_template() if template is None else Path(template)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as err:
        raise ExportError(f"{source}: cannot read model-card template: {err}") from err
    origin = str(source)
    try:
        return string.Template(text).substitute({k: str(v) for k, v in values.items()})
    except KeyError as err:
        raise ExportError(f"{origin}: unknown placeholder ${{{err.args[0]}}} (known: {sorted(values)})") from err
    except ValueError as err:
        raise ExportError(f"{origin}: invalid placeholder syntax ({err}); write a literal dollar sign as $$") from err


def ingraph_effective(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments of the in-graph clustering with its defaults filled in."""
    from spoco_zoo.cluster.graph_method import GRAPH_DECODER, ingraph_module

    module = ingraph_module(kwargs)
    names: tuple[str, ...] = ("bandwidth", "n_seeds", "n_iter", "gaussian", "max_instances", "min_size")
    names += ("split", "edge_threshold", "min_distance")
    out = {n: getattr(module, n) for n in names if hasattr(module, n)}
    if kwargs.get("decoder") == GRAPH_DECODER:
        out["decoder"] = GRAPH_DECODER
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def card_values(
    *,
    name: str,
    description: str,
    config: Any,
    state: Mapping[str, Any],
    weights: str,
    formats: Sequence[str],
    outputs: Sequence[str],
    geo: PackageGeometry,
    parameter_count: int,
    parity: Mapping[str, ParityResult],
    clustering: Mapping[str, Any],
    test_origin: str,
    consumers: Mapping[str, str] | None = None,
    publication: Any = None,
    weight_comments: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Values of the template's placeholders for one export (see ``templates/README.md``).

    Parameters
    ----------
    name, description:
        RDF name and description.
    config, state:
        The checkpoint's ``TrainConfig`` and checkpoint dict (step, metrics).
    weights:
        ``"student"`` or ``"teacher"``.
    formats, parity:
        Exported weight formats and their parity with eager PyTorch.
    outputs:
        The package's output ids (its variant).
    geo, parameter_count:
        Package geometry and the network's parameter count.
    clustering:
        The RDF's ``config["spoco"]["clustering"]``.
    test_origin:
        How the test image was made.
    consumers:
        Consumer -> what it gets, as checked at export (:func:`spoco_zoo.zoo.consumers.consumer_report`).
    publication:
        The :class:`spoco_zoo.exporters.metadata.Publication` (license).
    weight_comments:
        Per weight format, the RDF comment (versions).
    """
    instances = "instances" in outputs
    embeddings_out = "embeddings" in outputs
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
        emb = f"{p.max_abs:.2e}" if embeddings_out else "n/a (no embeddings output)"
        parity_rows.append(f"| {fmt} | {emb} | {labels} |")
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
    out_rows: list[str] = []
    if embeddings_out:
        out_rows.append(
            f"| output `embeddings` | axes `{', '.join(['b', 'c', *spatial.split(', ')])}`, "
            f"{model.out_channels} channels ({model.embedding_dim} embedding"
            + (", then a foreground logit: cluster only pixels where it is > 0" if model.foreground else "")
            + "), float32, same spatial size as the input |"
        )
    if instances:
        ig = ingraph_effective(clustering.get("ingraph", {}))
        out_rows.append(
            "| output `instances` | axes `"
            + ", ".join(["b", "c", *spatial.split(", ")])
            + "`, 1 channel, int32 labels (0 = background) |"
        )
        graph = ig.get("decoder") == "graph"
        if graph:
            how = (
                f"neighbouring pixels closer than {_fmt(ig.get('edge_threshold'))} in the embedding are one object"
                if ig.get("split") == "embedding"
                else "the foreground split by its distance transform, centres at least "
                f"{ig.get('min_distance')} px apart"
            )
            stage = (
                "label images computed *inside the model graph* by a local decoder: the foreground channel masks "
                f"the background, {how}, and fragments under {ig.get('min_size')} px join a neighbour -- the same "
                "algorithm and parameters as `spoco-zoo segment`, so every tool gets the same instances (measured on "
                "spoco-zoo's quickstart model with `benchmarks/consumer_instances.py`: SBD / mAP 0.910 / 0.725 at "
                "256x256, 0.889 / 0.689 at 1024x1024 and 0.930 / 0.786 at 2048x2048 through TorchScript, ONNX Runtime "
                "and `spoco-zoo segment` alike)"
            )
        else:
            stage = (
                "label images computed *inside the model graph* by a fixed-iteration mean-shift clustering of the "
                f"embeddings ({'Gaussian' if ig.get('gaussian') else 'flat'} kernel, "
                f"bandwidth {_fmt(ig.get('bandwidth'))}, {ig.get('n_seeds')} sampled seeds, {ig.get('n_iter')} "
                f"iterations, at most {ig.get('max_instances')} clusters including background)"
            )
        if embeddings_out:
            instances_text = (
                "The package has two outputs. `embeddings` are the raw network output. `instances` are "
                + stage
                + "."
                + (
                    ""
                    if graph
                    else " For the best quality, cluster the `embeddings` with the recommended Python clustering "
                    "below (local, block-wise mean-shift with connected components)."
                )
            )
        else:
            instances_text = (
                "The package has one output, `instances`: "
                + stage
                + ", for tools that run single-output models (ilastik)."
                + (
                    ""
                    if graph
                    else " The embeddings package of the same network (`--variant full`) gives better instances "
                    "through the recommended Python clustering."
                )
            )
        if graph:
            limits = (
                "- The in-graph `instances` are computed per input window. A tool that predicts in tiles "
                "(bioimage.io's declared halo) gets, for objects that touch no tile border, the masks of its own "
                "whole-image pass, which pads the image border by the halo as its tiles do (measured with "
                "bioimageio.core: every such object identical at 1024x1024 and 2048x2048, "
                "`benchmarks/consumer_instances.py`); a pass without that padding differs for a few objects within "
                "the halo of the image border (93-95 % identical). Objects cut by a tile border are cut, and the "
                "ids of different tiles are hashed so that they rarely collide (about K1 x K2 / 2^24 for tiles of K1 "
                "and K2 objects). Ids are not consecutive and stay exact in float32. Predict whole images where "
                "possible, or use `spoco-zoo segment --blockwise`, which stitches objects across blocks.\n"
            )
        else:
            limits = (
                "- The in-graph `instances` are computed per input window: a tool that predicts in tiles gets labels "
                "that restart in every tile and objects cut at tile borders. Predict whole images where possible, or "
                "cluster the stitched `embeddings` (Python route).\n"
            )
    else:
        instances_text = (
            "The package outputs the embeddings only. Turn them into instances with the recommended "
            "clustering below (`spoco_zoo.postprocess.embeddings_to_instances`)."
        )
        limits = ""
    if len(set(geo.halo)) > 1:  # the patch rule lowered some axis's halo (docs/design.md, "Sizes and halo")
        axes_text = spatial.split(", ")
        limits += (
            f"- The declared halo is {geo.halo_text} ({', '.join(axes_text)}): along an axis where the training "
            "patch was thin, the halo is lowered so that an input as small as a training patch runs unpadded "
            f"(patch {'x'.join(str(p) for p in config.data.patch_shape)}). Tiles split along such an axis get "
            "less context than the network uses there; predict whole volumes along it, or tile the other axes.\n"
        )
    instances_row = "\n".join(out_rows) + "\n"
    consumer_rows = "\n".join(f"| {k} | {v} |" for k, v in (consumers or {}).items()) or "| - | not checked |"
    versions = "\n".join(f"- `{k}`: {v}" for k, v in (weight_comments or {}).items())
    license_id = getattr(publication, "license", "MIT") if publication is not None else "MIT"
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
        "valid_sizes": geo.sizes_text(spatial.split(", ")),
        "halo": geo.halo_text,
        "formats": ", ".join(f"`{f}`" for f in formats),
        "outputs_rows": instances_row,
        "consumers": consumer_rows,
        "weight_versions": versions,
        "variant_outputs": ", ".join(f"`{o}`" for o in outputs),
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
        "instances_limitations": limits,
        "citation": PAPER_CITATION,
        "doi": PAPER_DOI,
        "license": f"{license_id} (weights and this description).",
    }
