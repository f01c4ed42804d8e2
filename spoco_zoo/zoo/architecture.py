"""Architecture source files shipped with ``pytorch_state_dict`` weights.

bioimage.io rebuilds a ``pytorch_state_dict`` model from ONE source file plus a
callable name and keyword arguments. Two variants:

* embeddings only: ``spoco_zoo/models/unet.py`` verbatim (it imports only
  torch), callable ``UNet``, kwargs ``config.model.unet_kwargs()``;
* with the in-graph clustering: one generated file = ``unet.py`` + ``cluster/ingraph.py`` +
  ``cluster/graph.py`` (all torch-only) + two small wrappers: :data:`INSTANCES_CALLABLE` returning
  ``(embeddings, instances)`` (the ``full`` variant) and :data:`LABELS_CALLABLE`
  returning ``instances`` only (the single-output ``instances`` variant for ilastik and
  deepImageJ). The state dict of a wrapper is the U-Net's with the prefix ``unet.``
  (the clustering stage has no tensors).

The exporters import the very file they ship (:func:`load_architecture`) and
build every weight format from it, so what is tested is what is packaged.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spoco_zoo.errors import ExportError

__all__ = [
    "ArchitectureSource",
    "EMBEDDINGS_CALLABLE",
    "INSTANCES_CALLABLE",
    "LABELS_CALLABLE",
    "embeddings_architecture",
    "instances_architecture",
    "load_architecture",
    "INSTALLED_INSTANCES_CALLABLE",
    "installed_instances_model",
    "INSTALLED_LABELS_CALLABLE",
    "installed_labels_model",
]

EMBEDDINGS_CALLABLE = "UNet"
INSTANCES_CALLABLE = "SpocoUNetWithInstances"
#: The callable of this module that builds :data:`INSTANCES_CALLABLE` from the installed sources.
INSTALLED_INSTANCES_CALLABLE = "installed_instances_model"
LABELS_CALLABLE = "SpocoUNetInstanceLabels"
#: The callable of this module that builds :data:`LABELS_CALLABLE` from the installed sources.
INSTALLED_LABELS_CALLABLE = "installed_labels_model"

_WRAPPER = '''

# --------------------------------------------------------------------------------------
# Wrapper: embeddings and in-graph instance labels from one forward pass
# --------------------------------------------------------------------------------------
from typing import Any as _Any, Dict as _Dict, Optional as _Optional, Tuple as _Tuple


def _spoco_clustering(kwargs: _Optional[_Dict[str, _Any]]) -> nn.Module:
    """The in-graph stage: ``GraphInstances`` (``decoder="graph"``) or ``InGraphClustering``."""
    options = dict(kwargs or {})
    if options.pop("decoder", None) == "graph":
        return GraphInstances(**options)
    return InGraphClustering(**options)


class SpocoUNetWithInstances(nn.Module):
    """``UNet`` followed by the in-graph clustering (``GraphInstances`` or ``InGraphClustering``).

    ``forward(raw [B, C, *S]) -> (embeddings [B, E, *S] float32, instances [B, 1, *S] int32)``.
    Keyword arguments are those of ``UNet``; ``clustering`` holds those of the clustering stage
    (``decoder="graph"`` selects ``GraphInstances``). The state dict is the U-Net's under the prefix ``unet.``.
    """

    def __init__(self, clustering: _Optional[_Dict[str, _Any]] = None, **unet_kwargs: _Any) -> None:
        super().__init__()
        self.unet = UNet(**unet_kwargs)
        self.clustering = _spoco_clustering(clustering)

    def forward(self, x: torch.Tensor) -> _Tuple[torch.Tensor, torch.Tensor]:
        embeddings = self.unet(x)
        return embeddings, self.clustering(embeddings)


class SpocoUNetInstanceLabels(nn.Module):
    """``UNet`` followed by the in-graph clustering, one output: the instance labels.

    ``forward(raw [B, C, *S]) -> instances [B, 1, *S] int32``. Same arguments and state dict as
    ``SpocoUNetWithInstances``; for tools that run single-output models only (ilastik).
    """

    def __init__(self, clustering: _Optional[_Dict[str, _Any]] = None, **unet_kwargs: _Any) -> None:
        super().__init__()
        self.unet = UNet(**unet_kwargs)
        self.clustering = _spoco_clustering(clustering)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clustering(self.unet(x))


__all__ = ["UNet", "InGraphClustering", "GraphInstances", "SpocoUNetWithInstances", "SpocoUNetInstanceLabels"]
'''


@dataclass
class ArchitectureSource:
    """A self-contained architecture file for ``ArchitectureFromFileDescr``.

    Attributes
    ----------
    filename:
        Name of the file inside the package.
    text:
        Python source (imports torch and the standard library only).
    callable:
        Name of the ``nn.Module`` class in ``text``.
    kwargs:
        Constructor keyword arguments (JSON/YAML-safe).
    """

    filename: str
    text: str
    callable: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def _unet_path() -> Path:
    from spoco_zoo.models import unet

    return Path(unet.__file__)


def _ingraph_path() -> Path:
    from spoco_zoo.cluster import ingraph

    return Path(ingraph.__file__)


def _graph_path() -> Path:
    from spoco_zoo.cluster import graph

    return Path(graph.__file__)


def embeddings_architecture(unet_kwargs: dict[str, Any]) -> ArchitectureSource:
    """``spoco_zoo/models/unet.py`` verbatim, callable ``UNet``."""
    path = _unet_path()
    return ArchitectureSource("unet.py", path.read_text(encoding="utf-8"), EMBEDDINGS_CALLABLE, dict(unet_kwargs))


def _body_lines(path: Path) -> tuple[list[str], bool]:
    """Source lines of ``path`` without its module docstring, ``__future__`` imports and ``__all__``.

    Returns the remaining lines and whether a ``from __future__ import annotations`` was dropped.
    """
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    drop: set[int] = set()
    future = False
    for i, node in enumerate(tree.body):
        is_docstring = (
            i == 0
            and isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        )
        is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if isinstance(node, ast.ImportFrom) and is_future:
            future = future or any(alias.name == "annotations" for alias in node.names)
        is_all = isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        )
        if is_docstring or is_future or is_all:
            drop.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines = [line for no, line in enumerate(text.splitlines(), start=1) if no not in drop]
    return lines, future


def instances_architecture(
    unet_kwargs: dict[str, Any], clustering_kwargs: dict[str, Any], callable_name: str = INSTANCES_CALLABLE
) -> ArchitectureSource:
    """One file: ``unet.py`` + ``cluster/ingraph.py`` + ``cluster/graph.py`` + the wrappers; ``callable_name`` is
    the packaged one.

    ``callable_name`` is :data:`INSTANCES_CALLABLE` (embeddings and instances) or
    :data:`LABELS_CALLABLE` (instances only).

    Module docstrings and ``__all__`` of the parts are dropped; nothing else is changed. The
    result is checked to parse and to define ``UNet``, ``InGraphClustering`` and the wrapper. A part
    with ``from __future__ import annotations`` is refused: its string annotations, applied to the
    whole file, stop TorchScript from scripting ``GraphInstances``, and the export would fall back to
    tracing (every loop unrolled: a traced 3D decoder took 2.7 GB more memory in PyTorch's default
    executor).

    Raises
    ------
    spoco_zoo.errors.ExportError
        A part has a ``__future__`` annotations import, or the result does not parse or lacks a callable.
    """
    parts = [
        ("spoco_zoo/models/unet.py", _unet_path()),
        ("spoco_zoo/cluster/ingraph.py", _ingraph_path()),
        ("spoco_zoo/cluster/graph.py", _graph_path()),
    ]
    bodies: list[str] = []
    for label, path in parts:
        lines, has_future = _body_lines(path)
        if has_future:
            raise ExportError(
                f"{label}: 'from __future__ import annotations' would stop TorchScript from scripting the "
                "concatenated architecture file; remove it"
            )
        bar = "# " + "-" * 86
        bodies.append(
            "\n".join([bar, f"# {label} (spoco-zoo), unchanged apart from its docstring", bar, *lines]).strip("\n")
        )
    header = (
        '"""spoco-zoo architecture: U-Net pixel embeddings + in-graph instance clustering.\n\n'
        "Generated by spoco-zoo's exporter from spoco_zoo/models/unet.py,\n"
        "spoco_zoo/cluster/ingraph.py and spoco_zoo/cluster/graph.py; imports torch and the standard library only.\n"
        f"Callables: {INSTANCES_CALLABLE} (embeddings, instances) and {LABELS_CALLABLE} (instances),\n"
        "both (clustering=..., **unet_kwargs).\n"
        '"""\n'
    )
    text = header + "\n\n" + "\n\n\n".join(bodies) + "\n" + _WRAPPER
    try:
        tree = ast.parse(text)
    except SyntaxError as err:  # pragma: no cover - guards against unexpected source layouts
        raise ExportError(f"generated architecture file does not parse: {err}") from err
    names = {node.name for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))}
    missing = {"UNet", "InGraphClustering", "GraphInstances", INSTANCES_CALLABLE, LABELS_CALLABLE} - names
    if missing:
        raise ExportError(f"generated architecture file lacks {sorted(missing)}")
    kwargs = dict(unet_kwargs)
    kwargs["clustering"] = dict(clustering_kwargs)
    if callable_name not in (INSTANCES_CALLABLE, LABELS_CALLABLE):
        raise ExportError(f"unknown architecture callable {callable_name!r}")
    return ArchitectureSource("spoco_unet_instances.py", text, callable_name, kwargs)


