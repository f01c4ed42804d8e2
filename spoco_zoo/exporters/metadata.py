"""What an exported package says about itself: name, description, tags, people, license, training details.

The defaults are derived from the checkpoint's ``TrainConfig`` (and its stored step and
metrics); :class:`Publication` holds what only the author can say (authors, maintainers with
their GitHub user, SPDX license, git repository, version). :mod:`spoco_zoo.exporters.rdf` turns it
all into the bioimage.io description.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from spoco_zoo.cluster.settings import INGRAPH
from spoco_zoo.errors import ExportError
from spoco_zoo.exporters.common import PackageGeometry, json_safe

__all__ = [
    "PERSON_KEYS",
    "parse_person",
    "Publication",
    "make_publication",
    "default_name",
    "check_name",
    "default_description",
    "clustering_config",
    "ingraph_settings",
    "spoco_section",
    "training_details",
    "package_tags",
]

_NAME_CHARS = re.compile(r"^[A-Za-z0-9_+\- ()]+$")
#: Optional fields of an author or maintainer (``NAME;key=value;...``).
PERSON_KEYS = ("github_user", "affiliation", "email", "orcid")
_DEFAULT_AUTHOR = "spoco-zoo user"


def parse_person(text: str, option: str = "--author") -> dict[str, str]:
    """``"Jane Doe;github_user=jdoe;affiliation=EMBL"`` -> ``{"name": "Jane Doe", "github_user": "jdoe", ...}``.

    For maintainers the name may be left out (``";github_user=jdoe"`` or just ``"github_user=jdoe"``).

    Raises
    ------
    ExportError
        An unknown key or a part without ``=`` after the name (the message names ``option``).

    >>> parse_person("Jane Doe;github_user=jdoe")
    {'name': 'Jane Doe', 'github_user': 'jdoe'}
    """
    parts = [p.strip() for p in str(text).split(";")]
    person: dict[str, str] = {}
    if parts and "=" not in parts[0]:
        if parts[0]:
            person["name"] = parts[0]
        parts = parts[1:]
    for part in parts:
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in PERSON_KEYS or not value.strip():
            raise ExportError(
                f"{option} {text!r}: expected NAME;key=value;... with keys {', '.join(PERSON_KEYS)} (got {part!r})"
            )
        person[key] = value.strip()
    return person


@dataclass
class Publication:
    """Who made the package and under which terms (the RDF's publishing fields).

    Attributes
    ----------
    authors, maintainers:
        Dicts with ``name`` and optionally :data:`PERSON_KEYS` (maintainers need ``github_user``).
    license:
        SPDX license identifier of the weights and the description.
    git_repo:
        URL of the source repository, or ``None``.
    version:
        SemVer version of the model, or ``None``.
    """

    authors: list[dict[str, str]] = field(default_factory=lambda: [{"name": _DEFAULT_AUTHOR}])
    maintainers: list[dict[str, str]] = field(default_factory=list)
    license: str = "MIT"
    git_repo: str | None = None
    version: str | None = None

    def missing(self) -> list[str]:
        """What the bioimage.io upload would still ask for (empty: publishable)."""
        out = []
        if all(a.get("name") == _DEFAULT_AUTHOR for a in self.authors):
            out.append("--author 'Your Name' (the default author is a placeholder)")
        if not self.maintainers and not any(a.get("github_user") for a in self.authors):
            out.append("--maintainer 'Your Name;github_user=YOU' (bioimage.io asks for a maintainer's GitHub user)")
        return out


def make_publication(
    authors: Sequence[str | Mapping[str, str]] | None = None,
    maintainers: Sequence[str | Mapping[str, str]] = (),
    license: str = "MIT",
    git_repo: str | None = None,
    version: str | None = None,
) -> Publication:
    """A checked :class:`Publication` (people given as ``NAME;key=value`` strings or dicts).

    The license is checked against the SPDX list and ``git_repo`` must be an http(s) URL; the
    version and ORCIDs are checked when the description is built.

    Raises
    ------
    ExportError
        Bad person syntax, a maintainer without ``github_user``, an unknown SPDX identifier or a
        repository that is not an http(s) URL (the message names the option).

    >>> make_publication(["A. Author"], ["github_user=aauthor"], license="CC-BY-4.0").maintainers
    [{'github_user': 'aauthor'}]
    """
    from bioimageio.spec.model.v0_5 import LicenseId

    def people(items: Sequence[str | Mapping[str, str]], option: str) -> list[dict[str, str]]:
        return [parse_person(p, option) if isinstance(p, str) else dict(p) for p in items]

    pub = Publication(
        authors=people(authors, "--author") if authors else [{"name": _DEFAULT_AUTHOR}],
        maintainers=people(maintainers, "--maintainer"),
        license=str(license),
        git_repo=git_repo,
        version=version,
    )
    for person in pub.authors:
        if not person.get("name"):
            raise ExportError(f"--author {person}: an author needs a name")
    for person in pub.maintainers:
        if not person.get("github_user"):
            raise ExportError(f"--maintainer {person}: a maintainer needs github_user=NAME")
    try:
        LicenseId(pub.license)
    except Exception as err:
        raise ExportError(f"--license {pub.license!r}: not an SPDX license identifier (e.g. MIT, CC-BY-4.0)") from err
    if git_repo is not None and not re.match(r"^https?://[^\s/]+\.[^\s]+$", git_repo):
        raise ExportError(f"--git-repo {git_repo!r}: expected an http(s) URL, e.g. https://github.com/you/model")
    return pub


def default_name(spatial_dims: int, outputs: Sequence[str]) -> str:
    """``"SPOCO 2D embeddings and instances"`` and the like.

    >>> default_name(3, ["embeddings"]), default_name(2, ["instances"])
    ('SPOCO 3D embeddings', 'SPOCO 2D instances')
    """
    return f"SPOCO {spatial_dims}D " + " and ".join(outputs)


def check_name(name: str) -> str:
    """A bioimage.io model name (whitespace normalised): 5-128 letters, digits, spaces and ``_+-()``.

    Raises
    ------
    ExportError
        The name does not qualify.
    """
    name = " ".join(str(name).split())
    if not 5 <= len(name) <= 128 or not _NAME_CHARS.match(name):
        raise ExportError(
            f"--name {name!r}: a bioimage.io model name has 5-128 characters from letters, digits, spaces and _+-()"
        )
    return name


def default_description(config: Any, outputs: Sequence[str]) -> str:
    """One paragraph: what the network is, how it was trained, how to get instances."""
    dims, fraction = config.model.spatial_dims, config.data.object_fraction
    text = (
        f"SPOCO pixel-embedding U-Net ({dims}D, {config.model.embedding_dim} channels) trained from sparse "
        f"object annotations ({100 * fraction:g}% of objects labelled) with spoco-zoo. "
    )
    if "embeddings" not in outputs:
        return text + "Outputs instance labels from an in-graph clustering of the embeddings (one output)."
    return (
        text
        + "Cluster the embeddings with config.spoco.clustering"
        + (" or use the in-graph 'instances' output." if "instances" in outputs else ".")
    )


def clustering_config(config: Any, ingraph: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The RDF's ``config["spoco"]["clustering"]`` for a ``TrainConfig``.

    Its :meth:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting.as_dict` with, when the package has the
    in-graph output, ``"ingraph"``: the constructor arguments compiled into the model. The dict is
    read back by :meth:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting.from_rdf` (and so
    :func:`spoco_zoo.postprocess.embeddings_to_instances`).
    """
    setting = config.clustering_setting()
    if ingraph is not None:
        setting = replace(setting, ingraph=dict(ingraph))
    return json_safe(setting.as_dict())


def ingraph_settings(config: Any, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Constructor arguments of the in-graph clustering: the setting of method ``"ingraph"``
    (:meth:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting.from_config`) with ``options`` on top
    (:meth:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting.ingraph_kwargs`).

    Raises
    ------
    ExportError
        ``options`` holds an unknown parameter or a value of the wrong kind.
    """
    try:
        return config.clustering_setting(INGRAPH).ingraph_kwargs(options)
    except ValueError as err:
        raise ExportError(f"in-graph clustering options: {err}") from err


def spoco_section(
    config: Any,
    state: Mapping[str, Any],
    *,
    weights: str,
    clustering: Mapping[str, Any],
    outputs: Sequence[str],
    geometry: PackageGeometry,
) -> dict[str, Any]:
    """The RDF's ``config["spoco"]``: clustering, loss, normalisation, model, training summary, metrics."""
    from spoco_zoo import __version__

    data = config.data
    return json_safe(
        {
            "clustering": dict(clustering),
            "loss": config.loss.model_dump(mode="json"),
            "normalization": data.normalization.model_dump(mode="json"),
            "model": config.model.model_dump(mode="json"),
            "training": {
                "steps": state.get("step"),
                "weights": weights,
                "object_fraction": data.object_fraction,
                "labels_are_sparse": data.labels_are_sparse,
                "patch_shape": list(data.patch_shape),
                "batch_size": data.batch_size,
                "data": "synthetic" if data.train_images is None else "files",
            },
            "metrics": dict(state.get("metrics") or {}),
            "outputs": list(outputs),
            "geometry": {"min": list(geometry.min_size), "step": geometry.step, "halo": list(geometry.halo)},
            "spoco_zoo_version": __version__,
        }
    )


def training_details(config: Any) -> dict[str, Any]:
    """Keyword arguments of bioimage.io's ``TrainingDetails``."""
    return {
        "training_preprocessing": f"{config.data.normalization.mode} normalisation per image and channel",
        "training_batch_size": float(config.data.batch_size),
        "initial_learning_rate": float(config.lr),
        "loss_function": "SPOCO (pull/push + instance Dice + consistency)",
        "loss_function_kwargs": json_safe(config.loss.model_dump(mode="json")),
        "optimizer": "AdamW",
        "optimizer_kwargs": {"lr": float(config.lr), "weight_decay": float(config.weight_decay)},
    }


def package_tags(spatial_dims: int, formats: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """The package's tags: SPOCO, task, dimensionality, frameworks, then ``extra``.

    >>> package_tags(2, ["pytorch_state_dict", "onnx"], ["nuclei"])[-3:]
    ['pytorch', 'onnx', 'nuclei']
    """
    tags = ["spoco", "instance-segmentation", "pixel-embeddings", "embeddings", "sparse-annotation"]
    tags += [f"{spatial_dims}d", "unet", "pytorch"]
    tags += [t for t in ("torchscript", "onnx") if t in formats]
    return [*tags, *extra]
