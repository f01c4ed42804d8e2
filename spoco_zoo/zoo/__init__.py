"""Reading, running and checking bioimage.io packages, spoco-zoo's own and others'.

- :mod:`spoco_zoo.zoo.formats` -- the weight formats and the ``--formats`` option
- :mod:`spoco_zoo.zoo.architecture` -- the architecture source a package ships and runs (the
  network and the in-graph decoder in one file)
- :mod:`spoco_zoo.zoo.trust` -- which package code may run, checked before anything is imported
- :mod:`spoco_zoo.zoo.predict` -- :func:`zoo_predict` / :func:`zoo_embeddings`: run a package with
  bioimageio.core, whole or in tiles
- :mod:`spoco_zoo.zoo.validate` -- spec validation + ``bioimageio.core.test_model`` per weight format
- :mod:`spoco_zoo.zoo.consumers` -- what ilastik, deepImageJ and older runtimes accept

Writing packages is :mod:`spoco_zoo.exporters`; this subpackage imports nothing from it.
Errors are :class:`spoco_zoo.errors.PackageError` and :class:`spoco_zoo.errors.ExportError`.
"""

from spoco_zoo.zoo.formats import WEIGHT_FORMATS, parse_formats

__all__ = ["WEIGHT_FORMATS", "parse_formats", "validate_package", "zoo_embeddings", "zoo_predict"]


def __getattr__(name: str) -> object:  # lazy re-exports (PEP 562): bioimageio loads on use
    if name == "validate_package":
        from spoco_zoo.zoo.validate import validate_package

        return validate_package
    if name in ("zoo_embeddings", "zoo_predict"):
        from spoco_zoo.zoo import predict

        return getattr(predict, name)
    raise AttributeError(f"module 'spoco_zoo.zoo' has no attribute {name!r}")
