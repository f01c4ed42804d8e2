"""Instances from the pixel-adjacency graph: a local decoder built from plain tensor operations.

This file imports nothing but ``torch`` on purpose: the exporter
concatenates it (with ``unet.py`` and ``ingraph.py``) into the architecture file of a bioimage.io
package and compiles :class:`GraphInstances` into the TorchScript and ONNX weights; the Python
route runs the same module eagerly (method ``"graph"``, :mod:`spoco_zoo.cluster.graph_method`).
No ``from __future__`` import, no spoco_zoo import, module-level names that start with ``graph_``
or ``Graph`` (they must not clash with ``unet.py`` / ``ingraph.py``). Design and measured
quality: ``docs/instances.md``.

Every step looks at a bounded neighbourhood of a pixel (its face neighbours, or a window of at most
``4 min_distance + 8`` pixels along one axis), so time and memory grow linearly with the number of
pixels and a pixel's label depends on its surroundings, not on the size of the image. Per image,
vectorised over the batch:

1. **Foreground**: with ``foreground="mask"`` the last channel is the network's foreground logit,
   pixels whose logit is not above 0 are background (0); otherwise every pixel is foreground.
2. **Split** (``split``):

   * ``"embedding"``: two face neighbours belong together when both are foreground and their
     embeddings are closer than ``edge_threshold`` (the network pulls the pixels of one object
     together and pushes objects apart, so a jump between neighbours is a boundary); the objects
     are the connected components of that graph. With ``spacing`` (the voxel size over its geometric
     mean) neighbours along axis ``a`` may differ by ``spacing[a] * edge_threshold``: the embedding
     drifts with physical distance, and a z step of 3 pixels covers three times as much.
   * ``"shape"``: the foreground is split by its shape, a distance-transform watershed: the
     Euclidean distance to the background (separable, exact up to ``4 min_distance + 8`` pixels),
     its maxima at least ``min_distance`` apart are
     the markers, which flood the foreground level by level from the highest distance down (a
     watershed's order); foreground without a marker keeps its own component.

   * ``"embedding"`` with ``seed_size``: the components of the stricter graph (neighbours closer than
     :func:`graph_seed_fraction` ``x edge_threshold``) with at least ``seed_size`` pixels are *seeds*; each
     grows over the edges of the ``edge_threshold`` graph, breadth first (:func:`graph_flood_edges`), and
     the pixels no seed reaches keep their components of that graph. Two objects that touch through a
     few close pixels are one component but two seeds; in a large volume such joins chain objects into
     ever larger components (docs/benchmarks.md, "Seeds for the local decoder").

3. **Connected components** by label propagation: every pixel starts with its flat index; each
   round scans every axis both ways by doubling (the smallest label travels up to 63 pixels along
   a straight run of edges) and then jumps (``label = label[label]``, the label of the pixel the
   label names), which shortens long chains; ``n_iter`` rounds (a fixed trip count in the packages;
   the eager route stops after a round that changed nothing and skips the scans along runs of edges
   that exist nowhere: the same labels, sooner; ``GraphInstances.settle``).
4. **Clean-up**: components smaller than ``min_size`` pixels (fragments between objects) join
   a neighbouring component; those with no neighbour become 0. Without a mask the largest
   component is the background (``background_largest``).
5. **Ids**: each object's first-pixel index shifted by a hash of all objects of the input (sizes and
   coordinate moments), modulo ``2**24 - 1``: distinct within an input, exact in float32, and
   different between tiles decoded separately (a shared id has a probability of about
   ``K1 K2 / 2**24``); not consecutive (the Python route renumbers them ``1..K``).

Labels are int32 flat indices internally (inputs up to ``2**30`` pixels per image: half the memory
traffic of int64 in every scan); ``forward`` returns ``int32``.
"""

import torch
from torch import nn

__all__ = ["GraphInstances"]


def graph_outside() -> int:
    """The label of pixels outside every object while labelling: 2**30, larger than any flat index of
    an input up to 2**30 pixels, an int32 and exact as the float32 fill of a shift. A constant, not the
    pixel count: exported graphs are traced at one size and run at others. (A function: TorchScript does
    not read module-level ints.)"""
    return 1073741824


def graph_shift(x: torch.Tensor, axis: int, step: int, fill: float) -> torch.Tensor:
    """``y[p] = x[p + step * e_axis]`` for ``step`` +1 or -1, ``fill`` where that falls outside."""
    n = x.size(axis)
    edge = torch.full_like(x.narrow(axis, 0, 1), fill)
    if step > 0:
        return torch.cat([x.narrow(axis, 1, n - 1), edge], axis)
    return torch.cat([edge, x.narrow(axis, 0, n - 1)], axis)


