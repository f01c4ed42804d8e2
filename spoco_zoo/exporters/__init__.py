"""Writing bioimage.io model packages: spoco-zoo checkpoint -> ``.zip`` (state dict, TorchScript, ONNX).

Modules (heavy dependencies are imported inside functions, so importing this package is cheap):

- :mod:`spoco_zoo.exporters.package` -- :func:`export_package`, the pipeline (checkpoint -> .zip)
- :mod:`spoco_zoo.exporters.plan`, :mod:`spoco_zoo.exporters.variants` -- what one export writes
  (weight formats, outputs, geometry), decided once before anything is written
- :mod:`spoco_zoo.exporters.tensors` -- test image, parity inputs, eager reference outputs
- :mod:`spoco_zoo.exporters.weights` -- writes every weight format through its own module, all with
  one signature (:mod:`spoco_zoo.exporters.state_dict`, :mod:`spoco_zoo.exporters.torchscript`,
  :mod:`spoco_zoo.exporters.onnx`), each checked against eager PyTorch (:mod:`spoco_zoo.exporters.parity`)
- :mod:`spoco_zoo.exporters.cover`, :mod:`spoco_zoo.exporters.card` -- cover image and model card
  (templates in the top-level ``model_cards/`` folder, package data of ``spoco_zoo.model_cards``)
- :mod:`spoco_zoo.exporters.metadata`, :mod:`spoco_zoo.exporters.rdf` -- the model description, built
  with ``bioimageio.spec``
- :mod:`spoco_zoo.exporters.common` -- package geometry, the paper citation, JSON-safe values

Reading, running and checking packages (prediction, the trust check, validation, consumer checks,
the architecture source a package runs) is :mod:`spoco_zoo.zoo`.

Errors are :class:`spoco_zoo.errors.ExportError` (re-exported here).
"""

from spoco_zoo.errors import ExportError

__all__ = ["ExportError", "export_package"]


def __getattr__(name: str) -> object:  # lazy re-export (PEP 562): torch and bioimageio load on use
    if name == "export_package":
        from spoco_zoo.exporters.package import export_package

        return export_package
    raise AttributeError(f"module 'spoco_zoo.exporters' has no attribute {name!r}")
