"""Exporters: spoco-zoo checkpoints -> bioimage.io model packages (TorchScript, ONNX, state dict).

Modules (heavy dependencies are imported inside functions, so importing this
package is cheap):

- :mod:`exporters.common` -- :class:`ExportError`, weight-format names, package geometry
- :mod:`exporters.architecture` -- the architecture source file shipped with the state dict
- :mod:`exporters.torchscript`, :mod:`exporters.onnx` -- conversions + parity checks
- :mod:`exporters.rdf` -- the model description, built with ``bioimageio.spec``
- :mod:`exporters.package` -- :func:`export_package` (checkpoint -> .zip)
- :mod:`exporters.validate` -- spec validation + ``bioimageio.core.test_model`` per weight format
- :mod:`exporters.predict` -- :func:`zoo_embeddings` (run a package via bioimageio.core)
"""

from exporters.common import WEIGHT_FORMATS, ExportError, parse_formats

__all__ = ["ExportError", "WEIGHT_FORMATS", "parse_formats", "export_package", "validate_package", "zoo_embeddings"]


def __getattr__(name: str):  # lazy re-exports (PEP 562)
    if name == "export_package":
        from exporters.package import export_package

        return export_package
    if name == "validate_package":
        from exporters.validate import validate_package

        return validate_package
    if name == "zoo_embeddings":
        from exporters.predict import zoo_embeddings

        return zoo_embeddings
    raise AttributeError(f"module 'exporters' has no attribute {name!r}")