def graph_pad_shift(x: torch.Tensor, axis: int, step: int, fill: float) -> torch.Tensor:
    """``y[p] = x[p + step * e_axis]`` for any ``step`` (also beyond the axis length), ``fill`` beyond the
    border: a constant pad (``Pad`` in ONNX, fewer operations than a concatenation). Numbers only."""
    pads = [0] * (2 * (x.dim() - axis))
    if step == 1 or step == -1:  # a step no axis is shorter than: one pad, negative on the far side
        pads[-2] = -step
        pads[-1] = step
        return torch.nn.functional.pad(x, pads, value=fill)
    n = x.size(axis)
    if step > 0:
        pads[-1] = step
        return torch.nn.functional.pad(x, pads, value=fill).narrow(axis, step, n)
    pads[-2] = -step
    return torch.nn.functional.pad(x, pads, value=fill).narrow(axis, 0, n)


def graph_below(x: torch.Tensor, top: int) -> torch.Tensor:
    """``min(x, top)`` for integer labels (no Clip: older ONNX Runtimes lack its integer kernels)."""
    return torch.where(x < top, x, top)


def graph_shift_far(x: torch.Tensor, axis: int, step: int, fill: float) -> torch.Tensor:
    """``y[p] = x[p + step * e_axis]`` for any ``step`` (padded first: valid for any axis length)."""
    n = x.size(axis)
    pad = torch.full_like(x.narrow(axis, 0, 1), fill).expand(
        [abs(step) if i == axis else x.size(i) for i in range(x.dim())]
    )
    if step > 0:
        return torch.cat([x, pad], axis).narrow(axis, step, n)
    return torch.cat([pad, x], axis).narrow(axis, 0, n)


def graph_propagate(
    labels: torch.Tensor, edges: list[torch.Tensor], inside: torch.Tensor, n_iter: int, settle: bool = False
) -> torch.Tensor:
    """Connected components: the smallest label along ``edges`` (``edges[a][p]``: p ~ p + e_a).

    Each of ``n_iter`` rounds scans every axis both ways by doubling -- a label travels up to
    63 pixels (:func:`graph_doublings`) along a straight run of edges in one scan -- and then jumps
    (``label = label[label]``). ``labels`` ``[B, 1, *S]`` int32 flat indices inside,
    :func:`graph_outside` elsewhere.

    ``settle``: leave out the scans whose run of edges exists nowhere and stop after a round that changed
    no label (a round is a function of the labels alone, so every later one would change none either): the
    same labels in less time. The eager route sets it; exported graphs run every scan and round (a traced
    graph cannot stop on data).
    """
    shape = labels.shape
    out = graph_outside()
    # reach[i][p]: a straight run of edges joins p and p + direction * 2**k e_a; made once, used every round
    scans: list[tuple[int, int, torch.Tensor]] = []
    for a, edge in enumerate(edges):
        for direction in [1, -1]:
            reach = edge if direction > 0 else graph_shift(edge, 2 + a, -1, 0.0)
            step = 1
            for _k in range(graph_doublings()):
                if settle and not bool(reach.any()):  # no run this long, nor any longer one
                    break
                scans.append((2 + a, direction * step, reach))
                reach = reach & graph_shift_far(reach, 2 + a, direction * step, 0.0)
                step = 2 * step
    for _ in range(n_iter):
        before = labels
        for axis, step, reach in scans:
            far = graph_pad_shift(labels, axis, step, float(out))
            labels = torch.minimum(labels, torch.where(reach, far, out))
        flat = labels.flatten(1)
        jumped = torch.gather(flat, 1, graph_below(flat, flat.size(1) - 1).to(torch.int64))
        flat = torch.where(flat < out, torch.minimum(flat, jumped), flat)
        labels = flat.reshape(shape)
        if settle and bool(torch.equal(labels, before)):
            break
    return torch.where(inside, labels, out)


def graph_flood_rounds() -> int:
    """Rounds of growth into pixels without a label (fragments joining a neighbour): up to 16 pixels."""
    return 16


def graph_seed_fraction() -> float:
    """Edge threshold of the seeds' graph (``seed_size``), as a fraction of ``edge_threshold``."""
    return 0.8


