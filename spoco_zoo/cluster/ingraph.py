"""In-graph clustering: pixel embeddings -> instance labels with plain tensor ops.

This file imports nothing but ``math``, ``typing`` and ``torch`` on purpose: the exporter
concatenates it with the U-Net source into the architecture file of a bioimage.io package and
compiles :class:`InGraphClustering` into the TorchScript and ONNX weights, so a consumer that
only runs the network (deepImageJ, ilastik, bioimageio.core) receives a label image as a second
output. No ``from __future__`` import, no spoco_zoo import, module-level names that do not clash
with ``unet.py``. Design, limits and measured quality: ``docs/instances.md``.

Algorithm (per image, vectorised over the batch; every loop has a fixed trip count)
-----------------------------------------------------------------------------------
1. **Samples and seeds**: ``S = n_samples`` pixels of the flattened image (``N`` pixels),
   stratified -- stratum ``s`` is ``[s*N//S, (s+1)*N//S)`` and an integer hash of ``s`` picks
   the pixel in it (no column aliasing as with a plain stride) -- and ``M = n_seeds`` seeds
   picked among the samples the same way. Integer arithmetic only: identical in eager PyTorch,
   TorchScript and ONNX Runtime, and independent of any random state.
2. **Mean-shift**: ``n_iter`` non-blurring steps of the seeds over the samples, flat kernel of
   radius ``bandwidth`` or the SPOCO Gaussian kernel (0.5 at ``bandwidth``,
   ``sigma = bandwidth / sqrt(-2 ln 0.5)``).
3. **Merge**: every mode points to the densest mode within ``merge_radius`` (density = samples
   within ``bandwidth``; ties -> lower index) and pointer jumping finds the roots. As with
   scikit-learn's non-maximum suppression, two dense modes are never chained together through
   sparse boundary modes.
4. **Candidates**: clusters ranked by the seeds they hold (``topk``); the first
   ``K = max_instances`` are candidate centres, valid when they hold ``min_seeds`` seeds and an
   estimated ``support * N / M >= min_size`` pixels.
5. **Assignment**: every pixel goes to its nearest valid centre (an ``[N, K]`` score, the only
   large tensor). With ``min_size > 0`` a first pass counts each centre's *core* (pixels nearest
   to it and within ``bandwidth``); centres with a core below ``min_size`` -- modes of boundary
   or outlier pixels -- are dropped and the pixels assigned again. Optionally pixels farther than
   ``max_distance`` from their centre -> 0.
6. **Ids**: the cluster with most pixels -> 0 (``background_largest``), the others ``1..K-1`` in
   the order of their seed support (gaps possible); objects below ``min_size`` pixels -> 0.

Limits: at most ``K - 1`` objects (``K`` with ``background_largest=False``); objects without a
seed (smaller than about ``N / n_seeds`` pixels, or unlucky) join the nearest found cluster;
memory ``~4 * B * N * K`` bytes for the assignment plus ``~12 * B * n_seeds * n_samples`` bytes
for mean-shift.
"""

import math

import torch
from torch import nn

__all__ = ["InGraphClustering"]

#: With ``foreground="mask"``, every background pixel's embedding is replaced by this value in every
#: channel before clustering: far from any trained embedding (their norms stay within a few units),
#: yet small enough that squared distances expanded as |a|^2 + |b|^2 - 2ab keep float32 precision
#: well below the kernel width (1000 made ONNX Runtime and PyTorch disagree on 0.3 % of the labels).
BACKGROUND_POINT = 50.0


