"""Synthetic replicas of the three downstream tasks, in RadImageNet's published layout.

    synth_task("thyroid", "data/")      # data/thyroid/images/*.png + data/thyroid/dataframe/thyroid_*_fold*.csv
    load_task("thyroid", "data/")       # reads it like the real folder

Same folder, CSV names, columns and values as the real folders (`evaluate.tasks.radimagenet`):

| task | images | CSVs | columns | class balance (paper Table 1) |
| --- | --- | --- | --- | --- |
| acl | `NNNN_sagittal_S.000000.png`, 1-5 slices per exam | `{train,val,test}_fold{k}.csv` | filename, acl_label (yes/no) | 569 tear / 452 intact |
| breast | `benign (N).png`, `malignant (N).png`, `normal (N).png` | `breast_*` | filename, label (normal -> benign) | 210 malignant / 569 benign (133 normal) |
| thyroid | `{case}_{k}.png`, 1-5 images per case | `thyroid_*` | img_dir, label | 288 malignant / 61 benign |

The images are grey PNGs (real thyroid files are JPEG; PNG keeps the replica exact), rendered
with the phantom machinery of `pixels` (tissue maps, US speckle / shadows / log compression, MR
contrast / bias / Rician noise) at max(image_size, 128) pixels and reduced to `image_size`:

* thyroid: a linear-probe view of one lobe with a nodule. Malignant-looking: markedly hypoechoic,
  taller than wide, lobulated / spiculated margin, punctate echogenic foci, posterior shadowing.
  Benign-looking: iso / hyperechoic, wider than tall, smooth, cystic spaces, a thin halo,
  posterior enhancement.
* breast: a BUSI-like crop (skin, fat, fibroglandular tissue, pectoral muscle, rib) with a lesion
  (or none, for "normal"): irregular, spiculated, hypoechoic, shadowing, echogenic halo vs oval,
  circumscribed, wider than tall, possibly cystic with posterior enhancement.
* acl: a sagittal fat-saturated T2 knee slice (femur, tibia, patella, tendons, Hoffa fat, PCL)
  with the ACL a dark oblique band; a tear disrupts and swells the band, fills the gap with
  bright oedema, flattens its distal part, and brings effusion and bone bruises.

The signal is deliberately imperfect: each case draws a latent score s ~ N(separation x label, 1)
and every sign's strength is a smooth function of s, so no model can exceed an AUC of about
Phi(separation / sqrt(2)) (acl ~0.97, breast and thyroid ~0.95 by default; the paper's models reach
0.96, 0.93 and 0.76). A logistic regression on 16 x 16 downsampled pixels reaches about 0.8-0.95. Folds are grouped
(exam / case) and stratified (`evaluate.tasks.make_folds`). Everything is deterministic by seed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.special import ndtr

from ..atomic import atomic_open, claim_folder, write_text
from ..errors import ConfigError
from .pixels import (BONE, CART, FAT, FLUID, GLAND, LESION, LIG, MARROW, ORGAN, ORGAN2, SCENES, SOFT, Shape,
                     display_uint8, paint, place, random_pose, render_mr, render_us)

TASKS = ("acl", "breast", "thyroid")
FULL_IMAGES = {"acl": 1021, "breast": 779, "thyroid": 349}
DEFAULT_IMAGES = {"acl": 300, "breast": 260, "thyroid": 349}
POSITIVE_FRACTION = {"acl": 569 / 1021, "breast": 210 / 779, "thyroid": 288 / 349}
NORMAL_FRACTION = 133 / 569  # of the breast images labelled benign
SEPARATION = {"acl": 2.6, "breast": 2.3, "thyroid": 2.3}
# (CSV prefix, path column, label column, (negative value, positive value))
CSV_FORMAT = {"acl": ("", "filename", "acl_label", ("no", "yes")),
              "breast": ("breast_", "filename", "label", ("benign", "malignant")),
              "thyroid": ("thyroid_", "img_dir", "label", ("benign", "malignant"))}
# images per exam / case: values and probabilities
_PER_GROUP = {"acl": ((1, 2, 3, 4, 5), (0.2, 0.35, 0.3, 0.1, 0.05)),
              "thyroid": ((1, 2, 3, 5), (0.82, 0.14, 0.03, 0.01)),
              "breast": ((1,), (1.0,))}
MARKER = "replica.json"
_TASK_CODE = {"acl": 1, "breast": 2, "thyroid": 3}

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Case:
    """One exam / case of a replica: its files, label, latent sign strength and seed."""

    group: str
    label: int
    strength: float  # in (0, 1): how malignant / torn it looks
    files: tuple[str, ...]
    seed: int
    normal: bool = False  # breast: no lesion at all


# ---- planning --------------------------------------------------------------------------------------


def plan_cases(task: str, n_images: int, seed: int, separation: float) -> list[Case]:
    """The cases of a replica: class counts as in the paper, group sizes, names, latent strengths."""
    rng = np.random.default_rng([seed, _TASK_CODE[task], 1])
    n_pos = int(round(n_images * POSITIVE_FRACTION[task]))
    counts = {1: n_pos, 0: n_images - n_pos}
    sizes, probs = _PER_GROUP[task]
    plan: list[tuple[int, int]] = []  # (label, images)
    for label in (1, 0):
        left = counts[label]
        while left > 0:
            k = min(int(rng.choice(sizes, p=probs)), left)
            plan.append((label, k))
            left -= k
    order = rng.permutation(len(plan))
    plan = [plan[i] for i in order]
    numbers = np.sort(rng.choice(max(1250, 3 * len(plan)), size=len(plan), replace=False))
    negatives = [i for i, (label, _) in enumerate(plan) if label == 0]
    n_normal = int(round(len(negatives) * NORMAL_FRACTION)) if task == "breast" else 0
    normals = set(rng.choice(negatives, size=n_normal, replace=False).tolist()) if n_normal else set()
    cases = []
    per_class = {"benign": 0, "malignant": 0, "normal": 0}
    for i, (label, k) in enumerate(plan):
        s = rng.normal(separation * label, 1.0)
        strength = float(ndtr(s - separation / 2.0))
        case_seed = int(np.random.SeedSequence([seed, _TASK_CODE[task], 2, i]).generate_state(1)[0])
        normal = False
        if task == "acl":
            exam = f"{int(numbers[i]):04d}"
            centre = int(rng.integers(10, 20))
            first = centre - (k - 1) // 2
            files = tuple(f"{exam}_sagittal_{float(first + j):f}.png" for j in range(k))
            group = exam
        elif task == "thyroid":
            group = str(int(numbers[i]) + 1)
            files = tuple(f"{group}_{j + 1}.png" for j in range(k))
        else:
            normal = i in normals
            kind = "normal" if normal else "malignant" if label else "benign"
            per_class[kind] += 1
            files = (f"{kind} ({per_class[kind]}).png",)
            group = Path(files[0]).stem
        cases.append(Case(group, label, strength, files, case_seed, normal))
    return cases


# ---- shared drawing helpers ------------------------------------------------------------------------


def _grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x (1, cols), y (rows, 1)); the shorter side spans [-1, 1]."""
    half = min(rows, cols) / 2.0
    x = ((np.arange(cols, dtype=np.float32) + 0.5) - cols / 2.0) / half
    y = ((np.arange(rows, dtype=np.float32) + 0.5) - rows / 2.0) / half
    return x[None, :], y[:, None]


