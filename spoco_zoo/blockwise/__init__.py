"""Segmentation of images and volumes of any size, block by block, optionally on a Dask cluster.

* :mod:`spoco_zoo.blockwise.volume`: :func:`~spoco_zoo.blockwise.volume.segment_volume` (network
  tile by tile, clustering and stitching block by block; in this process or as
  ``dask.distributed`` tasks).
* :mod:`spoco_zoo.blockwise.run`: what ``spoco-zoo segment --blockwise`` does for each input
  (read lazily, segment, write TIFF or OME-Zarr), and the Dask client it uses.

Importing this package imports nothing heavy; ``dask.distributed`` is needed only with a
scheduler (``pip install spoco-zoo[dask]``).
"""
