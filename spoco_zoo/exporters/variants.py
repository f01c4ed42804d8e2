"""Package variants: which outputs an exported package has, and for whom.

One checkpoint can be exported as three packages (``spoco-zoo export --variant``):

========== ============================ ==================================================
variant    outputs                      for
========== ============================ ==================================================
full       ``embeddings``, ``instances`` bioimageio.core and Python users (default): the
                                        recommended clustering of the embeddings and the
                                        in-graph labels
instances  ``instances``                tools that run single-output models: ilastik (its
                                        neural-network workflow refuses models with more
                                        than one output), deepImageJ
embeddings ``embeddings``               clustering outside the model only
========== ============================ ==================================================

Imports the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from spoco_zoo.errors import ExportError

__all__ = ["Variant", "VARIANTS", "DEFAULT_VARIANT", "get_variant"]


@dataclass(frozen=True)
class Variant:
    """One package layout.

    Attributes
    ----------
    name:
        ``--variant`` value.
    outputs:
        Output tensor ids, in the order the model returns them.
    callable:
        Architecture callable of the ``pytorch_state_dict`` weights.
    summary:
        One line for the model card and ``--help``.
    """

    name: str
    outputs: tuple[str, ...]
    callable: str
    summary: str

    @property
    def has_instances(self) -> bool:
        """Whether the in-graph clustering is part of the model."""
        return "instances" in self.outputs

    @property
    def has_embeddings(self) -> bool:
        """Whether the model returns the embeddings."""
        return "embeddings" in self.outputs


VARIANTS: dict[str, Variant] = {
    "full": Variant(
        "full",
        ("embeddings", "instances"),
        "SpocoUNetWithInstances",
        "embeddings + in-graph instance labels (bioimageio.core, Python)",
    ),
    "instances": Variant(
        "instances",
        ("instances",),
        "SpocoUNetInstanceLabels",
        "instance labels only, one output (ilastik, deepImageJ)",
    ),
    "embeddings": Variant("embeddings", ("embeddings",), "UNet", "embeddings only (cluster them yourself)"),
}
DEFAULT_VARIANT = "full"


def get_variant(name: str) -> Variant:
    """The :class:`Variant` called ``name``.

    Raises
    ------
    ExportError
        Unknown name (the message lists the variants).

    >>> get_variant("instances").outputs
    ('instances',)
    """
    if name not in VARIANTS:
        raise ExportError(f"--variant {name!r}: choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]