def load_architecture(source: ArchitectureSource, directory: Path) -> type:
    """Write ``source`` into ``directory`` and import its callable (a fresh, uniquely named module).

    The file stays in ``directory`` (TorchScript reads class sources from it when scripting).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / source.filename
    path.write_text(source.text, encoding="utf-8")
    module_name = f"spoco_zoo_export_arch_{source.sha256[:16]}_{abs(hash(str(path))) % 10**8}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover
        raise ExportError(f"{path}: cannot import architecture file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(module_name, None)
        raise ExportError(f"{path}: architecture file fails to import: {err}") from err
    cls = getattr(module, source.callable, None)
    if cls is None:
        raise ExportError(f"{path}: architecture file has no callable {source.callable!r}")
    return cls


def installed_instances_model(clustering: dict[str, Any] | None = None, **unet_kwargs: Any) -> Any:
    """:data:`INSTANCES_CALLABLE` built from the installed spoco-zoo, with a package's keyword arguments.

    The same network as the architecture file of a package with the ``instances`` output, made from
    this installation's sources (:func:`instances_architecture`) instead of the file in the package;
    :mod:`spoco_zoo.zoo.trust` points bioimageio.core here when the package's file is
    byte for byte ours.
    """
    import tempfile

    source = instances_architecture(unet_kwargs, dict(clustering or {}))
    with tempfile.TemporaryDirectory(prefix="spoco-zoo-arch-") as tmp:
        cls = load_architecture(source, Path(tmp))
        return cls(**source.kwargs)


def installed_labels_model(clustering: dict[str, Any] | None = None, **unet_kwargs: Any) -> Any:
    """:data:`LABELS_CALLABLE` (the ``instances`` variant) built from the installed spoco-zoo sources."""
    import tempfile

    source = instances_architecture(unet_kwargs, dict(clustering or {}), LABELS_CALLABLE)
    with tempfile.TemporaryDirectory(prefix="spoco-zoo-arch-") as tmp:
        cls = load_architecture(source, Path(tmp))
        return cls(**source.kwargs)
