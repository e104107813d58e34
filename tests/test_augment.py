"""Batched on-device two-view augmentation, checked against torchvision's per-sample transforms."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import ks_2samp
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from modan_dicom.data.augment import TwoViewAugment, render_views, sample_crop_boxes

H, W, S = 48, 64, 32


def _bank(n: int = 6, h: int = H, w: int = W, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _ramp(n: int = 8) -> torch.Tensor:
    """An affine image, value = 2·x + 2·y (at most 220), the same for every sample."""
    y, x = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    return (2 * x + 2 * y).to(torch.uint8).expand(n, 1, H, W).contiguous()


def test_shape_dtype_range_and_layout() -> None:
    aug = TwoViewAugment(S, seed=0)
    out = aug(_bank())
    assert out.shape == (6, 2, 1, S, S) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1 and out.std() > 0.05
    flat = out.flatten(0, 1)
    assert flat.shape == (12, 1, S, S) and flat.is_contiguous(memory_format=torch.channels_last)
    assert flat.contiguous(memory_format=torch.channels_last).data_ptr() == flat.data_ptr()
    assert TwoViewAugment(S, views=1)(_bank()).shape == (6, 1, 1, S, S)
    assert TwoViewAugment(S, out_dtype=torch.bfloat16)(_bank()).dtype == torch.bfloat16
    assert TwoViewAugment(S)(_bank()[:, 0]).shape == (6, 2, 1, S, S)  # (B, H, W) accepted


def test_float_input_equals_uint8_input() -> None:
    bank = _bank()
    a = TwoViewAugment(S, seed=3)(bank)
    b = TwoViewAugment(S, seed=3)(bank.float() / 255)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_determinism_and_resume() -> None:
    bank = _bank()
    a1, a2 = TwoViewAugment(S, seed=7), TwoViewAugment(S, seed=7)
    first = a1(bank)
    assert torch.equal(first, a2(bank))
    assert not torch.equal(first, TwoViewAugment(S, seed=8)(bank))
    state = a1.state_dict()
    second = a1(bank)
    assert not torch.equal(first, second)  # the generator moves on
    a1.load_state_dict(state)
    assert torch.equal(a1(bank), second)


def test_views_differ() -> None:
    out = TwoViewAugment(S, seed=1)(_bank())
    for sample in out:
        assert not torch.allclose(sample[0], sample[1], atol=1e-3)


def test_chunking_does_not_change_the_result() -> None:
    bank = _bank(9)
    aug = TwoViewAugment(S, seed=5)
    params = aug.sample(9, H, W)
    whole = render_views(bank, params, S, chunk=9)
    for chunk in (1, 4):
        torch.testing.assert_close(render_views(bank, params, S, chunk=chunk), whole, rtol=0, atol=1e-6)


def test_crops_are_sub_regions_of_a_ramp() -> None:
    """On an affine image bilinear resampling is exact: each view is the ramp over its own box, nothing outside it."""
    aug = TwoViewAugment(S, jitter_p=0, flip_p=0, seed=2)
    params = aug.sample(8, H, W)
    out = render_views(_ramp(), params, S)[:, :, 0]
    centres = (torch.arange(S, dtype=torch.float64) + 0.5) / S
    for b in range(8):
        for v in range(2):
            top, left = int(params.top[b, v]), int(params.left[b, v])
            h, w = int(params.height[b, v]), int(params.width[b, v])
            xs = (left + centres * w - 0.5).clamp(left, left + w - 1)
            ys = (top + centres * h - 0.5).clamp(top, top + h - 1)
            expected = (2 * xs[None, :] + 2 * ys[:, None]) / 255
            torch.testing.assert_close(out[b, v].double(), expected, rtol=0, atol=2e-5)
            assert out[b, v].min() >= (2 * left + 2 * top) / 255 - 1e-6
            assert out[b, v].max() <= (2 * (left + w - 1) + 2 * (top + h - 1)) / 255 + 1e-6


def test_box_distribution_matches_torchvision() -> None:
    n = 20_000
    top, left, h, w = sample_crop_boxes(n, H, W, generator=torch.Generator().manual_seed(0))
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= H).all() and (left + w <= W).all()
    area = (h * w).double() / (H * W)
    # sides are rounded to whole pixels, as torchvision does: allow half a pixel on each side
    assert area.min() >= 0.2 * (1 - 1 / 8) and area.max() <= 1
    assert area.min() < 0.25 and area.max() > 0.9
    ratio = w.double() / h.double()
    assert ratio.min() >= 0.75 * 0.9 and ratio.max() <= 4 / 3 * 1.1
    torch.manual_seed(0)
    image = torch.zeros(1, H, W)
    ref = torch.tensor([RandomResizedCrop.get_params(image, [0.2, 1.0], [3 / 4, 4 / 3]) for _ in range(5000)])
    ref_area = (ref[:, 2] * ref[:, 3]).double() / (H * W)
    assert ks_2samp(area.numpy(), ref_area.numpy()).pvalue > 1e-3
    assert ks_2samp(top.double().numpy(), ref[:, 0].double().numpy()).pvalue > 1e-3
    assert ks_2samp(w.double().numpy(), ref[:, 3].double().numpy()).pvalue > 1e-3
    # the authors' scale reaches smaller crops
    _, _, h8, w8 = sample_crop_boxes(n, H, W, scale=(0.08, 1.0), generator=torch.Generator().manual_seed(0))
    assert ((h8 * w8).double() / (H * W)).min() < 0.1


def test_box_fallback_is_torchvision_fallback() -> None:
    top, left, h, w = sample_crop_boxes(50, 64, 64, scale=(0.9, 1.0), ratio=(3.0, 4.0))
    ref = RandomResizedCrop.get_params(torch.zeros(1, 64, 64), [0.9, 1.0], [3.0, 4.0])
    assert ref == (21, 0, 21, 64)  # (top, left, h, w): no try fits, the centred box of ratio 3
    for got in zip(top.tolist(), left.tolist(), h.tolist(), w.tolist()):
        assert got == ref


def test_flip() -> None:
    bank = _ramp(4)
    plain = TwoViewAugment(S, flip_p=0.0, jitter_p=0, seed=4)(bank)
    flipped = TwoViewAugment(S, flip_p=1.0, jitter_p=0, seed=4)(bank)
    assert torch.equal(flipped, plain.flip(-1))
    assert not torch.allclose(flipped, plain, atol=1e-3)
    params = TwoViewAugment(S, seed=0).sample(4000, H, W)
    assert abs(params.flip.float().mean().item() - 0.5) < 0.03


def test_jitter_identity_and_torchvision_equivalence() -> None:
    bank = _bank(16, S, S)
    full = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0)
    ident = TwoViewAugment(S, jitter_p=0.0, seed=0, **full)(bank)
    torch.testing.assert_close(ident, (bank.float() / 255)[:, None].expand_as(ident), rtol=0, atol=1e-6)

    aug = TwoViewAugment(S, jitter_p=1.0, seed=0, **full)
    params = aug.sample(16, S, S)
    assert ((params.brightness >= 0.6) & (params.brightness <= 1.4)).all()
    assert ((params.contrast >= 0.6) & (params.contrast <= 1.4)).all()
    assert params.brightness_first.any() and not params.brightness_first.all()
    out = render_views(bank, params, S)
    for b in range(16):
        for v in range(2):
            img = bank[b].float() / 255
            bright, contrast = float(params.brightness[b, v]), float(params.contrast[b, v])
            if params.brightness_first[b, v]:
                ref = TF.adjust_contrast(TF.adjust_brightness(img, bright), contrast)
            else:
                ref = TF.adjust_brightness(TF.adjust_contrast(img, contrast), bright)
            torch.testing.assert_close(out[b, v], ref, rtol=0, atol=1e-5)
    dist = TwoViewAugment(S, seed=0).sample(4000, S, S)
    jittered = (dist.brightness != 1) | (dist.contrast != 1)
    assert abs(jittered.float().mean().item() - 0.8) < 0.03


@pytest.mark.parametrize(("antialias", "side"), [(False, None), (True, S)])
def test_matches_torchvision_resized_crop(antialias: bool, side: int | None) -> None:
    """Any box without antialiasing; with it when the bank is stored at the output size (crops only enlarge)."""
    h, w = (side, side) if side else (H, W)
    bank = _bank(4, h, w)
    aug = TwoViewAugment(S, jitter_p=0, flip_p=0, seed=9)
    params = aug.sample(4, h, w)
    out = render_views(bank, params, S)
    for b in range(4):
        for v in range(2):
            box = [int(params.top[b, v]), int(params.left[b, v]), int(params.height[b, v]), int(params.width[b, v])]
            ref = TF.resized_crop(bank[b].float() / 255, *box, [S, S], antialias=antialias)
            torch.testing.assert_close(out[b, v], ref, rtol=0, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_rendering() -> None:
    aug = TwoViewAugment(S, seed=0, device="cuda")
    bank = _bank().cuda()
    out = aug(bank)
    assert out.device.type == "cuda" and out.shape == (6, 2, 1, S, S)
    again = TwoViewAugment(S, seed=0, device="cuda")(bank)
    assert torch.equal(out, again)
    params = TwoViewAugment(S, seed=0, device="cuda").sample(6, H, W)
    torch.testing.assert_close(
        render_views(bank, params, S).cpu(), render_views(bank.cpu(), params.to("cpu"), S), rtol=0, atol=1e-5
    )


def test_rendering_into_a_buffer_equals_a_fresh_output() -> None:
    bank = _bank(6)
    fresh = TwoViewAugment(S, seed=3)(bank)
    buffer = torch.full_like(fresh, 7.0)
    again = TwoViewAugment(S, seed=3)(bank, out=buffer)
    assert again.data_ptr() == buffer.data_ptr() and torch.equal(again, fresh)
    with pytest.raises(ValueError, match="out must be"):
        TwoViewAugment(S, seed=3)(bank, out=torch.empty(1, 2, 1, S, S))