def graph_doublings() -> int:
    """Doubling steps of a scan: a label travels up to ``2**6 - 1 = 63`` pixels per scan."""
    return 6


def graph_face_edges(inside: torch.Tensor) -> list[torch.Tensor]:
    """Edges between face neighbours that are both ``inside``."""
    return [inside & graph_shift(inside, 2 + a, 1, 0.0) for a in range(inside.dim() - 2)]


def graph_flood(labels: torch.Tensor, inside: torch.Tensor, n_iter: int, settle: bool = False) -> torch.Tensor:
    """Unlabelled ``inside`` pixels take the smallest label of their face neighbours, ``n_iter`` rounds
    (``settle``: stop after a round that changed nothing, as :func:`graph_propagate`)."""
    out = graph_outside()
    for _ in range(n_iter):
        best = torch.full_like(labels, float(out))
        for a in range(labels.dim() - 2):
            for step in [1, -1]:
                best = torch.minimum(best, graph_pad_shift(labels, 2 + a, step, float(out)))
        grown = torch.where(inside & (labels == out), best, labels)
        if settle and bool(torch.equal(grown, labels)):
            break
        labels = grown
    return labels


def graph_flood_edges(
    labels: torch.Tensor, edges: list[torch.Tensor], todo: torch.Tensor, n_iter: int, settle: bool = False
) -> torch.Tensor:
    """Unlabelled ``todo`` pixels take the smallest label of the neighbours they share an edge with
    (``edges[a][p]``: p ~ p + e_a), ``n_iter`` rounds: labelled regions grow breadth first along ``edges``
    (``settle``: stop after a round that changed nothing, as :func:`graph_propagate`)."""
    out = graph_outside()
    for _ in range(n_iter):
        best = torch.full_like(labels, float(out))
        for a, edge in enumerate(edges):
            best = torch.minimum(best, torch.where(edge, graph_pad_shift(labels, 2 + a, 1, float(out)), out))
            back = graph_shift(edge, 2 + a, -1, 0.0)
            best = torch.minimum(best, torch.where(back, graph_pad_shift(labels, 2 + a, -1, float(out)), out))
        grown = torch.where(todo & (labels == out), best, labels)
        if settle and bool(torch.equal(grown, labels)):
            break
        labels = grown
    return labels


def graph_flood_levels(
    labels: torch.Tensor, inside: torch.Tensor, height: torch.Tensor, top: int, rounds: int, settle: bool = False
) -> torch.Tensor:
    """A watershed's flooding: the labelled regions grow over ``inside`` level by level, from ``height``
    ``top`` down to 0 in steps of 1, ``rounds`` rounds of growth into the pixels at or above each level
    (they keep growing at the lower levels)."""
    for level in range(top, -1, -1):
        labels = graph_flood(labels, inside & (height >= float(level)), rounds, settle)
    return labels