def _blob(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, strength: float,
          rng: np.random.Generator, *, spikes: float = 1.0) -> np.ndarray:
    """Signed inside-ness (> 0 inside, (rows, cols)) of a lesion whose margin gets lobulated / spiculated
    with strength; x (1, cols) and y (rows, 1) are pixel-centre coordinates."""
    out = np.full((y.shape[0], x.shape[1]), -1.0, np.float32)
    reach = 2.6 * max(rx, ry)
    cols = np.flatnonzero(np.abs(x[0] - cx) < reach)
    rows = np.flatnonzero(np.abs(y[:, 0] - cy) < reach)
    lobes = [((0.02 + 0.12 * strength) / math.sqrt(k) * rng.uniform(0.3, 1.0), rng.uniform(0, 6.3))
             for k in range(2, 8)]
    spicules = [(rng.uniform(-math.pi, math.pi), rng.uniform(0.25, 0.6) * strength)
                for _ in range(int(round(spikes * 9 * strength ** 1.5)))]
    if not len(cols) or not len(rows):
        return out
    dx = x[:, cols[0]:cols[-1] + 1] - cx
    dy = y[rows[0]:rows[-1] + 1] - cy
    theta = np.arctan2(dy / ry, dx / rx)
    edge = np.ones_like(theta)
    for k, (amp, phase) in enumerate(lobes, 2):  # lobulation
        edge += amp * np.cos(k * theta + phase)
    for at, amp in spicules:
        gap = (theta - at + math.pi) % (2 * math.pi) - math.pi
        edge += amp * np.exp(-(gap / 0.07) ** 2)
    out[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = edge - np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2)
    return out


