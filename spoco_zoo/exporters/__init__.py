"""Export: spoco-zoo checkpoints -> bioimage.io model packages (TorchScript, ONNX, state dict).

Modules (heavy dependencies are imported inside functions, so importing this
package is cheap):

- :mod:`spoco_zoo.export.package` -- :func:`export_package`, the pipeline (checkpoint -> .zip)
- :mod:`spoco_zoo.export.common` -- weight-format names, package geometry, citation
- :mod:`spoco_zoo.export.architecture` -- the architecture source file shipped with the state dict
- :mod:`spoco_zoo.export.tensors` -- test image, parity inputs, eager reference outputs
- :mod:`spoco_zoo.export.weights` -- every weight format, checked against eager PyTorch
  (:mod:`spoco_zoo.export.torchscript`, :mod:`spoco_zoo.export.onnx`, :mod:`spoco_zoo.export.parity`)
- :mod:`spoco_zoo.export.cover`, :mod:`spoco_zoo.export.card` -- cover image and model card
  (template in ``templates/``, package data)
- :mod:`spoco_zoo.export.metadata`, :mod:`spoco_zoo.export.rdf` -- the model description, built
  with ``bioimageio.spec``
- :mod:`spoco_zoo.export.validate` -- spec validation + ``bioimageio.core.test_model`` per weight format
- :mod:`spoco_zoo.export.predict` -- :func:`zoo_embeddings` (run a package via bioimageio.core)

Errors are :class:`spoco_zoo.errors.ExportError` (re-exported here).
"""

from spoco_zoo.errors import ExportError
from spoco_zoo.export.common import WEIGHT_FORMATS, parse_formats

__all__ = ["ExportError", "WEIGHT_FORMATS", "parse_formats", "export_package", "validate_package", "zoo_embeddings"]


def __getattr__(name: str) -> object:  # lazy re-exports (PEP 562)
    if name == "export_package":
        from spoco_zoo.export.package import export_package

        return export_package
    if name == "validate_package":
        from spoco_zoo.export.validate import validate_package

        return validate_package
    if name == "zoo_embeddings":
        from spoco_zoo.export.predict import zoo_embeddings

        return zoo_embeddings
    raise AttributeError(f"module 'spoco_zoo.export' has no attribute {name!r}")
