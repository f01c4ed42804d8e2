"""spoco-zoo: SPOCO instance segmentation from sparse annotations, packaged for bioimage.io.

The top-level package is deliberately light: importing ``spoco_zoo`` (or
``spoco_zoo.postprocess``) pulls in numpy and torch only.
"""

__version__ = "0.1.0"