def graph_max_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Maximum over the ``(2 radius + 1)^d`` box (separable; ``-1`` outside)."""
    for a in range(x.dim() - 2):
        for _ in range(radius):
            x = torch.maximum(x, torch.maximum(graph_shift(x, 2 + a, 1, -1.0), graph_shift(x, 2 + a, -1, -1.0)))
    return x


class GraphInstances(nn.Module):
    """Instance labels from the pixel-adjacency graph of embeddings (and a foreground channel).

    All constructor arguments are plain numbers and strings (bioimage.io ``kwargs``); see the
    module docstring for the algorithm.

    Parameters
    ----------
    split:
        ``"embedding"``: components of neighbours whose embeddings are closer than
        ``edge_threshold``. ``"shape"``: the foreground split by its distance transform (needs
        ``foreground="mask"``); the embeddings are not used.
    edge_threshold:
        Largest embedding distance between two face neighbours of one object (embedding units).
    spacing:
        Voxel size per spatial axis relative to their geometric mean (a z step three times the pixel
        size: ``[2.08, 0.69, 0.69]``): the threshold along each axis is ``edge_threshold`` times that
        axis's value. ``None``: the same threshold on every axis. A list of another length than the
        input's spatial axes is refused when the module runs (``ValueError``).
    min_distance:
        ``"shape"``: smallest distance between two object centres, in pixels.
    min_size:
        Components with fewer pixels join a neighbouring component (or become 0).
    seed_size:
        ``"embedding"``: 0 (default), the objects are the components of the graph; above 0, the
        components of a stricter graph (:func:`graph_seed_fraction` ``x edge_threshold``) with at least
        this many pixels are seeds that share out the components they lie in (see the module docstring).
    n_iter:
        Rounds of label propagation (each scans every axis both ways by doubling). A label turns about
        one corner of an object's edge graph per round; the default, 12, joins the porous objects of
        volumes, whose settings use it (images use 4, :func:`spoco_zoo.cluster.settings.graph_iterations`).
    foreground:
        ``"mask"``: the last input channel is a foreground logit (pixels with a logit <= 0 are 0);
        ``"drop"``: it is ignored; ``"none"``: every channel is an embedding.
    background_largest:
        Without a mask: the largest component is the background (0).

    Notes
    -----
    ``forward(embeddings [B, C, *S] float) -> labels [B, 1, *S] int32`` for 2D (``yx``) and 3D
    (``zyx``) inputs of any size, also after export (sizes are symbolic).

    Examples
    --------
    >>> emb = torch.zeros(1, 3, 6, 8)
    >>> emb[:, 0, :, 4:] = 3.0   # two objects side by side
    >>> emb[:, 2] = 5.0          # foreground logit: everything is foreground
    >>> labels = GraphInstances(edge_threshold=0.5)(emb)[0, 0]
    >>> len(torch.unique(labels)), bool((labels[:, :4] == labels[0, 0]).all()), bool(labels[0, 0] != labels[0, 7])
    (2, True, True)
    """

    spacing: list[float]  # declared here: TorchScript cannot type an empty list set in __init__

    def __init__(
        self,
        split: str = "embedding",
        edge_threshold: float = 0.15,
        min_distance: int = 5,
        min_size: int = 0,
        n_iter: int = 12,  # volumes; spoco_zoo.cluster.settings.graph_iterations (this file imports only torch)
        foreground: str = "mask",
        background_largest: bool = True,
        spacing: list[float] | None = None,
        seed_size: int = 0,
    ) -> None:
        super().__init__()
        if split not in ("embedding", "shape"):
            raise ValueError(f"split must be 'embedding' or 'shape', got {split!r}")
        if foreground not in ("none", "mask", "drop"):
            raise ValueError(f"foreground must be 'none', 'mask' or 'drop', got {foreground!r}")
        if split == "shape" and foreground != "mask":
            raise ValueError("split 'shape' splits the foreground channel and needs foreground='mask'")
        if not edge_threshold > 0 or min_distance < 1 or min_size < 0 or n_iter < 1 or seed_size < 0:
            raise ValueError(
                "edge_threshold > 0, min_distance >= 1, min_size >= 0, n_iter >= 1, seed_size >= 0 required, got "
                f"{edge_threshold}, {min_distance}, {min_size}, {n_iter}, {seed_size}"
            )
        self.split = str(split)
        self.edge_threshold = float(edge_threshold)
        self.min_distance = int(min_distance)
        self.min_size = int(min_size)
        self.n_iter = int(n_iter)
        self.seed_size = int(seed_size)
        self.foreground = str(foreground)
        self.background_largest = bool(background_largest)
        scales = [float(v) for v in (spacing or [])]
        if not all(v > 0 for v in scales):
            raise ValueError(f"spacing must hold positive numbers, got {spacing}")
        self.spacing = scales
        #: Stop each propagation and growth once a round changes nothing, and skip scans along runs of edges
        #: that exist nowhere (:func:`graph_propagate`): the same labels, sooner. Not a constructor argument
        #: (packages store those); the eager route (:mod:`spoco_zoo.cluster.graph_method`) turns it on.
        self.settle = False

    def extra_repr(self) -> str:
        return (
            f"split={self.split!r}, edge_threshold={self.edge_threshold}, min_distance={self.min_distance}, "
            f"min_size={self.min_size}, n_iter={self.n_iter}, foreground={self.foreground!r}"
            + (f", spacing={self.spacing}" if self.spacing else "")
            + (f", seed_size={self.seed_size}" if self.seed_size else "")
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        x = embeddings.float()
        if self.foreground == "none":
            inside = torch.ones_like(x[:, :1], dtype=torch.bool)
        else:
            inside = x[:, -1:] > 0
            x = x[:, :-1]
            if self.foreground == "drop":
                inside = torch.ones_like(inside)
        return self.number(self.decode(x, inside, self.foreground == "mask")).to(torch.int32)

    def decode(self, embeddings: torch.Tensor, inside: torch.Tensor, masked: bool) -> torch.Tensor:
        """int32 labels ``[B, 1, *S]`` of ``embeddings [B, E, *S]`` within ``inside``: every object's pixels hold
        its representative (the flat index of its first pixel), :func:`graph_outside` elsewhere.

        ``masked``: ``inside`` is a real foreground (no component is removed for its size).
        """
        return self.clean(self.components(embeddings, inside), inside, masked, self.min_size)

    def components(self, embeddings: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        """Steps 2 and 3 of :meth:`decode`: the split into components, before the clean-up."""
        flat = inside.flatten(1)
        index = torch.arange(flat.size(1), dtype=torch.int32, device=inside.device).unsqueeze(0).expand(flat.shape)
        start = torch.where(flat, index, graph_outside()).reshape(inside.shape)
        if self.split == "embedding":
            edges: list[torch.Tensor] = []
            strict: list[torch.Tensor] = []
            n_axes = embeddings.dim() - 2
            if len(self.spacing) != 0 and len(self.spacing) != n_axes:
                raise ValueError("GraphInstances: spacing needs one value per spatial axis of the input")
            for a in range(n_axes):
                limit = self.edge_threshold * (self.spacing[a] if len(self.spacing) > 0 else 1.0)
                step = embeddings - graph_shift(embeddings, 2 + a, 1, 0.0)
                squared = (step * step).sum(1, keepdim=True)
                both = inside & graph_shift(inside, 2 + a, 1, 0.0)
                edges.append(both & (squared < limit * limit))
                if self.seed_size > 0:
                    seed_limit = graph_seed_fraction() * limit
                    strict.append(both & (squared < seed_limit * seed_limit))
            if self.seed_size > 0:
                labels = self.seeded(start, edges, strict, inside)
            else:
                labels = graph_propagate(start, edges, inside, self.n_iter, self.settle)
        else:
            labels = self.shape_split(inside, start)
        return labels

    def seeded(
        self, start: torch.Tensor, edges: list[torch.Tensor], strict: list[torch.Tensor], inside: torch.Tensor
    ) -> torch.Tensor:
        """Split ``"embedding"`` with ``seed_size``: the ``strict`` graph's components of at least ``seed_size``
        pixels grow over ``edges``; pixels none reaches keep their own components of ``edges``."""
        out = graph_outside()
        seeds = graph_propagate(start, strict, inside, self.n_iter, self.settle)
        seeds = torch.where(inside & (self.sizes(seeds) >= self.seed_size), seeds, out)
        labels = graph_flood_edges(seeds, edges, inside, graph_flood_rounds(), self.settle)
        rest = inside & (labels == out)
        rest_edges = [e & rest & graph_shift(rest, 2 + a, 1, 0.0) for a, e in enumerate(edges)]
        own = graph_propagate(torch.where(rest, start, out), rest_edges, rest, self.n_iter, self.settle)
        return torch.where(rest, own, labels)

    def clean(self, labels: torch.Tensor, inside: torch.Tensor, masked: bool, min_size: int) -> torch.Tensor:
        """Step 4 of :meth:`decode` on its :meth:`components`: components below ``min_size`` merged, and
        without a mask (``masked`` false) the largest removed (``background_largest``). One split can be
        cleaned with several ``min_size`` values (the end-of-training tuning does)."""
        if min_size > 0:
            labels = self.merge_small(labels, inside, min_size)
        if not masked and self.background_largest:
            labels = self.drop_largest(labels)
        return labels

    def distance(self, inside: torch.Tensor) -> torch.Tensor:
        """Euclidean distance of every ``inside`` pixel to the nearest outside one, exact up to
        ``R = 4 * min_distance + 8`` pixels (capped there; the image border is not background).

        Separable: the squared distance is minimised along one axis after the other,
        ``f(p) = min_{|k| <= R} f(p + k e_a) + k^2``, on a copy padded by ``R`` (no shift leaves it)."""
        radius = 4 * self.min_distance + 8
        far = float(4 * radius * radius)
        dist = torch.where(inside, far, 0.0)
        for a in range(inside.dim() - 2):
            axis = 2 + a
            n = dist.size(axis)
            pad = torch.full_like(dist.narrow(axis, 0, 1), far).expand(
                [radius if i == axis else dist.size(i) for i in range(dist.dim())]
            )
            padded = torch.cat([pad, dist, pad], axis)
            best = dist
            for k in range(1, radius + 1):
                best = torch.minimum(best, padded.narrow(axis, radius + k, n) + float(k * k))
                best = torch.minimum(best, padded.narrow(axis, radius - k, n) + float(k * k))
            dist = best
        return torch.sqrt(dist)

    def shape_split(self, inside: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """Markers at the distance maxima (``min_distance`` apart), flooded over the foreground."""
        out = graph_outside()
        dist = self.distance(inside)
        peaks = inside & (dist >= graph_max_filter(dist, self.min_distance))
        # of equal maxima closer than min_distance (a plateau, a ridge) only the last in raster order
        order = torch.where(peaks, start.float(), -1.0)
        peaks = peaks & (
            order
            >= graph_max_filter(
                torch.where(dist >= graph_max_filter(dist, self.min_distance), order, -1.0), self.min_distance
            )
        )
        markers = torch.where(peaks, start, out)
        labels = graph_flood_levels(markers, inside, dist, 4 * self.min_distance + 8, 2, self.settle)
        # foreground no level reached (none expected)
        labels = graph_flood(labels, inside, graph_flood_rounds(), self.settle)
        rest = inside & (labels == out)  # foreground no marker reached: its own components
        own = graph_propagate(torch.where(rest, start, out), graph_face_edges(rest), rest, self.n_iter, self.settle)
        return torch.where(rest, own, labels)

    def sizes(self, labels: torch.Tensor) -> torch.Tensor:
        """Pixels per label, at every pixel (``[B, 1, *S]`` int64; the outside label counts too)."""
        flat = labels.flatten(1)
        bins = graph_below(flat, flat.size(1)).to(torch.int64)  # the outside label counts in the last bin
        counts = torch.zeros(flat.size(0), flat.size(1) + 1, dtype=torch.int64, device=labels.device)
        counts = counts.scatter_add(1, bins, torch.ones_like(bins))
        return torch.gather(counts, 1, bins).reshape(labels.shape)

    def merge_small(self, labels: torch.Tensor, inside: torch.Tensor, min_size: int) -> torch.Tensor:
        """Components below ``min_size`` take a neighbouring component's label (none: outside)."""
        small = inside & (self.sizes(labels) < min_size)
        kept = torch.where(small, graph_outside(), labels)
        return graph_flood(kept, small, graph_flood_rounds(), self.settle)

    def drop_largest(self, labels: torch.Tensor) -> torch.Tensor:
        """The largest component of each image becomes outside (the background)."""
        size = torch.where(labels < graph_outside(), self.sizes(labels), 0)
        largest = size.flatten(1).max(1)[0].reshape([-1] + [1] * (labels.dim() - 1))
        return torch.where(size == largest, graph_outside(), labels)

    def number(self, labels: torch.Tensor) -> torch.Tensor:
        """Object ids that tiles decoded separately do not share, exact in float32 (ilastik's maps).

        ``labels`` hold each object's representative (the flat index of its first pixel). The id is
        ``(representative + offset) mod (2**24 - 1) + 1``: within one input the ids of distinct
        objects differ (up to ``2**24 - 1`` pixels), and the offset hashes every object of the input
        -- its representative, size and the first and second moments of its coordinates relative to
        the representative, integers identical in every runtime -- so that another tile gets other
        ids. Two tiles share an id with a probability of about ``K1 * K2 / 2**24`` (``K`` objects per
        tile). 0 outside.
        """
        prime = 2147483647  # 2**31 - 1
        flat = labels.flatten(1).to(torch.int64)
        n = flat.size(1)
        bins = graph_below(flat, n)  # the outside label counts in the last bin
        rep = graph_below(flat, n - 1)
        index = torch.arange(n, device=labels.device).unsqueeze(0).expand(flat.shape)
        terms: list[torch.Tensor] = [torch.ones_like(flat)]
        stride = n
        for a in range(labels.dim() - 2):
            size = labels.size(2 + a)
            stride = stride // size
            offset = torch.div(index, stride, rounding_mode="floor") % size
            offset = offset - torch.div(rep, stride, rounding_mode="floor") % size
            terms.append(offset)
            terms.append(offset * offset)
        key = rep % prime
        for term in terms:
            sums = torch.zeros(flat.size(0), n + 1, dtype=torch.int64, device=labels.device)
            sums = sums.scatter_add(1, bins, term)
            key = (key * 1000003 + torch.gather(sums, 1, bins) % prime) % prime
        first = (flat == index) & (flat < graph_outside())  # each object's representative pixel
        offset = (torch.where(first, key, 0) % 16777213).sum(1, keepdim=True) % 16777213
        ids = (rep + offset) % 16777215 + 1
        return torch.where(flat < graph_outside(), ids, 0).reshape(labels.shape)
