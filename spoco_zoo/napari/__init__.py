"""napari plugin (npe2 manifest ``napari.yaml``): paint a few objects, train, look, paint more, publish.

``pip install 'spoco-zoo[napari]'`` installs napari with a Qt binding; the plugin contributes

- **Train** (:mod:`~spoco_zoo.napari.train_widget`): Image + painted Labels layer -> a run of the
  library's trainer in a worker thread, with progress, Stop, live preview and Continue;
- **Segment** (:mod:`~spoco_zoo.napari.segment_widget`): a checkpoint or package on an Image layer;
- **Export** (:mod:`~spoco_zoo.napari.export_widget`): a checkpoint -> a validated bioimage.io package;
- **sample data** (:mod:`~spoco_zoo.napari.sample`): a synthetic image with five objects painted.

The Qt-free parts: :mod:`~spoco_zoo.napari.layers` (layer <-> array conventions),
:mod:`~spoco_zoo.napari.session` (a training run), :mod:`~spoco_zoo.napari.zoo` (the one module
that imports :mod:`spoco_zoo.exporters` and :mod:`spoco_zoo.zoo`). Importing this package imports neither napari nor Qt.
"""
