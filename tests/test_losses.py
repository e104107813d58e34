"""The contrastive losses against a loop implementation of the paper's Eq. 3 and pytorch-metric-learning."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses

from modan_dicom.errors import ConfigError
from modan_dicom.losses import MulSupConLoss, NTXentLoss, SupConLoss, jaccard_matrix


def _jaccard_sets(y_a: torch.Tensor, y_b: torch.Tensor) -> float:
    s_a = {m for m, value in enumerate(y_a.tolist()) if value == 1}
    s_b = {m for m, value in enumerate(y_b.tolist()) if value == 1}
    union = s_a | s_b
    return len(s_a & s_b) / len(union) if union else 0.0


def reference_mulsupcon(
    features: torch.Tensor, labels: torch.Tensor, temperature: float, threshold: float
) -> torch.Tensor:
    """Eq. 3 written from the paper, one anchor at a time, float64. Views of the same image are
    positives with weight 1 (the documented reading); other pairs use the Jaccard of their label sets."""
    n, v, d = features.shape
    z = features.double().reshape(n * v, d)
    z = z / z.norm(dim=1, keepdim=True)
    image = [i for i in range(n) for _ in range(v)]
    anchor_losses = []
    for a in range(n * v):
        others = [k for k in range(n * v) if k != a]
        denominator = sum(torch.exp(z[a] @ z[k] / temperature) for k in others)
        positives = []
        for p in others:
            w = 1.0 if image[p] == image[a] else _jaccard_sets(labels[image[a]], labels[image[p]])
            if w >= threshold:
                positives.append((p, w))
        if positives:
            total = sum(w * torch.log(torch.exp(z[a] @ z[p] / temperature) / denominator) for p, w in positives)
            anchor_losses.append(-total / len(positives))
    if not anchor_losses:
        return (features.double() * 0).sum()
    return sum(anchor_losses) / len(anchor_losses)


def _batch(n: int, v: int, d: int, k: int, seed: int, density: float = 0.35) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(n, v, d, generator=g, dtype=torch.float64)
    labels = (torch.rand(n, k, generator=g) < density).float()
    labels[0] = 0  # an image with no active label
    labels[1] = labels[2]  # an exact label match
    return features, labels


def test_jaccard_matrix_matches_sets() -> None:
    _, labels = _batch(9, 1, 1, 6, seed=3)
    expected = torch.tensor([[_jaccard_sets(a, b) for b in labels] for a in labels])
    torch.testing.assert_close(jaccard_matrix(labels), expected, atol=1e-7, rtol=0)
    assert jaccard_matrix(labels)[0, 0] == 0  # empty with empty: 0/0 := 0
    torch.testing.assert_close(jaccard_matrix(labels[:4], labels[4:]), expected[:4, 4:], atol=1e-7, rtol=0)
    torch.testing.assert_close(jaccard_matrix(labels.bool()), expected, atol=1e-7, rtol=0)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("views", [1, 2, 3])
def test_mulsupcon_matches_eq3_loops(threshold: float, views: int) -> None:
    features, labels = _batch(10, views, 8, 5, seed=int(threshold * 10) + views)
    features.requires_grad_(True)
    expected = reference_mulsupcon(features, labels, 0.07, threshold)
    (expected_grad,) = torch.autograd.grad(expected, features)
    loss_fn = MulSupConLoss(temperature=0.07, threshold=threshold)
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 1e-5)):
        x = features.detach().to(dtype).requires_grad_(True)
        got = loss_fn(x, labels)
        (grad,) = torch.autograd.grad(got, x)
        assert got.dtype == dtype
        assert abs(got.item() - expected.item()) < tol * max(1.0, abs(expected.item()))
        torch.testing.assert_close(grad.double(), expected_grad, atol=tol, rtol=0)


def test_low_temperature_is_stable_and_exact() -> None:
    # T = 0.01 puts logits near 100: exp() overflows float32 unless the row max is subtracted
    features, labels = _batch(8, 2, 4, 5, seed=11)
    features = features.requires_grad_(True)
    expected = reference_mulsupcon(features, labels, 0.01, 0.3)
    got = MulSupConLoss(temperature=0.01)(features.detach().float(), labels)
    assert torch.isfinite(got)
    assert abs(got.item() - expected.item()) < 1e-4 * abs(expected.item())


def _flat(features: torch.Tensor, per_image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, V, D) and per-image labels -> pml's (N*V, D) embeddings and (N*V,) labels, image-major."""
    n, v, d = features.shape
    return features.reshape(n * v, d), per_image.repeat_interleave(v)


