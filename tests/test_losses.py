"""Tests of the SPOCO loss terms (spoco_zoo.losses)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch

from spoco_zoo.config import LossConfig
from spoco_zoo.errors import DataError
from spoco_zoo.kernels import gaussian_sigma
from spoco_zoo.losses import (
    LOSS_TERMS,
    SpocoLoss,
    consistency_loss,
    cover_with_anchors,
    dice_loss,
    embedding_loss,
    group_pixels,
    instance_loss,
    instance_means,
    pull_loss,
    push_loss,
    regularizer,
    sample_group_members,
    unlabeled_push_loss,
)

DV, DD = 0.5, 2.0
EMB_DIM = 8
SEP = 10.0  # distance scale of the hand-made embedding: one-hot * SEP, pairwise 14.1 > 4 * DD
SHAPES = {2: (16, 16), 3: (4, 8, 8)}


def stripe_labels(shape: Sequence[int], n_objects: int) -> torch.Tensor:
    """Background (0) plus objects 1..n as equal contiguous stripes of the flattened image."""
    size = math.prod(shape)
    return (torch.arange(size) * (n_objects + 1) // size).reshape(*shape)


def sparsify(labels: torch.Tensor, keep: Sequence[int]) -> torch.Tensor:
    """Labels with every id not in ``keep`` set to the ignore label -1."""
    kept = torch.isin(labels, torch.tensor(list(keep)))
    return torch.where(kept, labels, torch.full_like(labels, -1))


def separated_embedding(labels: torch.Tensor, dim: int = EMB_DIM) -> torch.Tensor:
    """[B, E, *S]: every pixel of label v sits at SEP * one_hot(v + 1) (ignore -1 included)."""
    points = torch.eye(dim) * SEP
    return points[labels + 1].movedim(-1, 1).contiguous()


def batch_labels(dims: int) -> torch.Tensor:
    """Two images with sparse labels: 3 annotated objects + background, 1 annotated object."""
    shape = SHAPES[dims]
    first = sparsify(stripe_labels(shape, 5), keep=[0, 1, 3, 4])
    second = sparsify(stripe_labels(shape, 3), keep=[0, 2])
    return torch.stack([first, second])


def per_image_terms(embeddings: torch.Tensor, labels: torch.Tensor):
    for image, image_labels in zip(embeddings, labels):
        pixels, ids, count = group_pixels(image, image_labels)
        yield pixels, ids, instance_means(pixels, ids, count)


# --------------------------------------------------------------------------- perfect / bad embeddings


@pytest.mark.parametrize("dims", [2, 3])
def test_terms_vanish_on_separated_embedding(dims: int) -> None:
    labels = batch_labels(dims)
    emb = separated_embedding(labels)
    for pixels, ids, means in per_image_terms(emb, labels):
        assert float(pull_loss(pixels, ids, means, DV)) < 1e-6
        assert float(push_loss(means, DD)) < 1e-6
    assert float(embedding_loss(emb, labels, DV, DD, gamma=0.0)) < 1e-6
    # with the default gamma only the regulariser remains: every mean has norm SEP
    assert float(embedding_loss(emb, labels, DV, DD)) == pytest.approx(0.001 * SEP, rel=1e-5)
    assert float(instance_loss(emb, labels, DV)) < 1e-3
    assert float(instance_loss(emb, labels, DV, include_background=True, anchors_per_object=3)) < 1e-3
    assert float(instance_loss(emb, labels, DV, anchor="mean")) < 1e-3
    # teacher with the same partition but moved/relabelled points: soft masks agree
    teacher = emb.roll(1, dims=1) + 3.0
    assert float(consistency_loss(emb, emb, labels, DV)) < 1e-6
    assert float(consistency_loss(emb, teacher, labels, DV)) < 1e-3


@pytest.mark.parametrize("dims", [2, 3])
def test_terms_positive_on_bad_embedding(dims: int) -> None:
    labels = batch_labels(dims)
    collapsed = torch.zeros(2, EMB_DIM, *SHAPES[dims])
    generator = torch.Generator().manual_seed(0)
    spread = torch.randn(collapsed.shape, generator=generator) * 3.0
    for pixels, ids, means in per_image_terms(spread, labels):
        assert float(pull_loss(pixels, ids, means, DV)) > 1.0
    for _, _, means in per_image_terms(collapsed, labels):
        # all means coincide: every pair costs DD ** 2
        assert float(push_loss(means, DD)) == pytest.approx(DD**2, rel=1e-4)
    assert float(embedding_loss(collapsed, labels, DV, DD)) > 1.0
    assert float(embedding_loss(spread, labels, DV, DD)) > 1.0

    # collapsed: the soft mask is 1 on every pixel of the patch, unannotated ones included
    # -> Dice = 1 - 2|obj| / (|patch| + |obj|)
    expected = []
    for image_labels in labels:
        everything = image_labels.numel()
        for obj in image_labels.unique():
            if obj > 0:
                size = int((image_labels == obj).sum())
                expected.append(1 - 2 * size / (everything + size))
    for anchor in ("pixel", "mean"):
        value = float(instance_loss(collapsed, labels, DV, anchor=anchor))
        assert value == pytest.approx(sum(expected) / len(expected), rel=1e-4)
    assert float(instance_loss(spread, labels, DV)) > 0.3

    teacher = separated_embedding(stripe_labels(SHAPES[dims], 6).expand_as(labels))
    assert float(consistency_loss(collapsed, teacher, labels, DV)) > 0.3


def test_term_values_match_hand_computation() -> None:
    # one object, two pixels at +-a along axis 0: mean 0, both at distance a
    a = 1.25
    pixels = torch.tensor([[a, -a], [0.0, 0.0]])
    ids = torch.tensor([0, 0])
    means = instance_means(pixels, ids, 1)
    assert torch.allclose(means, torch.zeros(2, 1))
    assert float(pull_loss(pixels, ids, means, DV)) == pytest.approx((a - DV) ** 2)
    # push margin convention: means are pushed until they are delta_dist apart (no factor 2)
    for gap in (0.5, 1.5, DD, 3.0):
        two = torch.tensor([[0.0, gap], [0.0, 0.0]])
        assert float(push_loss(two, DD)) == pytest.approx(max(0.0, DD - gap) ** 2, abs=1e-6)
    assert float(push_loss(torch.zeros(2, 1), DD)) == 0.0  # single instance: no push
    assert float(regularizer(torch.tensor([[3.0, 0.0], [4.0, 1.0]]))) == pytest.approx(3.0)


def test_dice_loss_values() -> None:
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    assert torch.allclose(dice_loss(target, target), torch.zeros(2), atol=1e-6)
    assert torch.allclose(dice_loss(target, target.flip(0)), torch.ones(2), atol=1e-6)
    soft = torch.tensor([0.3, 0.7, 0.2])
    assert float(dice_loss(soft, soft)) == pytest.approx(0.0, abs=1e-6)
    pred = torch.tensor([1.0, 1.0, 1.0, 1.0])
    weight = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert float(dice_loss(pred, target[0], weight_mask=weight)) == pytest.approx(0.0, abs=1e-6)
    assert float(dice_loss(pred, target[0])) == pytest.approx(1 - 4 / 6, abs=1e-6)


def test_consistency_identical_zero_and_different_positive() -> None:
    labels = batch_labels(2)
    generator = torch.Generator().manual_seed(1)
    student = torch.randn(2, EMB_DIM, *SHAPES[2], generator=generator) * 0.3
    assert float(consistency_loss(student, student.clone(), labels, DV)) < 1e-6
    teacher = student.clone()
    unlabeled = (labels == -1).unsqueeze(1).expand_as(teacher)
    teacher[unlabeled] = torch.randn(int(unlabeled.sum()), generator=generator) * 0.3
    assert float(consistency_loss(student, teacher, labels, DV, max_anchors=8)) > 0.1
    # the soft masks span the whole patch: a teacher that moves only the annotated pixels away
    # from the unlabeled region disagrees with a student that keeps them close
    teacher = student.clone()
    teacher[~unlabeled] += 5.0
    assert float(consistency_loss(student, teacher, labels, DV)) > 0.1


@pytest.mark.parametrize("dims", [2, 3])
def test_consistency_anchors_cover_the_unlabeled_region(dims: int) -> None:
    """Anchors are drawn until every unlabeled pixel lies within delta_var of one (in the teacher's space)."""
    dense = stripe_labels(SHAPES[dims], 6)
    labels = sparsify(dense, keep=[0, 2])
    teacher = separated_embedding(dense.unsqueeze(0))[0]
    noise = torch.randn(teacher.shape, generator=torch.Generator().manual_seed(0)) * 0.05
    pixels = (teacher + noise).reshape(EMB_DIM, -1)
    region = labels.reshape(-1) == -1
    anchors = cover_with_anchors(pixels, region, DV, max_anchors=50, min_uncovered=0.0)
    # one anchor per unlabeled object (ids 1, 3, 4, 5, 6): no two anchors in one object
    assert sorted(dense.reshape(-1)[anchors].tolist()) == [1, 3, 4, 5, 6]
    assert bool(region[anchors].all())
    distances = torch.cdist(pixels.T[region], pixels.T[anchors])
    assert bool((distances.min(1).values < DV).all())
    # a cap on the number of anchors, and an early stop once little is left uncovered
    assert cover_with_anchors(pixels, region, DV, max_anchors=2, min_uncovered=0.0).numel() == 2
    assert cover_with_anchors(pixels, region, DV, min_uncovered=0.99).numel() == 1
    # a scattered region needs many anchors: every pixel is its own cluster
    scattered = torch.randn(EMB_DIM, 200, generator=torch.Generator().manual_seed(1)) * 10.0
    everything = torch.ones(200, dtype=torch.bool)
    assert cover_with_anchors(scattered, everything, DV, max_anchors=500, min_uncovered=0.0).numel() == 200


# --------------------------------------------------------------------------- ignore pixels and gradients


def test_ignore_pixels_do_not_change_the_embedding_term() -> None:
    labels = batch_labels(2)
    generator = torch.Generator().manual_seed(2)
    emb = torch.randn(2, EMB_DIM, *SHAPES[2], generator=generator)
    changed = emb.clone()
    ignore = (labels == -1).unsqueeze(1).expand_as(emb)
    changed[ignore] = torch.randn(int(ignore.sum()), generator=generator) * 100.0
    for background in (True, False):
        before = embedding_loss(emb, labels, DV, DD, background_as_instance=background)
        after = embedding_loss(changed, labels, DV, DD, background_as_instance=background)
        assert torch.equal(before, after)


@pytest.mark.parametrize("anchor", ["pixel", "mean"])
def test_instance_term_pushes_unannotated_pixels_out_of_annotated_masks(anchor: str) -> None:
    """Positive-unlabeled rule: unannotated pixels are negatives of every annotated object.

    Unannotated pixels that sit on an annotated object's embedding get a gradient from the
    instance term, and a step along it lowers their soft-mask value for that object.
    """
    dense = stripe_labels(SHAPES[2], 4)
    labels = sparsify(dense, keep=[0, 1, 2]).unsqueeze(0)  # objects 3 and 4 not annotated
    emb = separated_embedding(dense.unsqueeze(0))
    ignore = labels[0] == -1
    generator = torch.Generator().manual_seed(9)
    jitter = torch.randn(EMB_DIM, int(ignore.sum()), generator=generator) * 0.05
    emb[0][:, ignore] = emb[0][:, labels[0] == 1][:, :1] + jitter  # unannotated pixels collapse onto object 1
    emb.requires_grad_()
    loss = instance_loss(emb, labels, DV, anchor=anchor, generator=torch.Generator().manual_seed(3))
    assert float(loss.detach()) > 0.2
    loss.backward()
    grad = emb.grad[0].abs().sum(0)
    assert bool((grad[ignore] > 0).all())

    def mask_on_unannotated(e: torch.Tensor) -> float:
        mean = e[0][:, labels[0] == 1].mean(1, keepdim=True)
        sq = (e[0][:, ignore] - mean).pow(2).sum(0)
        return float(torch.exp(-sq / (2 * gaussian_sigma(DV) ** 2)).mean())

    with torch.no_grad():  # a step of length 0.1 along the gradient, for the unannotated pixels only
        direction = emb.grad / emb.grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
        stepped = emb - 0.1 * direction * ignore
    assert mask_on_unannotated(stepped) < mask_on_unannotated(emb.detach()) - 1e-3
    after = instance_loss(stepped, labels, DV, anchor=anchor, generator=torch.Generator().manual_seed(3))
    assert float(after) < float(loss.detach())


@pytest.mark.parametrize("dims", [2, 3])
def test_which_terms_reach_unlabeled_pixels(dims: int) -> None:
    """The embedding term never touches unannotated pixels; instance, unlabeled push and consistency do."""
    labels = batch_labels(dims)
    generator = torch.Generator().manual_seed(3)
    emb = (torch.randn(2, EMB_DIM, *SHAPES[dims], generator=generator) * 0.3).requires_grad_()
    ignore = labels == -1

    embedding_loss(emb, labels, DV, DD).backward()
    grad_norm = emb.grad.abs().sum(1)
    assert torch.equal(grad_norm[ignore], torch.zeros_like(grad_norm[ignore]))
    assert (grad_norm[~ignore] > 0).float().mean() > 0.9

    emb.grad = None
    instance_loss(emb, labels, DV, generator=generator).backward()
    grad_norm = emb.grad.abs().sum(1)
    assert (grad_norm[ignore] > 0).float().mean() > 0.9

    emb.grad = None
    unlabeled_push_loss(emb, labels, DD).backward()  # random embeddings near 0: every pixel within DD
    grad_norm = emb.grad.abs().sum(1)
    assert (grad_norm[ignore] > 0).all()

    emb.grad = None
    teacher = (torch.randn(emb.shape, generator=generator) * 0.3).requires_grad_()
    consistency_loss(emb, teacher, labels, DV, max_anchors=8, generator=generator).backward()
    grad_norm = emb.grad.abs().sum(1)
    assert (grad_norm[ignore] > 0).float().mean() > 0.9
    assert (grad_norm[~ignore] > 0).float().mean() > 0.9  # soft masks span the whole patch
    assert teacher.grad is None


# --------------------------------------------------------------------------- batches, dims, dtypes


@pytest.mark.parametrize("dims", [2, 3])
def test_batch_mixed_objects_and_empty_image(dims: int) -> None:
    shape = SHAPES[dims]
    labels = torch.stack(
        [
            sparsify(stripe_labels(shape, 4), keep=[0, 1, 2, 3]),
            sparsify(stripe_labels(shape, 2), keep=[2]),
            torch.full(shape, -1),  # nothing annotated
        ]
    )
    generator = torch.Generator().manual_seed(4)
    emb = torch.randn(3, EMB_DIM, *shape, generator=generator).requires_grad_()
    total = (
        embedding_loss(emb, labels, DV, DD)
        + instance_loss(emb, labels, DV, anchors_per_object=2, generator=generator)
        + consistency_loss(emb, emb.detach() + 0.1, labels, DV, generator=generator)
    )
    assert torch.isfinite(total)
    total.backward()
    assert torch.isfinite(emb.grad).all()
    # the batch embedding loss is the mean of per-image losses (the empty image adds 0)
    per_image = [float(embedding_loss(emb.detach()[i : i + 1], labels[i : i + 1], DV, DD)) for i in range(3)]
    assert per_image[2] == 0.0
    assert float(embedding_loss(emb.detach(), labels, DV, DD)) == pytest.approx(sum(per_image) / 3, rel=1e-5)


def test_ids_are_per_image() -> None:
    labels = batch_labels(2)[:1].repeat(2, 1, 1)
    emb = separated_embedding(labels)
    emb[1] += 20.0  # same ids, far away points: only merging images would create a pull
    assert float(embedding_loss(emb, labels, DV, DD, gamma=0.0)) < 1e-6
    assert float(instance_loss(emb, labels, DV)) < 1e-3


def test_no_annotation_gives_zero_with_grad() -> None:
    emb = torch.randn(2, EMB_DIM, 8, 8, requires_grad=True)
    for labels in (torch.full((2, 8, 8), -1), torch.zeros(2, 8, 8, dtype=torch.long)):
        loss = instance_loss(emb, labels, DV)
        assert float(loss.detach()) == 0.0 and loss.requires_grad
        loss.backward()
        assert torch.equal(emb.grad, torch.zeros_like(emb))
        emb.grad = None
    empty = embedding_loss(emb, torch.full((2, 8, 8), -1), DV, DD)
    assert float(empty.detach()) == 0.0 and empty.requires_grad
    dense = torch.zeros(2, 8, 8, dtype=torch.long)  # nothing unlabeled
    assert float(consistency_loss(emb, emb.detach(), dense, DV).detach()) == 0.0


def test_half_precision_inputs_are_cast() -> None:
    labels = batch_labels(2)
    emb = (torch.randn(2, EMB_DIM, *SHAPES[2]) * 4.0).half().requires_grad_()
    results = [
        embedding_loss(emb, labels, DV, DD),
        instance_loss(emb, labels, DV),
        consistency_loss(emb, emb.detach() * 0.5, labels, DV),
        SpocoLoss(LossConfig())(emb, labels, emb.detach() * 0.5)[0],
    ]
    for loss in results:
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
    sum(results).backward()
    assert torch.isfinite(emb.grad).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, terms = SpocoLoss(LossConfig())(emb.detach().float(), labels, emb.detach().float() * 0.5)
    assert total.dtype == torch.float32 and math.isfinite(terms["total"])


def test_instance_loss_is_deterministic_given_generator() -> None:
    labels = batch_labels(3)
    emb = torch.randn(2, EMB_DIM, *SHAPES[3], generator=torch.Generator().manual_seed(6))

    def run(seed: int) -> tuple:
        gen = torch.Generator().manual_seed(seed)
        return float(instance_loss(emb, labels, DV, generator=gen)), float(
            consistency_loss(emb, emb * 0.5, labels, DV, generator=gen)
        )

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_sample_group_members_in_range() -> None:
    counts = torch.tensor([1, 2, 7, 1000])
    offsets = sample_group_members(counts, 50, torch.Generator().manual_seed(0))
    assert offsets.shape == (4, 50)
    assert (offsets >= 0).all() and (offsets < counts[:, None]).all()
    assert torch.equal(offsets[0], torch.zeros(50, dtype=torch.long))
    assert len(offsets[2].unique()) > 3


def test_bad_inputs_raise_data_error() -> None:
    emb = torch.randn(2, EMB_DIM, 8, 8)
    with pytest.raises(DataError, match="labels"):
        embedding_loss(emb, torch.zeros(2, 8, 9, dtype=torch.long), DV, DD)
    with pytest.raises(DataError, match="labels"):
        instance_loss(emb, torch.zeros(2, 8, 8), DV)
    with pytest.raises(DataError, match="teacher"):
        consistency_loss(emb, emb[:1], torch.zeros(2, 8, 8, dtype=torch.long), DV)


# --------------------------------------------------------------------------- SpocoLoss


def test_spoco_loss_weights_and_terms() -> None:
    labels = batch_labels(2)
    emb = torch.randn(2, EMB_DIM, *SHAPES[2], generator=torch.Generator().manual_seed(7)) * 0.5
    teacher = emb * 0.8 + 0.1
    config = LossConfig(embedding_weight=0.5, instance_weight=2.0, consistency_weight=3.0, unlabeled_push_weight=0.25)

    total, terms = SpocoLoss(config)(emb, labels, teacher, generator=torch.Generator().manual_seed(8))
    assert tuple(terms) == LOSS_TERMS
    assert all(isinstance(v, float) for v in terms.values())
    gen = torch.Generator().manual_seed(8)
    expected = {
        "embedding": float(embedding_loss(emb, labels, DV, DD)),
        "instance": float(instance_loss(emb, labels, DV, generator=gen, anchor=config.instance_anchor)),
        "unlabeled_push": float(unlabeled_push_loss(emb, labels, DD)),
        "consistency": float(consistency_loss(emb, teacher, labels, DV, generator=gen)),
    }
    for key, value in expected.items():
        assert terms[key] == pytest.approx(value, rel=1e-5)
        assert value > 0
    weights = {"embedding": 0.5, "instance": 2.0, "unlabeled_push": 0.25, "consistency": 3.0}
    weighted = sum(weights[k] * expected[k] for k in weights)
    assert float(total) == pytest.approx(weighted, rel=1e-5)
    assert terms["total"] == pytest.approx(weighted, rel=1e-5)

    for name in ("embedding", "instance", "unlabeled_push", "consistency"):
        off = config.model_copy(update={f"{name}_weight": 0.0})
        total_off, terms_off = SpocoLoss(off)(emb, labels, teacher, generator=torch.Generator().manual_seed(8))
        assert terms_off[name] == 0.0
        remaining = dict(expected, **{name: 0.0})
        if name == "instance":  # a skipped term draws no anchors: consistency sees the fresh generator
            gen = torch.Generator().manual_seed(8)
            remaining["consistency"] = float(consistency_loss(emb, teacher, labels, DV, generator=gen))
        for key in remaining:
            assert terms_off[key] == pytest.approx(remaining[key], rel=1e-5)
        assert float(total_off) == pytest.approx(sum(weights[k] * remaining[k] for k in weights), rel=1e-5)

    no_teacher, terms_nt = SpocoLoss(config)(emb, labels, generator=torch.Generator().manual_seed(8))
    assert terms_nt["consistency"] == 0.0
    assert float(no_teacher) == pytest.approx(weighted - 3.0 * expected["consistency"], rel=1e-5)


def test_spoco_loss_backward_3d_and_ignore_label() -> None:
    shape = SHAPES[3]
    labels = sparsify(stripe_labels(shape, 4), keep=[0, 2]).unsqueeze(0)
    labels = torch.where(labels == -1, torch.full_like(labels, -7), labels)
    emb = (torch.randn(1, EMB_DIM, *shape) * 0.3).requires_grad_()
    total, terms = SpocoLoss(LossConfig(), ignore_label=-7)(emb, labels, emb.detach() * 0.5)
    total.backward()
    assert all(math.isfinite(v) for v in terms.values())
    assert terms["consistency"] > 0 and terms["instance"] > 0
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0


# --------------------------------------------------------------------------- unlabeled push


@pytest.mark.parametrize("dims", [2, 3])
def test_unlabeled_push_zero_when_unannotated_pixels_are_far(dims: int) -> None:
    """A perfectly separated embedding (unannotated objects too) gives 0.

    Collapsing the unannotated objects onto an annotated mean gives DD^2.
    """
    dense = stripe_labels(SHAPES[dims], 4)
    labels = sparsify(dense, keep=[0, 1]).unsqueeze(0)  # background + object 1 annotated, 2 and 3 not
    emb = separated_embedding(dense.unsqueeze(0))
    assert float(unlabeled_push_loss(emb, labels, DD)) == 0.0
    collapsed = emb.clone()
    collapsed[:, :, labels[0] == -1] = emb[:, :, labels[0] == 1][..., :1]  # unannotated = object 1's embedding
    # each unannotated pixel: distance 0 to object 1, SEP*sqrt(2) > DD to the background -> (DD^2 + 0) / 2
    assert float(unlabeled_push_loss(collapsed, labels, DD)) == pytest.approx(DD**2 / 2, rel=1e-5)
    no_bg = float(unlabeled_push_loss(collapsed, labels, DD, background_as_instance=False))
    assert no_bg == pytest.approx(DD**2, rel=1e-5)


def test_unlabeled_push_needs_both_unannotated_pixels_and_instances() -> None:
    dense = stripe_labels(SHAPES[2], 3)
    emb = torch.zeros(1, EMB_DIM, *SHAPES[2])
    assert float(unlabeled_push_loss(emb, dense.unsqueeze(0), DD)) == 0.0  # nothing unannotated
    assert float(unlabeled_push_loss(emb, torch.full((1, *SHAPES[2]), -1), DD)) == 0.0  # nothing annotated
    with pytest.raises(ValueError, match="delta_dist"):
        unlabeled_push_loss(emb, dense.unsqueeze(0), 0.0)