def _field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    n = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return n / max(float(n.std()), 1e-6)


def _posterior(grey: np.ndarray, inside: np.ndarray, amount: float) -> np.ndarray:
    """Darken (amount < 0: shadowing) or brighten (> 0: enhancement) the columns below a lesion."""
    if not inside.any() or amount == 0:
        return grey
    cols = np.flatnonzero(inside.any(axis=0))
    bottom = np.where(inside.any(axis=0), inside.shape[0] - 1 - np.argmax(inside[::-1], axis=0), 0)
    rows = np.arange(grey.shape[0])[:, None]
    below = (rows > bottom[None, :]) & inside.any(axis=0)[None, :]
    width = max(1.0, (cols[-1] - cols[0]) * 0.12)
    soft = ndimage.gaussian_filter(below.astype(np.float32), (width * 0.5, width))
    return np.clip(grey * (1.0 + amount * soft), 0, 255)


def _to_uint8(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W) float or uint8 to (size, size) uint8 with area-weighted (Lanczos) sampling."""
    pil = Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8), mode="L")
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(pil, dtype=np.uint8)


# ---- thyroid ---------------------------------------------------------------------------------------


def render_thyroid(case: Case, view: int, size: int) -> np.ndarray:
    """(size, size) uint8: one linear-probe view of a thyroid lobe with the case's nodule."""
    r_render = max(size, 128)
    crng = np.random.default_rng([case.seed, 0])  # the case: anatomy, nodule
    vrng = np.random.default_rng([case.seed, 1 + view])  # this view: pose jitter, noise
    f = case.strength
    scene = SCENES["thyroid"](crng)
    side = 1.0 if crng.random() < 0.5 else -1.0
    pose = random_pose(crng, len(scene), zoom=3.2 * crng.uniform(0.9, 1.1), centre=(0.2 * side, -0.25), jitter=0.6)
    placed = place(scene, pose, z=float(vrng.uniform(-0.3, 0.3)))
    label = paint(placed, r_render, r_render)
    x, y = _grid(r_render, r_render)
    lobe = min((s for s in placed if s.host), key=lambda s: s.cx ** 2 + s.cy ** 2)
    r0 = crng.uniform(0.2, 0.36)
    aspect = float(np.clip(0.8 + 0.5 * f + crng.normal(0, 0.08), 0.6, 1.5))  # height / width
    cx = lobe.cx + vrng.normal(0, 0.03)
    cy = lobe.cy + crng.uniform(-0.05, 0.1)
    inside_score = _blob(x, y, cx, cy, r0 / math.sqrt(aspect), r0 * math.sqrt(aspect), f, crng)
    inside = inside_score > 0
    halo = (inside_score > -0.12) & ~inside
    if crng.random() < 0.7 * (1 - f):
        label[halo] = SOFT
    texture = _field(crng, label.shape, r_render / 40)
    cystic = (1 - f) * crng.uniform(0.0, 0.45)
    hypo = 0.1 + 0.85 * f
    lo, mid = np.quantile(texture[inside], [cystic, min(0.99, cystic + hypo)]) if inside.any() else (0, 0)
    nodule = np.where(texture < lo, FLUID, np.where(texture < mid, LESION, ORGAN)).astype(label.dtype)
    label[inside] = nodule[inside]
    image = render_us([label], vrng, probe="linear", spread=float(crng.random()), colour=False, doppler=False)
    grey = image.pixels.astype(np.float32)
    sector = grey > 0
    grey = _posterior(grey, inside, -0.6 * f * crng.uniform(0.5, 1.0) + 0.4 * cystic)
    for _ in range(int(crng.poisson(6 * f ** 2))):  # punctate echogenic foci
        py, px = np.argwhere(inside)[int(crng.integers(inside.sum()))] if inside.any() else (0, 0)
        rr = max(1, r_render // 110)
        grey[max(0, py - rr):py + rr, max(0, px - rr):px + rr] = vrng.uniform(215, 255)
    grey[~sector] = 0
    return _to_uint8(grey, size)


# ---- breast ----------------------------------------------------------------------------------------


def _wave(x: np.ndarray, rng: np.random.Generator, base: float, amp: float) -> np.ndarray:
    out = np.full_like(x, base)
    for k in (1, 2, 3):
        out = out + amp / k * np.sin(k * 2.3 * x + rng.uniform(0, 6.3))
    return out


def breast_labels(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Tissue map (rows, cols) of a breast seen by a linear probe: skin, fat, gland, muscle, rib."""
    x, y = _grid(rows, cols)
    skin = _wave(x, rng, -0.86, 0.01)
    fat = _wave(x, rng, rng.uniform(-0.65, -0.35), 0.08)
    gland = _wave(x, rng, rng.uniform(0.15, 0.45), 0.1)
    muscle = gland + rng.uniform(0.05, 0.15)
    muscle_end = muscle + rng.uniform(0.2, 0.3)
    label = np.full((rows, cols), FAT, np.int8)
    label[np.broadcast_to(y < skin, label.shape)] = LIG
    band = (y >= fat) & (y < gland)
    texture = _field(rng, (rows, cols), rows / 30)
    label[band & (texture > -0.4)] = GLAND
    label[band & (texture <= -0.4)] = FAT
    label[(y >= muscle) & (y < muscle_end)] = SOFT
    stripes = np.sin((y - 0.4 * x) * 40 + rng.uniform(0, 6.3)) > 0.93
    label[(y >= muscle) & (y < muscle_end) & stripes] = FAT
    for _ in range(int(rng.integers(3, 7))):  # Cooper's ligaments: thin bright arcs in the fat
        cx, cy, r = rng.uniform(-0.8, 0.8), rng.uniform(-0.7, -0.2), rng.uniform(0.15, 0.4)
        ring = np.abs(np.sqrt((x - cx) ** 2 + (y - cy) ** 2) - r) < 0.012
        label[ring & (y < cy) & (y > skin) & (y < gland)] = LIG
    rib_x = rng.uniform(-0.5, 0.5)
    rib = ((x - rib_x) / 0.3) ** 2 + ((y - muscle_end - 0.12) / 0.09) ** 2 <= 1
    label[rib] = BONE
    return label


def render_breast(case: Case, view: int, size: int) -> np.ndarray:
    """(size, size) uint8: a BUSI-like crop of a breast with the case's lesion (none if normal)."""
    r_render = max(size, 128)
    crng = np.random.default_rng([case.seed, 0])
    vrng = np.random.default_rng([case.seed, 1 + view])
    f = case.strength
    half = float(crng.uniform(0.6, 0.8))  # linear probe half width
    label = breast_labels(crng, r_render, r_render)
    x, y = _grid(r_render, r_render)
    inside = np.zeros(label.shape, bool)
    enhance = shadow = 0.0
    if not case.normal:
        r0 = crng.uniform(0.14, 0.32)
        aspect = float(np.clip(0.6 + 0.55 * f + crng.normal(0, 0.08), 0.4, 1.4))
        cx, cy = crng.uniform(-0.3, 0.3) * half, crng.uniform(-0.35, 0.15)
        score = _blob(x, y, cx, cy, r0 / math.sqrt(aspect), r0 * math.sqrt(aspect), f, crng, spikes=1.3)
        inside = score > 0
        rim = (score > -0.18 - 0.1 * f) & ~inside
        if crng.random() < f:
            label[rim] = GLAND  # echogenic halo
        elif crng.random() < 1 - f:
            label[(score > -0.06) & ~inside] = LIG  # thin capsule
        cyst = crng.random() < 0.35 * (1 - f)
        texture = _field(crng, label.shape, r_render / 45)
        dark = texture < np.quantile(texture[inside], 0.2 + 0.75 * f) if inside.any() else texture < 0
        fill = np.where(dark, LESION, ORGAN2)
        label[inside] = FLUID if cyst else fill[inside]
        enhance = 0.45 if cyst else 0.15 * (1 - f)
        shadow = 0.65 * f * crng.uniform(0.4, 1.0)
    image = render_us([label], vrng, probe="linear", spread=(half - 0.55) / 0.25, colour=False, doppler=False)
    grey = _posterior(image.pixels.astype(np.float32), inside, enhance - shadow)
    xs, ys = x[0], y[:, 0]
    c0, c1 = np.searchsorted(xs, [-half + 0.02, half - 0.02])
    r0_, r1_ = np.searchsorted(ys, [-0.9, 0.9])
    return _to_uint8(grey[r0_:r1_, c0:c1], size)


# ---- ACL -------------------------------------------------------------------------------------------


def _band(p0: tuple[float, float], p1: tuple[float, float], half_thickness: float, tissue: int) -> Shape:
    """A rounded band (p = 4) from p0 to p1."""
    (x0, y0), (x1, y1) = p0, p1
    return Shape((x0 + x1) / 2, (y0 + y1) / 2, math.hypot(x1 - x0, y1 - y0) / 2, half_thickness, tissue,
                 math.degrees(math.atan2(y1 - y0, x1 - x0)), 4.0)


def knee_sagittal(rng: np.random.Generator, f: float) -> list[Shape]:
    """Sagittal knee shapes (x anterior to the right, y down); the ACL torn to degree f in (0, 1)."""
    e = Shape
    shapes = [
        e(0.05, 0.0, 0.95, 1.4, FAT, p=4), e(0.05, 0.0, 0.85, 1.4, SOFT, p=4),  # subcutaneous fat, muscle
        e(-0.08, -0.12, 0.5, 0.42, SOFT),  # posterior capsule region
        e(0.35, -0.55, 0.08 + 0.14 * f * rng.uniform(0.5, 1.0), 0.24, FLUID, ang=-10),  # suprapatellar effusion
        e(-0.02, -0.85, 0.3, 0.65, BONE, ang=-6, p=6), e(-0.02, -0.85, 0.25, 0.62, MARROW, ang=-6, p=6),  # femur
        e(-0.05, -0.1, 0.41, 0.38, CART), e(-0.05, -0.1, 0.38, 0.35, BONE), e(-0.05, -0.1, 0.34, 0.31, MARROW),
        e(0.0, 0.85, 0.38, 0.52, BONE, p=4), e(0.0, 0.85, 0.34, 0.49, MARROW, p=4),  # tibia
        e(0.0, 0.345, 0.37, 0.02, CART, p=4),  # tibial cartilage
        e(0.58, -0.38, 0.11, 0.24, BONE, ang=-8), e(0.58, -0.38, 0.08, 0.21, MARROW, ang=-8),  # patella
        e(0.68, -0.38, 0.03, 0.26, CART, ang=-8),
        _band((0.55, -0.85), (0.6, -0.58), 0.05, LIG),  # quadriceps tendon
        _band((0.62, -0.15), (0.47, 0.62), 0.045, LIG),  # patellar tendon
        e(0.36, 0.12, 0.16, 0.26, FAT, ang=10),  # Hoffa fat pad
        e(-0.38, 0.3, 0.1, 0.05, LIG), e(0.28, 0.3, 0.08, 0.045, LIG),  # meniscal horns
        e(-0.02, 0.12, 0.3, 0.13, SOFT, ang=42),  # notch synovium around the ACL
        _band((-0.36, -0.02), (-0.24, 0.36), 0.045, LIG),  # PCL
    ]
    # ACL: femoral footprint (posterior, high) to tibial spine (anterior, low)
    start, end = (-0.22 + rng.normal(0, 0.02), -0.06), (0.17 + rng.normal(0, 0.02), 0.31)
    thick = 0.032 + 0.03 * f
    if f < 0.45:
        shapes.append(_band(start, end, thick, LIG))
        if f > 0.25:  # mucoid signal inside an intact ligament
            shapes.append(_band(start, end, thick * 0.3, ORGAN2))
    else:
        cut = rng.uniform(0.3, 0.7)
        gap = 0.08 + 0.45 * (f - 0.45)
        mid = (start[0] + cut * (end[0] - start[0]), start[1] + cut * (end[1] - start[1]))
        t0, t1 = max(0.0, cut - gap), min(1.0, cut + gap)
        p0 = (start[0] + t0 * (end[0] - start[0]), start[1] + t0 * (end[1] - start[1]))
        p1 = (start[0] + t1 * (end[0] - start[0]), start[1] + t1 * (end[1] - start[1]))
        sag = 0.2 * (f - 0.45)  # the distal stump flattens
        shapes.append(e(mid[0], mid[1], 0.11 + 0.1 * f, 0.07 + 0.05 * f, LESION, ang=42))  # oedema in the gap
        if t0 > 0.05:
            shapes.append(_band(start, p0, thick, LIG))
        if t1 < 0.95:
            shapes.append(_band((p1[0], p1[1] + sag), end, thick, LIG))
    if rng.random() < f:  # bone bruises: lateral femoral condyle, posterior tibial plateau
        shapes.append(e(0.05 + rng.normal(0, 0.05), 0.05, 0.12 * f + 0.04, 0.07, LESION))
        shapes.append(e(-0.25 + rng.normal(0, 0.05), 0.48, 0.1 * f + 0.04, 0.06, LESION))
    return shapes


def render_acl(case: Case, view: int, size: int) -> np.ndarray:
    """(size, size) uint8: one sagittal fat-saturated T2 slice through the case's knee."""
    r_render = max(size, 128)
    crng = np.random.default_rng([case.seed, 0])
    vrng = np.random.default_rng([case.seed, 1 + view])
    scene = knee_sagittal(crng, case.strength)
    pose = random_pose(crng, len(scene), zoom=crng.uniform(0.95, 1.1), jitter=0.8)
    z = 0.25 * (view - (len(case.files) - 1) / 2)
    label = paint(place(scene, pose, z=z), r_render, r_render)
    image = render_mr(label, vrng, weighting=str(crng.choice(["T2FS", "PDFS"])), bits=12)
    return _to_uint8(display_uint8(image).astype(np.float32), size)


RENDERERS: dict[str, Callable[[Case, int, int], np.ndarray]] = {
    "acl": render_acl, "breast": render_breast, "thyroid": render_thyroid,
}


# ---- writing ---------------------------------------------------------------------------------------


def _prepare(folder: Path) -> None:
    """An empty folder, or a previous replica's (its images, CSVs and marker are removed)."""
    if not claim_folder(folder, lambda path: (path / MARKER).is_file(), "modan-dicom task replica"):
        return
    for sub, pattern in (("images", "*.png"), ("dataframe", "*.csv")):
        for path in (folder / sub).glob(pattern):
            path.unlink()
    (folder / MARKER).unlink()


def synth_task(task: str, out: str | os.PathLike[str], *, seed: int = 0, image_size: int = 64,
               n_images: int | None = None, separation: float | None = None,
               progress: Progress | None = None) -> Path:
    """Write a synthetic replica of `task` ("acl", "breast", "thyroid") to out/<task>/; return that folder.

    n_images: total images (default `DEFAULT_IMAGES`; `FULL_IMAGES` are the paper's counts).
    image_size: PNG edge in pixels (16-512; 64 by default, 224 for the paper's input size).
    separation: class separation of the latent score (default `SEPARATION[task]`).
    out/<task>/ must be missing, empty or a previous replica. Same arguments, same bytes.
    """
    from ..evaluate.tasks import make_folds

    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if not 16 <= int(image_size) <= 512:
        raise ConfigError(f"image_size must be between 16 and 512, not {image_size}")
    n_images = DEFAULT_IMAGES[task] if n_images is None else int(n_images)
    if n_images < 20:
        raise ConfigError(f"a replica needs at least 20 images for 5 grouped folds, not {n_images}")
    separation = SEPARATION[task] if separation is None else float(separation)
    cases = plan_cases(task, n_images, seed, separation)
    folder = Path(out) / task
    _prepare(folder)
    config = {"task": task, "seed": seed, "image_size": int(image_size), "n_images": n_images,
              "separation": separation, "layout": "radimagenet"}
    write_text(folder / MARKER, json.dumps(config, indent=2) + "\n")  # claims the folder first
    images = folder / "images"
    images.mkdir(exist_ok=True)
    render = RENDERERS[task]
    done = 0
    for case in cases:
        for view, name in enumerate(case.files):
            Image.fromarray(render(case, view, int(image_size)), mode="L").save(images / name, format="PNG")
            done += 1
            if progress is not None:
                progress(done, n_images)
    rels = np.array([f"images/{name}" for case in cases for name in case.files], dtype=object)
    labels = np.array([case.label for case in cases for _ in case.files], np.int64)
    groups = np.array([case.group for case in cases for _ in case.files], dtype=object)
    prefix, path_col, label_col, values = CSV_FORMAT[task]
    frames = folder / "dataframe"
    for fold in make_folds(labels, groups, seed=seed):
        for split in ("train", "val", "test"):
            pos = fold.part(split)
            with atomic_open(frames / f"{prefix}{split}_fold{fold.number}.csv", "w", encoding="utf-8",
                             newline="") as handle:
                handle.write(f"{path_col},{label_col}\n")
                handle.writelines(f"{rels[i]},{values[labels[i]]}\n" for i in pos)
    return folder
