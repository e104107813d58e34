"""Batched two-view augmentation on the training device: the paper's SimCLR-style TwoCropTransform, for grey images.

Per view, drawn independently for every sample (as the authors' per-sample torchvision pipeline draws them)::

    RandomResizedCrop(S, scale=(0.2, 1.0), ratio=(3/4, 4/3))   # torchvision's sampler: 10 tries, then centre fallback
    RandomHorizontalFlip(p=0.5)
    RandomApply([ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)], p=0.8)
    RandomGrayscale(p=0.2)

but computed for the whole batch at once with torch ops from one seeded `torch.Generator` on the device (no Python
work per sample). On grey images ColorJitter's saturation and hue are identities (torchvision returns a grey image
unchanged for both), so it reduces to brightness and contrast, applied in a random order per view as ColorJitter's
random permutation does; RandomGrayscale is an identity, so it has no parameter here.

Output layout and values: ``(B, V, 1, S, S)`` float (V = 2 views), values in [0, 1] — ToTensor's scale, with no
mean/std normalisation (the encoder is trained on [0, 1] grey images, as the authors did, and downstream evaluation
feeds the same). ``views.flatten(0, 1)`` is ``(B·V, 1, S, S)``, sample-major (sample 0 view 0, sample 0 view 1, ...),
so the encoder's ``(B·V, D)`` output reshapes with ``.view(B, V, D)`` straight into the losses' ``(N, V, D)``. With
one channel that tensor is already channels_last-contiguous: ``.contiguous(memory_format=torch.channels_last)``
copies nothing.

Resampling is bilinear with source coordinates clamped to the crop box, which reproduces
``torchvision.transforms.v2.functional.resized_crop(..., antialias=False)`` (crop, then resize) up to float rounding.
No antialiasing: the image bank is stored at the training size, so a crop (never larger than the image) is only ever
enlarged, where antialiasing does nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ViewParams:
    """The random draws for a batch: every field is ``(B, V)`` on the device.

    top, left, height, width: crop box in source pixels (int64); flip: horizontal flip (bool);
    brightness, contrast: jitter factors (float32, exactly 1 where the jitter was not applied);
    brightness_first: order of the two jitter operations (bool).
    """

    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    flip: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    brightness_first: torch.Tensor

    def to(self, device: torch.device | str) -> ViewParams:
        return ViewParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    *,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    tries: int = 10,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` RandomResizedCrop boxes for a ``height × width`` image, with torchvision's distribution, vectorised.

    All ``tries`` candidates (area fraction uniform in ``scale``, log aspect ratio uniform in ``log(ratio)``, sides
    rounded) are drawn for every box at once; each box takes its first candidate that fits, and a box with none
    takes torchvision's fallback (the largest centred box whose ratio is clamped to ``ratio``). The offset is then
    uniform over the positions that fit. Returns ``(top, left, h, w)``, each ``(n,)`` int64, on ``device``.
    """
    if device is None:
        device = generator.device if generator is not None else "cpu"
    area = float(height * width)
    draws = torch.rand(2, n, tries, generator=generator, device=device, dtype=torch.float64)
    target_area = area * (scale[0] + (scale[1] - scale[0]) * draws[0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * draws[1])
    w_try = torch.round(torch.sqrt(target_area * aspect)).long()
    h_try = torch.round(torch.sqrt(target_area / aspect)).long()
    fits = (w_try > 0) & (w_try <= width) & (h_try > 0) & (h_try <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # argmax returns the first maximum
    found = fits.any(dim=1)

    in_ratio = width / height
    if in_ratio < min(ratio):
        fb_w, fb_h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fb_h, fb_w = height, int(round(height * max(ratio)))
    else:
        fb_w, fb_h = width, height
    w = torch.where(found, w_try.gather(1, first).squeeze(1), fb_w)
    h = torch.where(found, h_try.gather(1, first).squeeze(1), fb_h)

    offsets = torch.rand(2, n, generator=generator, device=device, dtype=torch.float64)
    top = torch.minimum((offsets[0] * (height - h + 1)).long(), height - h)
    left = torch.minimum((offsets[1] * (width - w + 1)).long(), width - w)
    top = torch.where(found, top, (height - fb_h) // 2)
    left = torch.where(found, left, (width - fb_w) // 2)
    return top, left, h, w


def _source_coords(start: torch.Tensor, length: torch.Tensor, size: int) -> torch.Tensor:
    """Source pixel coordinates ``(..., size)`` of the output pixel centres, clamped to the crop (as crop+resize)."""
    centres = (torch.arange(size, device=start.device, dtype=torch.float32) + 0.5) / size
    start_f, length_f = start.float()[..., None], length.float()[..., None]
    coords = start_f + centres * length_f - 0.5
    return torch.minimum(torch.maximum(coords, start_f), start_f + length_f - 1)


def _render_chunk(images: torch.Tensor, p: ViewParams, size: int, unit: float, dest: torch.Tensor) -> None:
    """images ``(c, 1, H, W)`` -> ``dest`` ``(c, V, S, S)``, values in [0, 1]."""
    c, _, height, width = images.shape
    views = p.top.shape[1]
    xs = _source_coords(p.left, p.width, size)  # (c, V, S)
    ys = _source_coords(p.top, p.height, size)
    xs = torch.where(p.flip[..., None], xs.flip(-1), xs)
    # grid_sample's normalised coordinates (align_corners=False): x_n = (2x + 1) / W - 1
    gx = (2 * xs + 1) / width - 1
    gy = (2 * ys + 1) / height - 1
    # grid[c, v, i, k] = (gx[c, v, k], gy[c, v, i]), written as one broadcast multiply-add over rows of 2S floats
    row_x = torch.stack((gx, torch.zeros_like(gx)), dim=-1).view(c, views, 1, 2 * size)
    y_mask = torch.tensor([0.0, 1.0], device=images.device).repeat(size)
    grid = torch.addcmul(row_x, gy[..., None], y_mask).view(c, views * size, size, 2)
    out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out.view(c, views, size, size)

    # ColorJitter on grey: brightness b (x -> clamp(b x)), contrast k (x -> clamp(k x + (1 - k) mean(x))),
    # in the drawn order; factors of 1 leave a view exactly unchanged.
    b, k, b_first = p.brightness, p.contrast, p.brightness_first
    mean0 = out.mean(dim=(-2, -1)) * unit
    scale1 = torch.where(b_first, b, k) * unit
    shift1 = torch.where(b_first, torch.zeros_like(k), (1 - k) * mean0)
    out.mul_(scale1[..., None, None]).add_(shift1[..., None, None]).clamp_(0, 1)
    mean1 = out.mean(dim=(-2, -1))
    scale2 = torch.where(b_first, k, b)
    shift2 = torch.where(b_first, (1 - k) * mean1, torch.zeros_like(k))
    out.mul_(scale2[..., None, None]).add_(shift2[..., None, None])
    if dest.dtype == out.dtype:
        torch.clamp(out, 0, 1, out=dest)
    else:
        dest.copy_(out.clamp_(0, 1))


def render_views(
    images: torch.Tensor,
    params: ViewParams,
    size: int,
    *,
    out_dtype: torch.dtype = torch.float32,
    chunk: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply drawn `ViewParams` to a batch: deterministic, no randomness here.

    images: ``(B, 1, H, W)`` or ``(B, H, W)``, uint8 (0..255) or float in [0, 1], on the device.
    Returns ``(B, V, 1, size, size)`` of ``out_dtype``, values in [0, 1].
    chunk: samples rendered per step; None = the whole batch on an accelerator, small cache-sized chunks on the
    CPU (where the full-batch sampling grid would cost more memory traffic than the resampling itself).
    out: a contiguous tensor of that shape, dtype and device to render into (returned). A training loop that
    passes the same one every step saves a fresh allocation per batch: on a CPU a new 100 MB buffer costs
    ~60 ms of page faults, more than the resampling.
    """
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected grey images (B, 1, H, W), got shape {tuple(images.shape)}")
    batch = images.shape[0]
    if params.top.shape[0] != batch:
        raise ValueError(f"params are drawn for {params.top.shape[0]} samples, the batch has {batch}")
    views = params.top.shape[1]
    unit = 1.0 / 255.0 if images.dtype == torch.uint8 else 1.0
    params = params.to(images.device)
    if chunk is None:
        chunk = batch if images.device.type != "cpu" else max(1, (1 << 20) // (views * size * size))
    shape = (batch, views, 1, size, size)
    if out is None:
        out = torch.empty(shape, dtype=out_dtype, device=images.device)
    elif tuple(out.shape) != shape or out.dtype != out_dtype or out.device != images.device or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {out_dtype} tensor of shape {shape} on {images.device}")
    for start in range(0, batch, chunk):
        stop = min(batch, start + chunk)
        part = ViewParams(**{f.name: getattr(params, f.name)[start:stop] for f in fields(params)})
        _render_chunk(images[start:stop], part, size, unit, out[start:stop, :, 0])
    return out


class TwoViewAugment:
    """Random views of a batch of grey images, drawn per sample and computed for the batch at once.

    Args:
        image_size: output side S in pixels.
        views: views per image (2 for the contrastive methods; 1 gives one augmented view, e.g. for cross-entropy).
        scale: crop area as a fraction of the image (paper: (0.2, 1.0); the authors' code: (0.08, 1.0)).
        ratio: crop aspect ratio range (width / height).
        flip_p: probability of a horizontal flip.
        jitter_p: probability of applying the brightness/contrast jitter to a view.
        brightness, contrast: jitter strengths; factors are uniform in [max(0, 1 - s), 1 + s].
        seed: seed of the generator (ignored when ``generator`` is given).
        device: where the generator (and so the draws) live; put the image bank on the same device.
        generator: an existing generator to draw from instead of a new seeded one.
        out_dtype: dtype of the output (float32; bfloat16 halves the memory under autocast).
        chunk: see `render_views`.

    Call: images ``(B, 1, H, W)`` uint8 -> ``(B, V, 1, S, S)`` in [0, 1]. The same seed on the same device type
    gives the same views call after call; each call consumes a fixed number of draws, so the sequence depends only
    on the seed and the batch sizes. `state_dict` / `load_state_dict` save and restore the generator (resume).
    For data-parallel training seed each rank differently (e.g. seed + rank).
    """

    def __init__(
        self,
        image_size: int,
        *,
        views: int = 2,
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        jitter_p: float = 0.8,
        brightness: float = 0.4,
        contrast: float = 0.4,
        seed: int = 0,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
        out_dtype: torch.dtype = torch.float32,
        chunk: int | None = None,
    ) -> None:
        if image_size < 1 or views < 1:
            raise ValueError("image_size and views must be >= 1")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must satisfy 0 < min <= max, got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}")
        self.image_size = image_size
        self.views = views
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.flip_p = flip_p
        self.jitter_p = jitter_p
        self.brightness = (max(0.0, 1 - brightness), 1 + brightness)
        self.contrast = (max(0.0, 1 - contrast), 1 + contrast)
        self.out_dtype = out_dtype
        self.chunk = chunk
        if generator is None:
            generator = torch.Generator(device=torch.device(device))
            generator.manual_seed(seed)
        self.generator = generator

    @property
    def device(self) -> torch.device:
        return self.generator.device

    def sample(self, batch: int, height: int, width: int) -> ViewParams:
        """Draw the parameters of ``batch × views`` views of ``height × width`` images; fields ``(batch, views)``."""
        n, shape = batch * self.views, (batch, self.views)
        top, left, h, w = sample_crop_boxes(
            n, height, width, scale=self.scale, ratio=self.ratio, generator=self.generator, device=self.device
        )
        u = torch.rand(5, n, generator=self.generator, device=self.device)
        jitter = u[1] < self.jitter_p
        b = self.brightness[0] + (self.brightness[1] - self.brightness[0]) * u[2]
        k = self.contrast[0] + (self.contrast[1] - self.contrast[0]) * u[3]
        one = torch.ones_like(b)
        return ViewParams(
            top=top.view(shape),
            left=left.view(shape),
            height=h.view(shape),
            width=w.view(shape),
            flip=(u[0] < self.flip_p).view(shape),
            brightness=torch.where(jitter, b, one).view(shape),
            contrast=torch.where(jitter, k, one).view(shape),
            brightness_first=(u[4] < 0.5).view(shape),
        )

    def __call__(self, images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """images ``(B, 1, H, W)`` (or ``(B, H, W)``) uint8 / float in [0, 1] -> ``(B, V, 1, S, S)`` in [0, 1]
        (written into `out` when given: see `render_views`)."""
        params = self.sample(images.shape[0], images.shape[-2], images.shape[-1])
        return render_views(images, params, self.image_size, out_dtype=self.out_dtype, chunk=self.chunk, out=out)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
