"""``spoco-zoo segment``: images -> pixel embeddings -> instance label TIFFs.

Two routes:

* ``--checkpoint CK`` (a spoco-zoo training checkpoint): the image is read with
  the model's ``spatial_dims``, normalised with the checkpoint's
  ``config.data.normalization``, predicted in tiles (:mod:`spoco_zoo.inference`)
  and clustered with :func:`spoco_zoo.cluster.cluster_embeddings`. Default
  clustering: the checkpoint's recommendation
  (:meth:`spoco_zoo.cluster.clustering_setting.ClusteringSetting.from_train_config`: method, kernel width
  = ``bandwidth`` or ``config.loss.delta_var``, ``min_size``, ``params``).
* ``--model ZIP`` (an exported bioimage.io package): the raw image goes through
  :func:`spoco_zoo.zoo.predict.zoo_predict` (bioimageio.core does the package's own
  preprocessing; ``--tile`` predicts in blocks of that core size plus the package's halo) and the
  embeddings are clustered with :func:`spoco_zoo.postprocess.embeddings_to_instances` using the
  package's ``config["spoco"]["clustering"]`` (a package of the ``instances`` variant gives its
  in-graph labels, whole images only).

Tiles of the network pass (``--tile``, ``--halo``) and blocks of the clustering (the
recommendation's ``block_shape``/``overlap``) are separate things: the embeddings are stitched
first, then clustered. The default halo is the network's (measured on its weights,
:func:`spoco_zoo.models.receptive_field.package_halo`; a package's is in its RDF).

``--method``, ``--param key=value`` (values parsed as YAML) and ``--min-size``
override the defaults; when ``--method`` changes the method, the defaults'
method-specific parameters are dropped (``min_size`` and ``background`` are kept).

Outputs, per input ``<stem>.<ext>``: ``OUT_DIR/<stem>_instances.tif`` (an ImageJ TIFF: uint16
with axes YX/ZYX and the input's pixel size when the input TIFF has one; uint32 above 65535
objects), with ``--overlay`` ``OUT_DIR/<stem>_overlay.png`` (outlines over the image), with
``--rois`` ``OUT_DIR/<stem>_rois.zip`` (ImageJ ROI Manager polygons) and with
``--save-embeddings`` ``OUT_DIR/<stem>_embeddings.tif`` (float32 ``[E, *S]``). Inputs that fail are
reported (message starting with the file) and the command exits with 1 after
processing the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from spoco_zoo.cli.reporting import fail, reports_errors
from spoco_zoo.cluster.settings import METHODS

# the clustering rules live with the segmenting code they serve (spoco_zoo.segmentation)
from spoco_zoo.segmentation import checkpoint_clustering, package_clustering  # noqa: F401

#: Supported input suffixes, longest first (the stem drops them).
INPUT_SUFFIXES: tuple[str, ...] = (".ome.tiff", ".ome.tif", ".zarr.zip", ".tiff", ".tif", ".hdf5", ".hdf", ".h5")
INPUT_SUFFIXES += (".zarr", ".jpeg", ".jpg", ".png", ".bmp")  # .jpeg ... .bmp: 2D PNG/JPEG/BMP images


def input_stem(path: Path) -> str:
    """File name without its image suffix (``a.ome.tif`` -> ``a``, ``b.zarr.zip`` -> ``b``)."""
    name = path.name
    lower = name.lower()
    for suffix in INPUT_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return path.stem


def _is_image_file(path: Path) -> bool:
    return path.name.lower().endswith(INPUT_SUFFIXES)


def expand_inputs(paths: Sequence[Path]) -> list[Path]:
    """Files as given; a folder (other than a ``.zarr`` store) stands for its image files.

    Raises
    ------
    FileNotFoundError
        Naming the first path that does not exist, or a folder without images.
    """
    out: list[Path] = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        if path.is_dir() and not path.name.lower().endswith(".zarr"):
            found = sorted(p for p in path.iterdir() if _is_image_file(p) and not p.name.startswith("."))
            if not found:
                raise FileNotFoundError(f"{path}: folder holds no TIFF/HDF5/Zarr/PNG/JPEG/BMP image")
            out.extend(found)
        else:
            out.append(path)
    return out


def parse_shape(text: str | None, ndim: int, name: str) -> tuple[int, ...] | None:
    """``"256,256"`` -> ``(256, 256)``; one value is repeated for every axis."""
    if text is None or text.strip() == "":
        return None
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError as err:
        raise typer.BadParameter(f"{text!r}: expected integers like 256,256", param_hint=name) from err
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim or min(values) < (0 if name == "--halo" else 1):
        raise typer.BadParameter(
            f"{text!r}: expected {ndim} {'non-negative' if name == '--halo' else 'positive'} values "
            f"for a {ndim}D model",
            param_hint=name,
        )
    return values


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``["bandwidth=0.4", "kernel=flat"]`` -> ``{"bandwidth": 0.4, "kernel": "flat"}`` (YAML values)."""
    import yaml

    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} must look like key=value", param_hint="--param")
        try:
            params[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise typer.BadParameter(f"{item!r}: cannot parse the value: {err}", param_hint="--param") from err
    return params


def register(app: typer.Typer) -> None:
    @app.command("segment")
    @reports_errors(code=1)
    def segment(
        inputs: list[Path] = typer.Argument(..., help="Images (TIFF, HDF5, Zarr) or folders of images."),
        checkpoint: Path | None = typer.Option(None, "--checkpoint", "-c", help="spoco-zoo checkpoint (.pt)."),
        model: Path | None = typer.Option(None, "--model", "-m", help="Exported bioimage.io package (.zip)."),
        output: Path = typer.Option(..., "--output", "-o", help="Output folder."),
        method: str | None = typer.Option(
            None, "--method", help="mean_shift | hdbscan | consistency (default: the model's recommendation)."
        ),
        param: list[str] = typer.Option([], "--param", "-p", help="Clustering parameter: --param bandwidth=0.4"),
        min_size: int | None = typer.Option(None, "--min-size", min=0, help="Drop objects smaller than this."),
        tile: str | None = typer.Option(
            None, "--tile", help="Predict in tiles of this core per axis, e.g. 256,256 (default: whole image)."
        ),
        halo: str | None = typer.Option(
            None,
            "--halo",
            help="Context per side of a tile, one value or one per axis (default: the network's halo, measured "
            "on its weights; --model: the package's).",
        ),
        overlay: bool = typer.Option(
            False, "--overlay", help="Also write <stem>_overlay.png (outlines over the image)."
        ),
        rois: bool = typer.Option(False, "--rois", help="Also write <stem>_rois.zip (ImageJ ROI Manager polygons)."),
        key: str | None = typer.Option(None, "--key", help="Dataset key inside HDF5/Zarr inputs."),
        save_embeddings: bool = typer.Option(False, "--save-embeddings", help="Also write <stem>_embeddings.tif."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
        weights: str = typer.Option("student", "--weights", help="student | teacher (checkpoint only)."),
        weight_format: str | None = typer.Option(
            None,
            "--weight-format",
            help="pytorch_state_dict | torchscript | onnx (--model only; default: the first the package has). "
            "TorchScript and ONNX run no Python from the package.",
        ),
        trust_package_code: bool = typer.Option(
            False,
            "--trust-package-code",
            help="--model only: also run Python shipped in the package (architecture source, custom processing) "
            "when it is not the installed spoco-zoo's. Only for packages whose author you trust.",
        ),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        blockwise: bool = typer.Option(
            False, "--blockwise", help="Predict, cluster and stitch block by block (images of any size)."
        ),
        zarr_out: bool = typer.Option(False, "--zarr", help="Write OUT/<stem>_instances.ome.zarr (block-wise)."),
        scheduler: str | None = typer.Option(
            None, "--scheduler", help="Block-wise on dask.distributed: 'local' or a scheduler address."
        ),
        workers: int = typer.Option(2, "--workers", min=1, help="Workers of --scheduler local."),
        work_dir: Path | None = typer.Option(None, "--work-dir", help="Temporary block stores (shared on a cluster)."),
    ) -> None:
        """Segment images into instances: embeddings from a checkpoint or bioimage.io package, then clustering.

        Writes OUT/<stem>_instances.tif (ImageJ TIFF with the input's pixel size) per input; with
        --overlay OUT/<stem>_overlay.png, with --rois OUT/<stem>_rois.zip (ImageJ ROIs), with
        --save-embeddings OUT/<stem>_embeddings.tif (float32 [E, *S]).
        """
        if (checkpoint is None) == (model is None):
            raise typer.BadParameter(
                "give exactly one of --checkpoint (spoco-zoo checkpoint) or --model (bioimage.io package)",
                param_hint="--checkpoint / --model",
            )
        if method is not None and method not in METHODS:
            raise typer.BadParameter(f"{method!r} is not one of {', '.join(METHODS)}", param_hint="--method")
        if weights not in ("student", "teacher"):
            raise typer.BadParameter(f"{weights!r} is not student or teacher", param_hint="--weights")
        if weight_format is not None:
            from spoco_zoo.zoo.formats import WEIGHT_FORMATS

            if weight_format not in WEIGHT_FORMATS:
                raise typer.BadParameter(
                    f"{weight_format!r} is not one of {', '.join(WEIGHT_FORMATS)}", param_hint="--weight-format"
                )
        params = parse_params(param)
        try:
            files = expand_inputs(inputs)
        except FileNotFoundError as err:
            fail(str(err))
        stems: dict[str, Path] = {}
        for path in files:
            stem = input_stem(path)
            if stem in stems:
                fail(f"{path}: gives the same output name {stem!r} as {stems[stem]}; rename one of them")
            stems[stem] = path
        source = checkpoint if checkpoint is not None else model
        assert source is not None
        if not source.exists():
            fail(f"{source}: no such file")

        import numpy as np

        from spoco_zoo.data.imagej import read_pixel_size, write_label_tiff, write_roi_zip
        from spoco_zoo.data.io import read_image, write_image
        from spoco_zoo.devices import resolve_device
        from spoco_zoo.errors import DataError, PackageError

        try:
            dev = resolve_device(device)
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint="--device") from err

        if checkpoint is not None:
            from spoco_zoo.errors import CheckpointError
            from spoco_zoo.segmentation import segment_with_checkpoint, segmenter_from_state, untuned_note
            from spoco_zoo.train.checkpoint import load_checkpoint

            try:
                state = load_checkpoint(checkpoint, map_location="cpu")
                dims = state["config"].model.spatial_dims
            except CheckpointError as err:
                fail(str(err))
            tile_shape = parse_shape(tile, dims, "--tile")
            halo_shape = parse_shape(halo, dims, "--halo")
            if halo is not None and halo_shape is None:
                raise typer.BadParameter("give one value, or one per axis (0 for no context)", param_hint="--halo")
            try:
                segmenter = segmenter_from_state(
                    state,
                    checkpoint,
                    weights,  # type: ignore[arg-type]
                    method,
                    params,
                    min_size,
                    halo_shape,
                )
            except CheckpointError as err:
                fail(str(err))
            note = untuned_note(segmenter)
            if note is not None:
                typer.echo(note, err=True)
            net, config, halo_shape = segmenter.net, segmenter.config, segmenter.halo
            chosen = segmenter.clustering.method
            kwargs = {k: v for k, v in segmenter.clustering.as_dict().items() if k != "method"}
            if blockwise or zarr_out or scheduler is not None:  # spoco_zoo.blockwise: any size, Zarr, Dask
                from spoco_zoo.blockwise.run import segment_files
                from spoco_zoo.memory import keep_freed_memory

                keep_freed_memory()  # block after block of the same size: their arrays reused, not mapped anew

                output.mkdir(parents=True, exist_ok=True)
                options = dict(net=net, config=config, method=chosen, kwargs=kwargs, key=key, device=dev)
                options.update(tile_shape=tile_shape, halo=halo_shape, work_dir=work_dir)
                echo = typer.echo
                raise typer.Exit(segment_files(stems, output, zarr_out, scheduler, workers, echo, **options))

            def run(path: Path) -> tuple[Any, Any, Any]:
                image = read_image(path, key=key, spatial_dims=dims)
                labels, emb = segment_with_checkpoint(segmenter, image, tile_shape, dev, progress, source=path)
                return labels, emb, image

            typer.echo(
                f"model: {checkpoint} ({weights}, {dims}D) on {dev}; "
                f"tiles: {tile_shape or 'whole image (tiled above 2048x2048 pixels)'}, "
                f"halo {list(halo_shape)}; clustering: {chosen} {kwargs}"
            )
        else:
            assert model is not None
            from spoco_zoo.segmentation import package_weight_format, segment_with_package

            if halo is not None:
                typer.echo("note: --halo is ignored with --model (the package's halo is used)", err=True)
            # the package is checked once, before any image: its errors name the package (exit 1)
            chosen_format = package_weight_format(model, weight_format, trust_package_code=trust_package_code)

            def run(path: Path) -> tuple[Any, Any, Any]:
                image = read_image(path, key=key)
                tile_shape = parse_shape(tile, image.ndim - 1, "--tile")
                labels, emb = segment_with_package(
                    model,
                    image,
                    chosen_format,
                    tile_shape=tile_shape,
                    device=str(dev),
                    trust_package_code=trust_package_code,
                    method=method,
                    params=params,
                    min_size=min_size,
                )
                return labels, emb, image

            typer.echo(f"model: {model} (bioimage.io package, {chosen_format} weights); tiles: {tile or 'whole image'}")

        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            fail(f"{output}: cannot create the output folder: {err}")
        failed: list[str] = []
        for stem, path in stems.items():
            try:
                labels, emb, image = run(path)
                labels = np.asarray(labels)
                out = write_label_tiff(output / f"{stem}_instances.tif", labels, read_pixel_size(path))
                extra = []
                if save_embeddings and emb is not None:
                    extra.append(f"embeddings {write_image(output / f'{stem}_embeddings.tif', np.asarray(emb))}")
                if overlay:
                    from spoco_zoo.overlay import write_overlay

                    extra.append(f"overlay {write_overlay(output / f'{stem}_overlay.png', image, labels)}")
                if rois:
                    roi_path, n_rois = write_roi_zip(output / f"{stem}_rois.zip", labels)
                    extra.append(f"{n_rois} ROIs {roi_path}")
            except PackageError:
                raise  # about the package, not this image: reported once (reports_errors)
            except (DataError, ValueError, RuntimeError, OSError) as err:
                message = str(err)
                if str(path) not in message:
                    message = f"{path}: {message}"
                typer.echo(f"error: {message}", err=True)
                failed.append(str(path))
                continue
            n_objects = int(np.unique(labels[labels > 0]).size)
            line = f"{path} -> {out} ({n_objects} objects, shape {tuple(labels.shape)})"
            typer.echo(", ".join([line, *extra]))
        if failed:
            typer.echo(f"{len(failed)} of {len(stems)} input(s) failed: {', '.join(failed)}", err=True)
            raise typer.Exit(1)