class InGraphClustering(nn.Module):
    """Fixed-iteration mean-shift clustering of pixel embeddings, exportable to TorchScript/ONNX.

    All constructor arguments are plain numbers/booleans (bioimage.io ``kwargs``); see the module
    docstring for the algorithm.

    Parameters
    ----------
    bandwidth:
        Mean-shift kernel radius in embedding units; the training pull margin ``delta_var``.
    n_seeds:
        Seeds ``M`` climbing to the modes; an object needs at least one seed to be found.
    n_samples:
        Sampled pixels ``S`` (>= ``n_seeds``) the modes are searched on. Time and memory of
        mean-shift grow with ``n_seeds * n_samples``.
    n_iter:
        Mean-shift iterations (fixed; the flat kernel typically converges in 5-10).
    gaussian:
        ``False``: flat kernel (distance < bandwidth); ``True``: Gaussian kernel
        ``exp(-d^2 / (2 sigma^2))``, ``sigma = bandwidth / sqrt(-2 ln 0.5)``.
    max_instances:
        Candidate centres ``K``, background included: at most ``K - 1`` objects.
    merge_radius:
        Modes closer than this are one cluster; ``<= 0`` means ``bandwidth``.
    background_largest:
        The cluster covering most pixels becomes 0 (the Python route's ``background="largest"``);
        otherwise every cluster is an object.
    min_size:
        Centres whose core (pixels within ``bandwidth``) is smaller are dropped before the final
        assignment, and objects with fewer pixels are set to 0.
    min_seeds:
        Clusters holding fewer seeds are dropped before assignment.
    max_distance:
        Pixels farther than this from their centre become 0; ``<= 0`` disables.
    n_jumps:
        Pointer-jumping steps of the merge; ``<= 0``: ``ceil(log2(n_seeds)) + 1`` (always enough).
    foreground:
        ``"none"``: every input channel is an embedding channel. ``"mask"``: the last channel is the
        network's foreground logit; it is not clustered, and pixels whose logit is not above 0 are
        background (0). ``"drop"``: the last channel is such a logit, ignored.

    Notes
    -----
    ``forward(embeddings [B, E, *S] float) -> labels [B, 1, *S] int32`` for any number of spatial
    axes (2D ``yx``, 3D ``zyx``) and any spatial size, also after export (sizes are symbolic).
    The output is a deterministic function of the input; batch items are clustered independently.

    Examples
    --------
    >>> emb = torch.zeros(1, 2, 8, 8)
    >>> emb[:, 0, :, 4:] = 3.0
    >>> InGraphClustering(n_seeds=32)(emb)[0, 0, 0].tolist()
    [0, 0, 0, 0, 1, 1, 1, 1]
    """

    def __init__(
        self,
        bandwidth: float = 0.5,  # spoco_zoo.cluster.settings.DEFAULT_DELTA_VAR (this file imports torch only)
        n_seeds: int = 2048,
        n_samples: int = 8192,
        n_iter: int = 15,
        gaussian: bool = False,
        max_instances: int = 255,
        merge_radius: float = 0.0,
        background_largest: bool = True,
        min_size: int = 0,
        min_seeds: int = 1,
        max_distance: float = 0.0,
        n_jumps: int = 0,
        foreground: str = "none",
    ) -> None:
        super().__init__()
        if foreground not in ("none", "mask", "drop"):
            raise ValueError(f"foreground must be 'none', 'mask' or 'drop', got {foreground!r}")
        if not bandwidth > 0:
            raise ValueError(f"bandwidth must be positive, got {bandwidth}")
        if n_seeds < 1 or n_iter < 0 or max_instances < 1 or min_size < 0 or min_seeds < 1:
            raise ValueError(
                "n_seeds >= 1, n_iter >= 0, max_instances >= 1, min_size >= 0, min_seeds >= 1 required, got "
                f"{n_seeds}, {n_iter}, {max_instances}, {min_size}, {min_seeds}"
            )
        radius = float(merge_radius) if merge_radius > 0 else float(bandwidth)
        self.bandwidth = float(bandwidth)
        self.n_seeds = int(n_seeds)
        self.n_samples = int(max(n_samples, n_seeds))
        self.n_iter = int(n_iter)
        self.gaussian = bool(gaussian)
        self.max_instances = int(max_instances)
        self.n_centres = int(min(max_instances, n_seeds))
        self.merge_radius = radius
        self.background_largest = bool(background_largest)
        self.min_size = int(min_size)
        self.min_seeds = int(min_seeds)
        self.max_distance = float(max_distance)
        self.n_jumps = int(n_jumps) if n_jumps > 0 else int(math.ceil(math.log2(max(n_seeds, 2)))) + 1
        self.foreground = str(foreground)
        self.background_point = BACKGROUND_POINT
        if self.foreground == "mask":  # the mask is the background, no cluster is removed for its size
            self.background_largest = False
        # squared radii and the Gaussian's exponent factor 1 / (2 sigma^2), sigma^2 = bw^2 / (-2 ln 0.5)
        self.bw2 = self.bandwidth * self.bandwidth
        self.merge2 = radius * radius
        self.max_d2 = self.max_distance * self.max_distance
        self.inv_two_sigma2 = (-2.0 * math.log(0.5)) / (2.0 * self.bw2)

    def extra_repr(self) -> str:
        return (
            f"bandwidth={self.bandwidth}, n_seeds={self.n_seeds}, n_samples={self.n_samples}, n_iter={self.n_iter}, "
            f"gaussian={self.gaussian}, max_instances={self.max_instances}, merge_radius={self.merge_radius}, "
            f"background_largest={self.background_largest}, min_size={self.min_size}, "
            f"min_seeds={self.min_seeds}, max_distance={self.max_distance}, foreground={self.foreground!r}"
        )

    @staticmethod
    def _sq_dist(a: torch.Tensor, b: torch.Tensor, bn: torch.Tensor) -> torch.Tensor:
        """Squared distances ``[B, P, Q]`` between ``a [B, P, E]`` and ``b [B, Q, E]`` (``bn = |b|^2``)."""
        an = (a * a).sum(dim=-1)
        return (an.unsqueeze(2) + bn.unsqueeze(1) - 2.0 * torch.bmm(a, b.transpose(1, 2))).clamp_min(0.0)

    def sample_index(self, n_pixels: torch.Tensor, count: int) -> torch.Tensor:
        """Flat indices ``[count]`` (int64) of pixels sampled from an image of ``n_pixels`` pixels.

        Stratum ``m`` is ``[m*N//count, (m+1)*N//count)``; Knuth's multiplicative hash of ``m``
        (as a fraction of 2**32) picks the pixel inside it. Integer arithmetic only.
        """
        m = torch.arange(count, dtype=torch.long, device=n_pixels.device)
        start = (m * n_pixels) // count
        width = ((m + 1) * n_pixels) // count - start
        frac = (m * 2654435761) % 4294967296
        return start + (frac * width) // 4294967296

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        if self.foreground == "none":
            return self.cluster(embeddings)
        emb = embeddings[:, :-1]
        if self.foreground == "drop":
            return self.cluster(emb)
        # background pixels all move to one far point: one cluster, one centre, masked out below
        inside = embeddings[:, -1:] > 0
        labels = self.cluster(torch.where(inside, emb, torch.full_like(emb, self.background_point)))
        return torch.where(inside, labels, torch.zeros_like(labels))

    def cluster(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Labels ``[B, 1, *S]`` (int32) of embeddings ``[B, E, *S]`` (every channel clustered)."""
        shape = embeddings.shape
        batch = shape[0]
        dims = shape[1]
        x = embeddings.float().reshape(batch, dims, -1).transpose(1, 2)  # [B, N, E]
        device = x.device
        n_pixels = torch.ones((), dtype=torch.long, device=device) * x.shape[1]
        n_seeds = self.n_seeds
        n_centres = self.n_centres
        order = (n_seeds - 1 - torch.arange(n_seeds, dtype=torch.long, device=device)).unsqueeze(0)
        rank = torch.arange(n_centres, dtype=torch.long, device=device).unsqueeze(0)  # [1, K]

        # 1. S samples of the image (the data) and M seeds among them
        pts = torch.index_select(x, 1, self.sample_index(n_pixels, self.n_samples))  # [B, S, E]
        n_samples = torch.full((), self.n_samples, dtype=torch.long, device=device)
        y = torch.index_select(pts, 1, self.sample_index(n_samples, n_seeds))  # [B, M, E]
        pn = (pts * pts).sum(dim=-1)

        # 2. non-blurring mean-shift of the seeds over the samples. One matmul gives the kernel
        #    argument for all seed/sample pairs, a second one the kernel sums and weights together
        #    (the samples carry an extra column of ones); the [B, M, S] kernel is the largest tensor.
        ones_s = torch.ones_like(pts[:, :, :1])
        pts1 = torch.cat([pts, ones_s], dim=2)  # [B, S, E + 1]
        # |y - p|^2 < bw^2  <=>  [y, 1] . [-2p, |p|^2] < bw^2 - |y|^2: one matmul per test
        flat_rhs = torch.cat([pts * -2.0, pn.unsqueeze(2)], dim=2).transpose(1, 2)  # [B, E + 1, S]
        # exp(-c |y - p|^2) = exp([y, 1] . [2c p, -c |p|^2] - c |y|^2), c = 1 / (2 sigma^2)
        c = self.inv_two_sigma2
        gauss_rhs = torch.cat([pts * (2.0 * c), (pn * -c).unsqueeze(2)], dim=2).transpose(1, 2)
        ones_m = torch.ones_like(y[:, :, :1])
        for _ in range(self.n_iter):
            yn = (y * y).sum(dim=-1, keepdim=True)
            if self.gaussian:
                w = torch.exp(torch.bmm(torch.cat([y, ones_m], dim=2), gauss_rhs) - yn * c)  # [B, M, S]
            else:
                w = (torch.bmm(torch.cat([y, ones_m], dim=2), flat_rhs) < self.bw2 - yn).float()
            acc = torch.bmm(w, pts1)  # [B, M, E + 1]: weighted sums and the total weight
            total = acc[:, :, dims:]
            y = torch.where(total > 0, acc[:, :, :dims] / total.clamp_min(1e-30), y)

        # 3. merge modes: each points to the densest mode within merge_radius (itself included;
        #    density = samples within bandwidth, ties -> lower index), pointer jumping finds the roots
        yn = (y * y).sum(dim=-1, keepdim=True)
        inside = torch.bmm(torch.cat([y, ones_m], dim=2), flat_rhs) < self.bw2 - yn
        density = inside.float().sum(dim=-1).long()  # [B, M]
        key = density * n_seeds + order  # unique per mode
        near = self._sq_dist(y, y, (y * y).sum(dim=-1)) < self.merge2
        near = near | torch.eye(n_seeds, dtype=torch.bool, device=device).unsqueeze(0)
        # int32 / float32 arguments of ArgMax and TopK: older ONNX Runtimes (deepImageJ's 1.12/1.13)
        # have no int64 kernels for them; the keys stay below 2**24 (exact in float32) for
        # n_samples * n_seeds < 2**24 - n_seeds, and below 2**31 always
        keys = torch.where(near, key.unsqueeze(1), torch.full_like(key, -1).unsqueeze(1)).to(torch.int32)
        root = torch.argmax(keys, dim=-1)
        for _ in range(self.n_jumps):
            root = torch.gather(root, 1, root)  # [B, M]

        # 4. clusters ranked by support (seeds they hold); the top K are the candidate centres, valid
        #    with >= min_seeds seeds and an estimated size (support * N / M) of >= min_size pixels
        support = torch.zeros(batch, n_seeds, dtype=torch.float32, device=device)
        support = support.scatter_add(1, root, torch.ones_like(root, dtype=torch.float32)).long()
        _, top = torch.topk((support * n_seeds + order).float(), n_centres, dim=1)  # [B, K]; < n_seeds**2
        top_support = torch.gather(support, 1, top)
        valid = (top_support >= self.min_seeds) & (top_support * n_pixels >= self.min_size * n_seeds)
        valid = valid | (rank == 0)  # at least one centre
        centres = torch.gather(y, 1, top.unsqueeze(2).expand(-1, -1, dims))  # [B, K, E]
        xn = (x * x).sum(dim=-1)  # [B, N]

        # 5. nearest valid centre of every pixel. With min_size, a first pass counts each centre's
        #    core (pixels nearest to it and within bandwidth); centres with a core below min_size
        #    (boundary / outlier modes) are dropped and the pixels assigned again.
        best, assign = self._nearest(x, centres, valid)
        if self.min_size > 0:
            core = torch.zeros(batch, n_centres, dtype=torch.float32, device=device)
            core = core.scatter_add(1, assign, (best + xn < self.bw2).float())
            best, assign = self._nearest(x, centres, valid & ((core >= self.min_size) | (rank == 0)))
        if self.max_distance > 0:
            assign = torch.where(best + xn > self.max_d2, torch.full_like(assign, n_centres), assign)

        # 6. ids: largest cluster -> 0, others numbered by support rank, < min_size pixels -> 0;
        #    slot K of the look-up table collects the pixels beyond max_distance
        counts = torch.zeros(batch, n_centres + 1, dtype=torch.float32, device=device)
        counts = counts.scatter_add(1, assign, torch.ones_like(assign, dtype=torch.float32))[:, :n_centres]
        ids = (rank + 1).expand(batch, -1)
        if self.background_largest:
            bg = torch.argmax(counts, dim=1, keepdim=True)  # [B, 1]
            ids = torch.where(rank > bg, rank, rank + 1)
            ids = torch.where(rank == bg, torch.zeros_like(ids), ids)
        ids = torch.where(counts < float(max(self.min_size, 1)), torch.zeros_like(ids), ids)
        lut = torch.cat([ids, torch.zeros_like(ids[:, :1])], dim=1)  # [B, K + 1]
        labels = torch.gather(lut, 1, assign).to(torch.int32)
        return labels.view([batch, 1] + list(shape[2:]))

    @staticmethod
    def _nearest(x: torch.Tensor, centres: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(|x - c|^2 - |x|^2 [B, N], index [B, N])`` of the nearest valid centre of every pixel.

        The only ``[B, N, K]`` tensor of the module (memory ``4 * B * N * K`` bytes).
        """
        cn = (centres * centres).sum(dim=-1)
        cn = torch.where(valid, cn, torch.full_like(cn, 1e30)).unsqueeze(2)  # [B, K, 1]
        rhs = torch.cat([centres * -2.0, cn], dim=2).transpose(1, 2)  # [B, E + 1, K]
        score = torch.bmm(torch.cat([x, torch.ones_like(x[:, :, :1])], dim=2), rhs)  # [B, N, K]
        return torch.min(score, dim=-1)