@pytest.mark.parametrize("views", [1, 2, 3])
def test_supcon_and_one_hot_mulsupcon_match_pml(views: int) -> None:
    g = torch.Generator().manual_seed(views)
    n, classes = 16, 5
    features = torch.randn(n, views, 12, generator=g, dtype=torch.float64)
    classes_of = torch.randint(0, classes, (n,), generator=g)
    classes_of[-1] = classes  # a class of one image: with V = 1 its anchor has no positive
    one_hot = torch.nn.functional.one_hot(classes_of, classes + 1).float()

    emb, lab = _flat(features, classes_of)
    emb.requires_grad_(True)
    expected = pml_losses.SupConLoss(temperature=0.07)(emb, lab)
    (expected_grad,) = torch.autograd.grad(expected, emb)

    for loss_fn, labels in ((SupConLoss(0.07), classes_of), (MulSupConLoss(0.07, threshold=0.3), one_hot),
                            (MulSupConLoss(0.07, threshold=1.0), one_hot)):
        x = features.clone().requires_grad_(True)
        got = loss_fn(x, labels)
        (grad,) = torch.autograd.grad(got, x)
        assert abs(got.item() - expected.item()) < 1e-5, loss_fn
        torch.testing.assert_close(grad.reshape(emb.shape), expected_grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize("views", [2, 3])
def test_ntxent_matches_pml(views: int) -> None:
    g = torch.Generator().manual_seed(10 + views)
    features = torch.randn(12, views, 16, generator=g)
    emb, lab = _flat(features, torch.arange(12))
    emb.requires_grad_(True)
    expected = pml_losses.NTXentLoss(temperature=0.1)(emb, lab)
    (expected_grad,) = torch.autograd.grad(expected, emb)
    x = features.clone().requires_grad_(True)
    got = NTXentLoss(temperature=0.1)(x)
    (grad,) = torch.autograd.grad(got, x)
    assert abs(got.item() - expected.item()) < 1e-5
    torch.testing.assert_close(grad.reshape(emb.shape), expected_grad, atol=1e-5, rtol=0)
    # with two views SimCLR is SupCon with each image its own class
    if views == 2:
        assert abs(SupConLoss(0.1)(features).item() - expected.item()) < 1e-5


def test_anchor_without_positives_is_left_out() -> None:
    # one view per image; image 3 shares no label with anyone, so its anchor has no positive
    labels = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1]]).float()
    features = torch.randn(4, 1, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = features.clone().requires_grad_(True)
    loss = MulSupConLoss(0.07, threshold=0.3)(x, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    # the mean runs over the three anchors that have positives: the isolated image's own anchor is
    # excluded, but it still appears in the other anchors' denominators (gradient nonzero)
    expected = reference_mulsupcon(features, labels, 0.07, 0.3)
    assert abs(loss.item() - expected.item()) < 1e-9
    assert x.grad[3].abs().sum() > 0


def test_no_positives_at_all_gives_zero_with_grad() -> None:
    labels = torch.eye(4)  # disjoint label sets, one view each
    x = torch.randn(4, 1, 8, requires_grad=True)
    for loss in (MulSupConLoss()(x, labels), SupConLoss()(x, torch.arange(4)), NTXentLoss()(x),
                 MulSupConLoss()(x[:1], labels[:1])):
        assert loss.item() == 0.0 and loss.grad_fn is not None
        (grad,) = torch.autograd.grad(loss, x)
        assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_keeps_logits_in_float32(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(5)
    head = torch.nn.Linear(32, 64)
    images = torch.randn(32, 2, 32, generator=g)
    labels = (torch.rand(32, 12, generator=g) < 0.3).float()
    loss_fn = MulSupConLoss(temperature=0.07)
    reference = loss_fn(head(images), labels)
    full = head(images).detach()
    with torch.autocast("cpu", dtype=dtype):
        low = head(images)
        assert low.dtype == dtype
        loss = loss_fn(low, labels)
        # float32 features under autocast: the loss must not run its matmul in low precision
        same = loss_fn(full, labels)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(head.weight.grad).all()
    assert abs(loss.item() - reference.item()) < 2e-2 * reference.item()  # only the features are rounded
    assert abs(loss.item() - loss_fn(low.float(), labels).item()) < 1e-6
    assert abs(same.item() - reference.item()) < 1e-6


def test_argument_checks() -> None:
    with pytest.raises(ConfigError):
        MulSupConLoss(temperature=0)
    with pytest.raises(ConfigError):
        MulSupConLoss(threshold=1.5)
    with pytest.raises(ConfigError):
        NTXentLoss(temperature=-0.1)
    with pytest.raises(ValueError):
        MulSupConLoss()(torch.randn(4, 8), torch.ones(4, 3))
    with pytest.raises(ValueError):
        MulSupConLoss()(torch.randn(4, 2, 8), torch.ones(5, 3))
    with pytest.raises(ValueError):
        SupConLoss()(torch.randn(4, 2, 8), torch.ones(4, 3))


def test_loss_is_not_trivially_constant() -> None:
    # aligned positives must give a lower loss than random features (guards against a sign error)
    labels = torch.nn.functional.one_hot(torch.arange(8) % 4, 4).float()
    aligned = labels[:, None, :].repeat(1, 2, 1) + 0.01 * torch.randn(8, 2, 4)
    random = torch.randn(8, 2, 4)
    loss_fn = MulSupConLoss()
    assert loss_fn(aligned, labels) < loss_fn(random, labels)
    assert loss_fn(aligned, labels).item() > math.log(1)  # positive: -log of probabilities < 1
