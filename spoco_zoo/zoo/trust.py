"""Which model packages spoco-zoo opens, and which of their code it lets bioimage.io run.

A bioimage.io package can make its consumer run Python: the architecture source of
``pytorch_state_dict`` weights (imported by bioimageio.core), a library callable named by the
description (``import_from`` + ``callable`` + ``kwargs``, e.g. ``subprocess.run``), custom
pre/postprocessing files, and Keras/TensorFlow weights. spoco-zoo's commands run none of it:

* :func:`check_package_file` -- the file is a readable zip with an ``rdf.yaml`` at its root and no
  member with an absolute path or ``..`` (or an ``rdf.yaml`` itself);
* :func:`installed_architecture` -- a ``pytorch_state_dict`` architecture whose source is byte for
  byte the installed spoco-zoo's (sha256 of the file in the package; the same callable) is replaced
  by the installed code (:data:`INSTALLED`); any other source or library callable is refused;
* :func:`safe_description` -- the description to hand to bioimageio.core for one weight format:
  TorchScript and ONNX weights run without Python from the package, ``pytorch_state_dict`` with
  the installed architecture, nothing else (and no custom processing) unless the caller trusts
  the package's code (``--trust-package-code``).

Every refusal is a :class:`~spoco_zoo.errors.PackageError` whose message starts with the package.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from spoco_zoo.errors import PackageError
from spoco_zoo.zoo.formats import WEIGHT_FORMATS

__all__ = [
    "RDF_NAMES",
    "SAFE_FORMATS",
    "TRUST_HINT",
    "InstalledArchitecture",
    "installed_architectures",
    "check_package_file",
    "unsafe_member",
    "package_code",
    "installed_architecture",
    "choose_weight_format",
    "safe_description",
]

#: Names of the description file at the root of a package.
RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")
#: Weight formats that run without any Python from the package.
SAFE_FORMATS = ("torchscript", "onnx")
#: How the user overrides a refusal.
TRUST_HINT = "pass --trust-package-code only if you trust the package's author"
_PREFERRED = WEIGHT_FORMATS  # pytorch_state_dict, torchscript, onnx: the order a format is chosen in


@dataclass(frozen=True)
class InstalledArchitecture:
    """An architecture source spoco-zoo exports, and where the installed copy is imported from.

    Attributes
    ----------
    filename, callable, sha256:
        The file the exporter ships, its callable and the sha256 of its bytes.
    import_from, library_callable:
        The installed module and callable that build the same network from the same keyword
        arguments (``from <import_from> import <library_callable>``).
    """

    filename: str
    callable: str
    sha256: str
    import_from: str
    library_callable: str


def installed_architectures() -> tuple[InstalledArchitecture, ...]:
    """The architecture sources this spoco-zoo writes into packages (embeddings; embeddings + instances; instances)."""
    from spoco_zoo.zoo.architecture import (
        INSTALLED_INSTANCES_CALLABLE,
        INSTALLED_LABELS_CALLABLE,
        LABELS_CALLABLE,
        embeddings_architecture,
        instances_architecture,
    )

    plain = embeddings_architecture({})
    combined = instances_architecture({}, {})  # the text does not depend on the arguments
    labels = instances_architecture({}, {}, LABELS_CALLABLE)  # same file, the single-output wrapper
    return (
        InstalledArchitecture(plain.filename, plain.callable, plain.sha256, "spoco_zoo.models.unet", plain.callable),
        InstalledArchitecture(
            combined.filename,
            combined.callable,
            combined.sha256,
            "spoco_zoo.zoo.architecture",
            INSTALLED_INSTANCES_CALLABLE,
        ),
        InstalledArchitecture(
            labels.filename,
            labels.callable,
            labels.sha256,
            "spoco_zoo.zoo.architecture",
            INSTALLED_LABELS_CALLABLE,
        ),
    )


# ----------------------------------------------------------------------------- the file itself
def unsafe_member(name: str) -> bool:
    """Whether a zip member name is absolute or climbs out of the package with ``..``.

    Examples
    --------
    >>> [unsafe_member(n) for n in ("rdf.yaml", "a/b.py", "a/..b.py", "../x.py", "/etc/x", "a/../../x", "C:/x")]
    [False, False, False, True, True, True, True]
    >>> unsafe_member("a\\\\..\\\\..\\\\x")
    True
    """
    normal = name.replace("\\", "/")
    if normal.startswith("/") or (len(normal) > 1 and normal[1] == ":"):
        return True
    return ".." in PurePosixPath(normal).parts


def check_package_file(package: str | Path) -> Path:
    """Check that ``package`` is a package spoco-zoo may open; returns it as a path.

    Accepted: a readable ``.zip`` with ``rdf.yaml`` (or ``bioimageio.yaml``) at its root and only
    relative member names without ``..``; or a description file (``.yaml``) itself.

    Raises
    ------
    PackageError
        Naming the package: missing, a folder, not a zip, a corrupt zip, no ``rdf.yaml`` in it,
        or members with absolute paths or ``..`` (listed).
    """
    path = Path(package)
    if not path.exists():
        raise PackageError(f"{path}: no such model package")
    if path.is_dir():
        raise PackageError(f"{path}: is a folder; give the package's .zip file (or its rdf.yaml)")
    if path.suffix.lower() in (".yaml", ".yml"):
        return path
    if not zipfile.is_zipfile(path):
        raise PackageError(f"{path}: not a zip file (a bioimage.io model package is a .zip with an rdf.yaml)")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise PackageError(f"{path}: cannot read the zip file ({err})") from None
    bad = [name for name in names if unsafe_member(name)]
    if bad:
        shown = ", ".join(repr(n) for n in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise PackageError(f"{path}: refused: zip members with absolute paths or '..' ({shown})")
    if not any(name in RDF_NAMES or name.endswith(".bioimageio.yaml") and "/" not in name for name in names):
        raise PackageError(f"{path}: no rdf.yaml in the zip (not a bioimage.io model package)")
    return path


# ----------------------------------------------------------------------------- code in a description
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _architecture_bytes(arch: Any) -> bytes | None:
    try:
        return bytes(arch.get_reader().read())
    except Exception:  # missing or unreadable file: it cannot match ours
        return None


def installed_architecture(descr: Any) -> Any | None:
    """The installed replacement for the ``pytorch_state_dict`` architecture of ``descr``, if it is ours.

    Returns
    -------
    bioimageio.spec.model.v0_5.ArchitectureFromLibraryDescr or None
        The installed module/callable with the package's keyword arguments when the package's
        architecture file is byte for byte one of :func:`installed_architectures` (same callable),
        or already names exactly one of them; ``None`` otherwise (other source, other library
        callable, a format-0.4 description, no ``pytorch_state_dict`` weights).
    """
    from bioimageio.spec.model import v0_5

    weights = getattr(getattr(descr, "weights", None), "pytorch_state_dict", None)
    if not isinstance(descr, v0_5.ModelDescr) or weights is None:
        return None
    arch = weights.architecture
    known = installed_architectures()
    if isinstance(arch, v0_5.ArchitectureFromLibraryDescr):
        ours = any(arch.import_from == k.import_from and str(arch.callable) == k.library_callable for k in known)
        return arch if ours else None
    data = _architecture_bytes(arch)
    if data is None:
        return None
    digest = _sha256(data)
    for k in known:
        if digest == k.sha256 and str(arch.callable) == k.callable:
            return v0_5.ArchitectureFromLibraryDescr(
                import_from=k.import_from, callable=k.library_callable, kwargs=dict(arch.kwargs)
            )
    return None


def package_code(descr: Any) -> dict[str, list[str]]:
    """The code a description would make bioimage.io run that is not the installed spoco-zoo's.

    Returns
    -------
    dict
        ``{weight format or "processing": [description, ...]}``: ``"processing"`` lists custom
        pre/postprocessing (it runs with every weight format), a weight format lists why that
        format would run foreign code (an architecture that is not ours, a format that can carry
        code such as Keras). Empty when nothing foreign would run.
    """
    from bioimageio.spec.model import v0_5

    found: dict[str, list[str]] = {}
    for tensor in list(getattr(descr, "inputs", [])) + list(getattr(descr, "outputs", [])):
        steps = list(getattr(tensor, "preprocessing", None) or []) + list(getattr(tensor, "postprocessing", None) or [])
        for step in steps:
            if isinstance(step, v0_5.CustomProcessingDescr) or getattr(step, "source", None) is not None:
                source = getattr(step, "source", "?")
                found.setdefault("processing", []).append(f"custom processing {source} of tensor '{tensor.id}'")
    for wf, entry in getattr(descr, "weights", []):
        if entry is None or wf in SAFE_FORMATS:
            continue
        if wf == "pytorch_state_dict":
            if installed_architecture(descr) is None:
                found.setdefault(wf, []).append(_describe_architecture(entry))
        else:
            found.setdefault(wf, []).append(f"{wf} weights (a format that can carry code)")
    return found


def _describe_architecture(entry: Any) -> str:
    arch = getattr(entry, "architecture", None)
    if arch is None:  # format 0.4
        return f"architecture {getattr(entry, 'source', '?')} (bioimage.io format 0.4)"
    if getattr(arch, "import_from", None) is not None:
        return f"architecture {arch.import_from}.{arch.callable} (a library callable that is not spoco-zoo's)"
    data = _architecture_bytes(arch)
    digest = f"sha256 {_sha256(data)[:12]}..." if data is not None else "unreadable"
    return f"architecture {arch.source} ({digest}, not the installed spoco-zoo's source)"


def _present(descr: Any) -> list[str]:
    return [wf for wf, entry in descr.weights if entry is not None]


def choose_weight_format(descr: Any, package: str | Path, requested: str | None = None) -> str:
    """``requested`` if the package has it, else the first of pytorch_state_dict, torchscript, onnx it has.

    Raises
    ------
    PackageError
        ``requested`` is not in the package, or the package has none of the three.
    """
    present = _present(descr)
    if requested is not None:
        if requested not in present:
            raise PackageError(f"{package}: has no {requested} weights (it has {', '.join(present) or 'none'})")
        return requested
    for wf in _PREFERRED:
        if wf in present:
            return wf
    raise PackageError(f"{package}: has none of the weight formats {', '.join(_PREFERRED)}")


def safe_description(
    descr: Any,
    package: str | Path,
    weight_format: str | None = None,
    trust_code: bool = False,
) -> tuple[Any, str]:
    """The description to run with bioimageio.core, and its weight format.

    Parameters
    ----------
    descr:
        A loaded model description of ``package``.
    package:
        Its path (for the messages).
    weight_format:
        The format to run; default: the first of pytorch_state_dict, torchscript, onnx present.
    trust_code:
        Run the package's own code (architecture, custom processing, any weight format) as it is.

    Returns
    -------
    descr, weight_format:
        ``descr`` itself (TorchScript, ONNX, or ``trust_code``) or a copy whose
        ``pytorch_state_dict`` architecture is the installed spoco-zoo's.

    Raises
    ------
    PackageError
        Naming the package and the code it would run, when that code is not the installed
        spoco-zoo's and ``trust_code`` is false.
    """
    chosen = choose_weight_format(descr, package, weight_format)
    if trust_code:
        return descr, chosen
    foreign = package_code(descr)
    if "processing" in foreign:
        raise PackageError(
            f"{package}: refused: it ships Python code that would run with every weight format "
            f"({'; '.join(foreign['processing'])}); {TRUST_HINT}"
        )
    if chosen in SAFE_FORMATS:
        return descr, chosen
    if chosen in foreign:
        others = [wf for wf in SAFE_FORMATS if wf in _present(descr)]
        alternative = f"use --weight-format {' or '.join(others)} (no package code runs), or " if others else ""
        raise PackageError(
            f"{package}: refused to run {chosen}: {'; '.join(foreign[chosen])}; {alternative}{TRUST_HINT}"
        )
    library = installed_architecture(descr)
    if library is None:  # only pytorch_state_dict gets here, and foreign architectures were refused above
        raise PackageError(f"{package}: refused to run {chosen}: not the installed spoco-zoo's code; {TRUST_HINT}")
    entry = descr.weights.pytorch_state_dict.model_copy(update={"architecture": library})
    weights = descr.weights.model_copy(update={"pytorch_state_dict": entry})
    return descr.model_copy(update={"weights": weights}), chosen
