"""Phantom images whose pixels carry their metadata: the modality in intensity and noise, the region in shape.

A region is a *scene*: a short list of painted shapes (super-ellipses, rings, arcs), each a tissue
class (air, fat, soft tissue, organ, fluid, lung, cortical bone, marrow, ...). A scene is painted
into a tissue label map, which each modality then renders its own way:

* CT: Hounsfield units per tissue (air -1000, fat -100, soft tissue 40, bone > 700), partial-volume
  blur, correlated quantum noise, a circular field of view; stored unsigned, Rescale Intercept -1024.
* MR: T1 / T2 / PD / FLAIR / fat-saturated contrast, tissue texture, a smooth multiplicative bias
  field and Rician noise (magnitude of complex Gaussian noise); no physical units.
* US: echogenicity per tissue, multiplicative speckle (magnitude of a correlated complex Gaussian
  field, i.e. Rayleigh), acoustic shadows under bone and gas, depth attenuation, log compression,
  a sector (curved probe) or rectangle (linear probe) on a black background; 8-bit grey or RGB.
* XR: a projection look: blurred attenuation weighted by body thickness, exponential attenuation,
  heel effect, quantum noise, edge enhancement, collimation and a lead side marker; 12-16 bits,
  MONOCHROME1 or MONOCHROME2. Fluoroscopy (RF): 8-bit, round image-intensifier field.

Everything is numpy with seeded `numpy.random.Generator`s: the same seeds give the same arrays.
Coordinates: x to the right, y down, the shorter image side spans [-1, 1].
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from scipy import ndimage

# ---- tissues ------------------------------------------------------------------------------------

AIR, FAT, SOFT, ORGAN, ORGAN2, FLUID, LUNG, BONE, MARROW, CART, GLAND, LESION, VESSEL, GAS, LIG = range(15)
N_TISSUES = 15

#                      AIR    FAT   SOFT  ORGAN ORGAN2 FLUID  LUNG   BONE MARROW CART GLAND LESION VESSEL  GAS   LIG
_CT_HU = np.array([-1000, -100, 45, 58, 30, 8, -860, 1100, 230, 100, 95, 25, 42, -990, 85], np.float32)
_MR = {
    "T1": np.array([0, 950, 380, 520, 640, 160, 30, 35, 850, 450, 500, 260, 90, 0, 60], np.float32),
    "T2": np.array([0, 650, 320, 560, 420, 1500, 30, 35, 520, 600, 450, 1150, 70, 0, 50], np.float32),
    "PD": np.array([0, 900, 420, 620, 540, 950, 30, 45, 800, 760, 560, 700, 70, 0, 60], np.float32),
}
_US_ECHO = np.array([0.0, 0.5, 0.16, 0.45, 0.3, 0.004, 0.9, 1.0, 0.2, 0.05, 0.8, 0.12, 0.006, 1.0, 0.8],
                    np.float32)
_XR_MU = np.array([0.0, 0.17, 0.21, 0.22, 0.215, 0.2, 0.035, 0.62, 0.33, 0.22, 0.22, 0.24, 0.21, 0.0, 0.23],
                  np.float32)

MODALITIES = ("CT", "MR", "US", "XR")
WEIGHTINGS = ("T1", "T2", "PD", "FLAIR", "T2FS", "PDFS", "STIR", "DWI")


class Shape(NamedTuple):
    """A painted shape: |u/a|^p + |v/b|^p <= 1 in its own frame (rotated by `ang` degrees)."""

    cx: float
    cy: float
    a: float
    b: float
    tissue: int
    ang: float = 0.0
    p: float = 2.0
    ring: float = 0.0  # > 0: only the outer band of this relative width (an annulus)
    half: int = 0  # -1: keep v <= 0 only (an upper arc), +1: v >= 0 only
    host: bool = False  # a lesion may grow inside this shape


def _e(cx: float, cy: float, a: float, b: float, tissue: int, ang: float = 0.0, p: float = 2.0,
       ring: float = 0.0, half: int = 0, host: bool = False) -> Shape:
    return Shape(cx, cy, a, b, tissue, ang, p, ring, half, host)


# ---- scenes (world coordinates; y down = anterior at the top for axial sections) -----------------


def _brain(rng: np.random.Generator) -> list[Shape]:
    return [
        _e(0, 0, 0.78, 0.93, SOFT),  # scalp
        _e(0, 0, 0.745, 0.895, BONE),  # skull
        _e(0, 0, 0.715, 0.865, MARROW),  # diploe
        _e(0, 0, 0.70, 0.85, BONE),  # inner table
        _e(0, 0.0, 0.675, 0.825, FLUID),  # CSF
        _e(0, 0.01, 0.65, 0.80, ORGAN, host=True),  # grey matter
        _e(0, 0.02, 0.50, 0.63, ORGAN2, host=True),  # white matter
        _e(-0.13, -0.06, 0.065, 0.24, FLUID, ang=-12),  # lateral ventricles
        _e(0.13, -0.06, 0.065, 0.24, FLUID, ang=12),
        _e(0, 0.14, 0.022, 0.07, FLUID),  # third ventricle
        _e(0, -0.56, 0.012, 0.26, FLUID, p=4),  # interhemispheric fissure
        _e(0, 0.62, 0.012, 0.18, FLUID, p=4),
    ]


def _chest_axial(rng: np.random.Generator) -> list[Shape]:
    shapes = [
        _e(0, 0.05, 0.95, 0.64, FAT),
        _e(0, 0.05, 0.88, 0.57, SOFT),
        _e(-0.43, 0.0, 0.31, 0.43, LUNG, ang=-8, p=2.3, host=True),
        _e(0.43, 0.0, 0.31, 0.43, LUNG, ang=8, p=2.3, host=True),
    ]
    for angle in np.linspace(25, 155, 6):  # ribs in both halves
        t = math.radians(angle)
        for side in (-1, 1):
            shapes.append(_e(side * 0.8 * math.sin(t), 0.05 - 0.52 * math.cos(t), 0.035, 0.028, BONE))
    for lung_x in (-0.43, 0.43):  # pulmonary vessels
        for _ in range(14):
            r, t = 0.85 * math.sqrt(rng.random()), rng.random() * 2 * math.pi
            shapes.append(_e(lung_x + 0.28 * r * math.cos(t), 0.38 * r * math.sin(t),
                             0.008 + 0.012 * rng.random(), 0.008 + 0.012 * rng.random(), VESSEL))
    shapes += [
        _e(0.1, -0.14, 0.27, 0.21, ORGAN, ang=25),  # heart
        _e(0.02, -0.2, 0.07, 0.06, VESSEL),  # ascending aorta
        _e(0.12, 0.26, 0.055, 0.055, VESSEL),  # descending aorta
        _e(0, 0.38, 0.1, 0.09, BONE), _e(0, 0.38, 0.08, 0.07, MARROW),  # vertebra
        _e(0, 0.52, 0.025, 0.07, BONE, p=4),  # spinous process
        _e(0, -0.5, 0.07, 0.035, BONE),  # sternum
        _e(-0.04, 0.2, 0.03, 0.03, GAS),  # oesophagus
    ]
    return shapes


def _chest_frontal(rng: np.random.Generator) -> list[Shape]:
    shapes = [
        _e(0, 0.15, 1.02, 1.2, FAT, p=4),
        _e(0, 0.15, 0.95, 1.13, SOFT, p=4),
        _e(-0.42, -0.1, 0.33, 0.63, LUNG, ang=4, p=2.4, host=True),
        _e(0.42, -0.1, 0.33, 0.63, LUNG, ang=-4, p=2.4, host=True),
    ]
    for k in range(9):  # posterior rib arcs
        for side in (-1, 1):
            shapes.append(_e(side * 0.36, -0.66 + 0.15 * k, 0.5, 0.13, MARROW, ang=side * 8, ring=0.16, half=-1))
    shapes += [
        _e(0.1, 0.3, 0.33, 0.27, ORGAN, ang=-10),  # heart
        _e(0.16, -0.32, 0.1, 0.08, VESSEL),  # aortic knob
        _e(0, 0.0, 0.065, 1.25, BONE, p=6),  # spine
        _e(-0.36, -0.74, 0.36, 0.035, BONE, ang=10, p=4),  # clavicles
        _e(0.36, -0.74, 0.36, 0.035, BONE, ang=-10, p=4),
        _e(0.45, 0.68, 0.12, 0.07, GAS),  # stomach bubble
    ]
    return shapes


def _abdomen(rng: np.random.Generator) -> list[Shape]:
    shapes = [
        _e(0, 0.05, 0.92, 0.68, FAT),
        _e(0, 0.05, 0.86, 0.62, SOFT, ring=0.09),  # abdominal wall muscle
        _e(-0.36, -0.1, 0.4, 0.35, ORGAN, ang=-15, host=True),  # liver
        _e(0.55, 0.04, 0.15, 0.23, ORGAN2, ang=20, host=True),  # spleen
        _e(-0.3, 0.3, 0.11, 0.17, ORGAN2, ang=20, host=True),  # kidneys
        _e(0.3, 0.3, 0.11, 0.17, ORGAN2, ang=-20, host=True),
        _e(-0.28, 0.3, 0.035, 0.06, FAT, ang=20), _e(0.28, 0.3, 0.035, 0.06, FAT, ang=-20),  # renal sinus
        _e(-0.24, 0.04, 0.06, 0.1, FLUID, ang=-20),  # gallbladder
        _e(0.04, 0.17, 0.05, 0.05, VESSEL), _e(-0.1, 0.16, 0.055, 0.04, VESSEL),  # aorta, IVC
        _e(-0.16, 0.36, 0.06, 0.1, SOFT), _e(0.16, 0.36, 0.06, 0.1, SOFT),  # psoas
        _e(0, 0.34, 0.11, 0.1, BONE), _e(0, 0.34, 0.09, 0.08, MARROW),  # vertebra
        _e(0, 0.5, 0.03, 0.08, BONE, p=4),
        _e(0.2, -0.28, 0.2, 0.11, FLUID, ang=-10),  # stomach
        _e(0.22, -0.33, 0.14, 0.04, GAS, ang=-10),
    ]
    for _ in range(6):  # bowel loops
        x, y = rng.uniform(-0.1, 0.5), rng.uniform(-0.15, 0.25)
        r = rng.uniform(0.04, 0.07)
        shapes += [_e(x, y, r, r * rng.uniform(0.7, 1.0), SOFT, ang=rng.uniform(0, 180)),
                   _e(x, y, r * 0.6, r * 0.5, GAS if rng.random() < 0.5 else FLUID)]
    return shapes


def _knee(rng: np.random.Generator) -> list[Shape]:
    return [
        _e(0, 0, 0.62, 1.3, FAT, p=4),
        _e(0, 0, 0.55, 1.3, SOFT, p=4),
        _e(0, 0.05, 0.4, 0.045, CART, p=6),  # joint space cartilage
        _e(-0.33, 0.05, 0.07, 0.035, LIG), _e(0.33, 0.05, 0.07, 0.035, LIG),  # menisci
        _e(0, -0.8, 0.17, 0.55, BONE, p=8),  # femoral shaft
        _e(0, -0.3, 0.37, 0.16, BONE, p=4),  # metaphysis
        _e(-0.18, -0.17, 0.2, 0.2, BONE), _e(0.18, -0.17, 0.2, 0.2, BONE),  # condyles
        _e(0, -0.8, 0.12, 0.55, MARROW, p=8, host=True),
        _e(0, -0.3, 0.33, 0.13, MARROW, p=4, host=True),
        _e(-0.18, -0.17, 0.17, 0.17, MARROW), _e(0.18, -0.17, 0.17, 0.17, MARROW),
        _e(0, -0.04, 0.06, 0.11, LIG),  # cruciate ligaments in the notch
        _e(0, 0.4, 0.39, 0.31, BONE, p=6),  # tibial plateau and metaphysis
        _e(0, 0.42, 0.35, 0.27, MARROW, p=6, host=True),
        _e(0, 0.95, 0.17, 0.4, BONE, p=8), _e(0, 0.95, 0.12, 0.4, MARROW, p=8),
        _e(0.44, 0.46, 0.07, 0.1, BONE), _e(0.46, 0.95, 0.045, 0.42, BONE, p=6),  # fibula
        _e(-0.5, 0.0, 0.03, 0.5, LIG, p=4), _e(0.5, -0.1, 0.025, 0.4, LIG, p=4),  # collateral ligaments
    ]


def _hip(rng: np.random.Generator) -> list[Shape]:
    return [
        _e(0, 0, 1.1, 1.3, FAT, p=4),
        _e(0.05, 0.05, 1.0, 1.2, SOFT, p=4),
        _e(-0.75, 0.25, 0.2, 0.2, FLUID),  # bladder, medially
        _e(-0.2, -0.62, 0.5, 0.28, BONE, ang=22), _e(-0.2, -0.62, 0.45, 0.23, MARROW, ang=22),  # ilium
        _e(-0.02, -0.16, 0.3, 0.29, BONE),  # acetabular roof
        _e(-0.12, 0.5, 0.16, 0.26, BONE), _e(-0.12, 0.5, 0.12, 0.21, MARROW),  # ischium
        _e(0.07, -0.07, 0.235, 0.235, CART),  # joint cartilage
        _e(0.07, -0.07, 0.21, 0.21, BONE), _e(0.07, -0.07, 0.18, 0.18, MARROW, host=True),  # femoral head
        _e(0.3, 0.12, 0.1, 0.26, BONE, ang=-48, p=4), _e(0.3, 0.12, 0.07, 0.24, MARROW, ang=-48, p=4),  # neck
        _e(0.52, 0.1, 0.13, 0.15, BONE), _e(0.52, 0.1, 0.1, 0.12, MARROW),  # greater trochanter
        _e(0.52, 0.75, 0.15, 0.55, BONE, ang=-8, p=6), _e(0.52, 0.75, 0.1, 0.53, MARROW, ang=-8, p=6, host=True),
        _e(0.75, -0.3, 0.12, 0.5, SOFT, ang=15),  # gluteus medius
    ]


def _shoulder(rng: np.random.Generator) -> list[Shape]:
    return [
        _e(0, 0.1, 1.2, 1.1, FAT, p=4),
        _e(0.05, 0.1, 1.1, 1.0, SOFT, p=4),
        _e(-0.85, 0.65, 0.3, 0.5, LUNG),  # lung apex
        _e(-0.42, 0.08, 0.32, 0.12, BONE, ang=18, p=4), _e(-0.42, 0.08, 0.28, 0.08, MARROW, ang=18, p=4),  # scapula
        _e(-0.1, -0.04, 0.07, 0.21, BONE, p=4),  # glenoid
        _e(0.25, -0.04, 0.29, 0.29, CART),
        _e(0.25, -0.04, 0.26, 0.26, BONE), _e(0.25, -0.04, 0.225, 0.225, MARROW, host=True),  # humeral head
        _e(0.36, 0.62, 0.13, 0.55, BONE, ang=4, p=6), _e(0.36, 0.62, 0.09, 0.53, MARROW, ang=4, p=6),  # shaft
        _e(0.15, -0.46, 0.36, 0.06, BONE, ang=-8, p=4),  # acromion
        _e(-0.35, -0.56, 0.45, 0.065, BONE, ang=10, p=4), _e(-0.35, -0.56, 0.42, 0.04, MARROW, ang=10, p=4),
        _e(0.18, -0.33, 0.22, 0.04, LIG, ang=22),  # supraspinatus tendon
        _e(0.15, -0.4, 0.06, 0.025, FLUID),  # subacromial bursa
    ]


def _ankle_foot(rng: np.random.Generator) -> list[Shape]:
    return [
        _e(-0.36, -0.7, 0.27, 0.65, FAT, p=4), _e(0.12, 0.42, 0.82, 0.24, FAT, ang=-6, p=4),
        _e(-0.44, 0.4, 0.28, 0.25, FAT),
        _e(-0.36, -0.7, 0.23, 0.65, SOFT, p=4), _e(0.12, 0.42, 0.78, 0.2, SOFT, ang=-6, p=4),
        _e(-0.44, 0.4, 0.24, 0.21, FAT),  # heel pad
        _e(-0.34, -0.68, 0.13, 0.58, BONE, p=6), _e(-0.34, -0.68, 0.09, 0.58, MARROW, p=6, host=True),  # tibia
        _e(-0.3, 0.06, 0.17, 0.12, BONE), _e(-0.3, 0.06, 0.14, 0.095, MARROW),  # talus
        _e(-0.45, 0.33, 0.25, 0.13, BONE, ang=10), _e(-0.45, 0.33, 0.22, 0.1, MARROW, ang=10, host=True),
        _e(-0.06, 0.2, 0.08, 0.08, BONE), _e(0.1, 0.3, 0.08, 0.07, BONE),  # navicular, cuneiform
        _e(0.42, 0.38, 0.3, 0.045, BONE, ang=-8, p=4), _e(0.42, 0.46, 0.28, 0.04, BONE, ang=-6, p=4),
        _e(0.8, 0.36, 0.08, 0.03, BONE, p=4), _e(0.8, 0.44, 0.08, 0.03, BONE, p=4),  # phalanges
        _e(-0.6, -0.25, 0.03, 0.45, LIG, ang=3, p=4),  # Achilles tendon
        _e(0.0, 0.56, 0.45, 0.018, LIG, ang=-4, p=4),  # plantar fascia
        _e(-0.25, -0.05, 0.05, 0.03, FLUID),  # joint recess
    ]


def _spine(rng: np.random.Generator) -> list[Shape]:
    shapes = [_e(0, 0, 0.85, 1.35, FAT, p=4), _e(0, 0, 0.78, 1.35, SOFT, p=4),
              _e(0.16, 0, 0.075, 1.4, FLUID, p=8),  # spinal canal (CSF)
              _e(0.16, 0, 0.03, 1.4, ORGAN2, p=8, host=True)]  # cord
    curve = rng.uniform(0.03, 0.07)
    for k in range(-5, 6):
        y = k * 0.24
        x = -0.12 + curve * math.cos(k * 0.35)
        tilt = -8 * math.sin(k * 0.35)
        shapes += [
            _e(x, y, 0.17, 0.095, BONE, ang=tilt, p=6), _e(x, y, 0.145, 0.075, MARROW, ang=tilt, p=6, host=True),
            _e(x, y + 0.12, 0.155, 0.022, CART, ang=tilt, p=4), _e(x, y + 0.12, 0.07, 0.012, FLUID, ang=tilt),
            _e(0.4, y + 0.04, 0.11, 0.04, BONE, ang=25 + tilt, p=4),  # spinous process
            _e(0.27, y + 0.02, 0.05, 0.05, BONE),  # facet / pedicle
        ]
    shapes.append(_e(-0.32, 0, 0.012, 1.35, LIG, p=6))  # anterior longitudinal ligament
    return shapes


def _neck(rng: np.random.Generator) -> list[Shape]:
    return [
        _e(0, 0, 0.78, 0.68, FAT),
        _e(0, 0.01, 0.73, 0.63, SOFT),
        _e(-0.5, -0.36, 0.22, 0.09, SOFT, ang=-32), _e(0.5, -0.36, 0.22, 0.09, SOFT, ang=32),  # SCM
        _e(-0.21, -0.25, 0.14, 0.2, GLAND, ang=22, host=True),  # thyroid lobes and isthmus: the butterfly
        _e(0.21, -0.25, 0.14, 0.2, GLAND, ang=-22, host=True),
        _e(0, -0.37, 0.13, 0.045, GLAND, p=4),
        _e(-0.2, -0.5, 0.2, 0.045, SOFT, ang=8), _e(0.2, -0.5, 0.2, 0.045, SOFT, ang=-8),  # strap muscles
        _e(0, -0.2, 0.13, 0.12, CART), _e(0, -0.2, 0.105, 0.095, GAS),  # trachea
        _e(-0.43, -0.13, 0.07, 0.07, VESSEL), _e(0.43, -0.13, 0.07, 0.07, VESSEL),  # carotids
        _e(-0.52, -0.2, 0.08, 0.045, VESSEL), _e(0.52, -0.2, 0.08, 0.045, VESSEL),  # jugular veins
        _e(0.06, -0.03, 0.05, 0.04, SOFT),  # oesophagus
        _e(0, 0.27, 0.2, 0.15, BONE), _e(0, 0.27, 0.17, 0.12, MARROW),  # vertebral body
        _e(0, 0.5, 0.12, 0.09, FLUID), _e(0, 0.5, 0.06, 0.05, ORGAN2),  # canal and cord
    ]


# region -> (sectional scene, projection scene, ultrasound view (scene, zoom, centre, probe))
SCENES: dict[str, Callable[[np.random.Generator], list[Shape]]] = {
    "brain": _brain, "lung": _chest_axial, "chest_frontal": _chest_frontal, "abdomen": _abdomen,
    "knee": _knee, "hip": _hip, "shoulder": _shoulder, "ankle_foot": _ankle_foot, "spine": _spine,
    "thyroid": _neck,
}
_PROJECTION_SCENE = {"lung": "chest_frontal"}
# ultrasound views: scene, zoom, centre in the scene, probe
_US_VIEW = {
    "abdomen": ("abdomen", 2.3, (-0.38, 0.02), "curved"),
    "thyroid": ("thyroid", 2.1, (0.0, -0.27), "linear"),
    "knee": ("knee", 2.0, (0.3, 0.0), "linear"),
    "shoulder": ("shoulder", 2.0, (0.25, -0.3), "linear"),
    "hip": ("hip", 1.6, (0.2, -0.05), "curved"),
    "ankle_foot": ("ankle_foot", 2.0, (-0.5, -0.2), "linear"),
    "lung": ("lung", 1.6, (-0.45, -0.2), "curved"),
    "spine": ("spine", 1.5, (0.2, 0.0), "curved"),
    "brain": ("brain", 1.2, (0.0, -0.1), "curved"),
}
REGIONS = tuple(_US_VIEW)


# ---- painting -----------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _axes(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates: xs (cols,), ys (rows,); the shorter side spans [-1, 1]."""
    half = min(rows, cols) / 2.0
    xs = ((np.arange(cols, dtype=np.float32) + 0.5) - cols / 2.0) / half
    ys = ((np.arange(rows, dtype=np.float32) + 0.5) - rows / 2.0) / half
    return xs, ys


def _local(s: Shape, xs: np.ndarray, ys: np.ndarray) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """The bounding window of `s` and the shape's local (u, v) coordinates inside it."""
    reach = math.hypot(s.a, s.b) if s.p > 2 else max(s.a, s.b)
    i0, i1 = np.searchsorted(ys, [s.cy - reach, s.cy + reach])
    j0, j1 = np.searchsorted(xs, [s.cx - reach, s.cx + reach])
    if i0 >= i1 or j0 >= j1:
        return None
    dx = xs[j0:j1][None, :] - s.cx
    dy = ys[i0:i1][:, None] - s.cy
    c, sn = math.cos(math.radians(s.ang)), math.sin(math.radians(s.ang))
    return slice(i0, i1), slice(j0, j1), dx * c + dy * sn, dy * c - dx * sn


def _q(s: Shape, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return _pow(u * (1.0 / s.a), s.p) + _pow(v * (1.0 / s.b), s.p)


def _pow(t: np.ndarray, p: float) -> np.ndarray:
    """|t|^p, by multiplication for the even integer exponents the scenes use (pow is slow)."""
    if p in (2, 4, 6, 8):
        t2 = t * t
        return t2 if p == 2 else t2 * t2 if p == 4 else t2 * t2 * t2 if p == 6 else (t2 * t2) ** 2
    return np.abs(t) ** p


def paint(shapes: list[Shape], rows: int, cols: int) -> np.ndarray:
    """Tissue label map (rows, cols) int8: later shapes overwrite earlier ones."""
    xs, ys = _axes(rows, cols)
    label = np.zeros((rows, cols), np.int8)
    for s in shapes:
        win = _local(s, xs, ys)
        if win is None:
            continue
        rs, cs, u, v = win
        q = _q(s, u, v)
        mask = q <= 1.0
        if s.ring > 0:
            mask &= q >= (1.0 - s.ring) ** s.p
        if s.half:
            mask &= v * s.half >= 0
        label[rs, cs][mask] = s.tissue
    return label


def thickness(s: Shape, rows: int, cols: int) -> np.ndarray:
    """Projected path length through shape `s` (an elliptic cylinder profile), in [0, 1], (rows, cols)."""
    xs, ys = _axes(rows, cols)
    out = np.zeros((rows, cols), np.float32)
    win = _local(s, xs, ys)
    if win is not None:
        rs, cs, u, v = win
        out[rs, cs] = np.sqrt(np.clip(1.0 - _q(s, u, v), 0.0, 1.0))
    return out


@dataclass(frozen=True)
class Pose:
    """Where a scene lies in the image: a similarity transform plus per-shape slice variation."""

    scale: float
    angle: float  # degrees
    shift: tuple[float, float]
    wobble: np.ndarray  # (n_shapes, 3) in [-1, 1]: size and position change with the slice position


def random_pose(rng: np.random.Generator, n_shapes: int, *, zoom: float = 1.0,
                centre: tuple[float, float] = (0.0, 0.0), jitter: float = 1.0) -> Pose:
    """A pose for a series: the scene point `centre` near the image centre, magnified by `zoom`."""
    scale = zoom * (1.0 + jitter * rng.uniform(-0.08, 0.06))
    angle = jitter * rng.uniform(-7, 7)
    off = jitter * rng.uniform(-0.05, 0.05, 2)
    shift = (-scale * centre[0] + off[0], -scale * centre[1] + off[1])
    return Pose(scale, angle, shift, rng.uniform(-1, 1, (max(n_shapes, 64), 3)))


def place(shapes: list[Shape], pose: Pose, z: float = 0.0, motion: tuple[float, float] = (0.0, 0.0)) -> list[Shape]:
    """Move scene shapes into image coordinates; `z` in [-1, 1] is the slice position in the series."""
    c, sn = math.cos(math.radians(pose.angle)), math.sin(math.radians(pose.angle))
    out = []
    groups: dict[tuple[int, int], int] = {}
    for s in shapes:
        # shapes centred (nearly) together change together, so nested shells stay nested
        key = (round(s.cx / 0.05), round(s.cy / 0.05))
        w = pose.wobble[groups.setdefault(key, len(groups)) % len(pose.wobble)]
        grow = float(np.clip(1.0 + 0.22 * z * w[0] - 0.12 * z * z, 0.45, 1.3))
        cx, cy = s.cx + 0.03 * z * w[1], s.cy + 0.03 * z * w[2]
        x = pose.scale * (cx * c - cy * sn) + pose.shift[0] + motion[0]
        y = pose.scale * (cx * sn + cy * c) + pose.shift[1] + motion[1]
        out.append(s._replace(cx=x, cy=y, a=s.a * pose.scale * grow, b=s.b * pose.scale * grow,
                              ang=s.ang + pose.angle))
    return out


def add_lesion(shapes: list[Shape], rng: np.random.Generator) -> list[Shape]:
    """Append a lesion (a small ellipse) inside a randomly chosen host shape."""
    hosts = [s for s in shapes if s.host]
    if not hosts:
        return shapes
    h = hosts[int(rng.integers(len(hosts)))]
    r, t = 0.6 * math.sqrt(rng.random()), rng.random() * 2 * math.pi
    u, v = r * h.a * math.cos(t), r * h.b * math.sin(t)
    c, sn = math.cos(math.radians(h.ang)), math.sin(math.radians(h.ang))
    size = min(h.a, h.b) * rng.uniform(0.15, 0.4)
    return shapes + [_e(h.cx + u * c - v * sn, h.cy + u * sn + v * c, size, size * rng.uniform(0.6, 1.0),
                        LESION, ang=rng.uniform(0, 180))]


# ---- the result -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PixelImage:
    """Stored pixel values and how to read them.

    pixels: (H, W) | (F, H, W) grey or (H, W, 3) | (F, H, W, 3) RGB, uint8 or uint16 stored values.
    rescale: (slope, intercept) to output units (CT: HU), or None.
    windows: VOI windows (centre, width) in output units, most relevant first; may be empty.
    """

    pixels: np.ndarray
    photometric: str
    bits_stored: int
    rescale: tuple[float, float] | None = None
    rescale_type: str | None = None
    windows: tuple[tuple[float, float], ...] = ()

    @property
    def frames(self) -> int:
        colour = self.pixels.shape[-1] == 3 and self.pixels.ndim in (3, 4)
        return self.pixels.shape[0] if self.pixels.ndim == (4 if colour else 3) else 1


# ---- archive-like variation -----------------------------------------------------------------------

# Axial sections of the head and trunk are framed whole (a smaller MR field of view folds the body
# back in, wrap-around; a CT reconstruction that cuts the body shows truncation artefacts), and knee
# coils image the joint with margin: for these the body outline stays off the image corners.
_FRAMED_WHOLE = frozenset({"brain", "lung", "abdomen", "thyroid", "knee"})
_LIMBS = frozenset({"knee", "hip", "shoulder", "ankle_foot"})
# generic CT windows (centre, width) a series may store first instead of its region's usual one
_CT_PRESETS = ((40.0, 400.0), (500.0, 2000.0), (-600.0, 1500.0), (50.0, 350.0))


@dataclass(frozen=True)
class Variation:
    """Per-series nuisance of a real archive (patient, positioning, protocol, display, vendor).

    None of it tells the modality or the region. `Variation()` is the canonical phantom (no change).
    Geometry is in image units (the shorter side spans [-1, 1]).
    """

    zoom: float = 1.0  # field of view: > 1 magnifies (the anatomy may be cut off), < 1 shows it small
    angle: float = 0.0  # in-plane rotation, degrees
    shift: tuple[float, float] = (0.0, 0.0)  # translation of the anatomy
    habitus: tuple[float, float] = (1.0, 1.0)  # body width and height factors
    fat: float = 1.0  # growth of the outer fat shell
    flip: bool = False  # mirrored: the other side's limb
    z_shift: float = 0.0  # slice level offset in the series' z units
    window: tuple[float, float] = (0.0, 1.0)  # CT/MR/XR stored window: centre offset (x width), width factor
    preset: int = -1  # CT: index into _CT_PRESETS stored first, -1 the region's usual window
    gamma: float = 1.0  # grey-level curve (protocol, vendor processing)
    noise: float = 1.0  # noise level factor (dose, field strength, averages)
    kernel: float = 0.0  # > 0: edge enhancement (sharp kernel); < 0: extra smoothing of this sigma (pixels)
    bias: float = 1.0  # MR bias-field strength factor
    coil: float = 0.0  # MR: radius of a surface/limb coil's sensitive volume (0: uniform body coil)
    gain_db: float = 0.0  # US: overall gain offset
    dynamic_range: float = 1.0  # US: dynamic-range factor
    depth: float = 1.0  # US: imaging depth factor (< 1: shallower sector)
    grain: float = 1.0  # US: speckle size factor (lower probe frequency: coarser)
    text: int = -1  # burned-in text block: 0 top-right, 1 bottom-right, 2 bottom-left corner; -1 none
    detail_seed: int = 0  # seeds the series' drawn details (text glyphs, table)
    table: bool = False  # CT: the patient table under the body
    fov: float = 0.985  # CT: squared radius of the reconstruction circle


def draw_variation(rng: np.random.Generator, modality: str, region: str, strength: float = 1.0) -> Variation:
    """Draw a series' `Variation`; `strength` in [0, 1] scales every range (0: the canonical phantom)."""
    s = float(strength)

    def log_uniform(low: float, high: float) -> float:
        return math.exp(s * rng.uniform(math.log(low), math.log(high)))

    def chance(p: float) -> bool:
        return bool(rng.random() < s * p)

    if modality == "US":
        zoom, angle, shift = log_uniform(0.7, 1.45), s * rng.uniform(-40, 40), s * rng.uniform(-0.2, 0.2, 2)
    elif modality == "XR":
        zoom, angle, shift = log_uniform(0.75, 1.3), s * rng.uniform(-15, 15), s * rng.uniform(-0.15, 0.15, 2)
    else:  # CT fits its display field of view to the body more tightly than MR does
        low = 0.85 if modality == "CT" else 0.6
        zoom, angle, shift = log_uniform(low, 1.5), s * rng.uniform(-30, 30), s * rng.uniform(-0.3, 0.3, 2)
    habitus = (log_uniform(0.85, 1.2), log_uniform(0.9, 1.12))
    fat = log_uniform(1.0, 1.15)
    flip = region in _LIMBS and chance(0.5)
    z_shift = s * rng.uniform(-0.25, 0.25)
    window = (s * rng.uniform(-0.15, 0.15), log_uniform(0.7, 1.5))
    preset = int(rng.integers(len(_CT_PRESETS))) if chance(0.3) else -1
    gamma = log_uniform(0.75, 1.25) if modality == "US" else log_uniform(0.7, 1.45)
    noise = log_uniform(0.6, 2.0)
    kernel = s * (rng.uniform(0.2, 1.2) if rng.random() < 0.4 else -rng.uniform(0.0, 0.8))
    bias = log_uniform(0.5, 2.2)
    coil = rng.uniform(0.9, 1.3) if (region in _LIMBS or region == "spine") and chance(0.6) else 0.0
    gain_db, dynamic_range = s * rng.uniform(-5, 5), log_uniform(0.85, 1.25)
    depth, grain = log_uniform(0.8, 1.1), log_uniform(0.7, 1.5)
    p_text = {"US": 0.6, "XR": 0.3}.get(modality, 0.15)
    text = int(rng.integers(3)) if chance(p_text) else -1
    detail_seed = int(rng.integers(1 << 31))
    table = modality == "CT" and chance(0.6)
    fov = 0.985 - s * rng.uniform(0.0, 0.16)
    return Variation(float(zoom), float(angle), (float(shift[0]), float(shift[1])), habitus, fat, flip,
                     float(z_shift), (float(window[0]), float(window[1])), preset, gamma, noise, float(kernel),
                     bias, float(coil), float(gain_db), dynamic_range, depth, grain, text, detail_seed, table,
                     float(fov))


def vary_scene(shapes: list[Shape], var: Variation) -> list[Shape]:
    """The patient's build: the scene stretched by the habitus, the outer fat shell grown, maybe mirrored."""
    if var == _CANONICAL:
        return shapes
    hx, hy = var.habitus
    out = []
    for k, s in enumerate(shapes):
        grow = var.fat if k == 0 and s.tissue == FAT else 1.0
        cx = -s.cx if var.flip else s.cx
        out.append(s._replace(cx=cx * hx, cy=s.cy * hy, a=s.a * hx * grow, b=s.b * hy * grow,
                              ang=-s.ang if var.flip else s.ang))
    return out


def vary_pose(pose: Pose, var: Variation) -> Pose:
    """`pose` turned by `var.angle` and moved by `var.shift` (its zoom is applied when the pose is drawn)."""
    return Pose(pose.scale, pose.angle + var.angle, (pose.shift[0] + var.shift[0], pose.shift[1] + var.shift[1]),
                pose.wobble)


def corners_clear(body: Shape, rows: int, cols: int, margin: float = 0.08) -> bool:
    """Whether the outline `body` (grown by the largest slice change) leaves all four image corners free."""
    half = min(rows, cols) / 2.0
    x, y = cols / (2.0 * half) - margin, rows / (2.0 * half) - margin
    grown = body._replace(a=body.a * 1.25, b=body.b * 1.25)
    c, sn = math.cos(math.radians(grown.ang)), math.sin(math.radians(grown.ang))
    for px, py in ((-x, -y), (x, -y), (-x, y), (x, y)):
        dx, dy = np.float32(px - grown.cx), np.float32(py - grown.cy)
        if float(_q(grown, dx * c + dy * sn, dy * c - dx * sn)) <= 1.0:
            return False
    return True


def burn_text(grey: np.ndarray, var: Variation, value: float) -> None:
    """Burn a block of text-like glyphs (3 x 5 cells) into the last two axes of `grey`, in place."""
    if var.text < 0:
        return
    rows, cols = grey.shape[-2:]
    rng = np.random.default_rng([var.detail_seed, 41])
    unit = max(1, min(rows, cols) // 100)
    lines, chars = int(rng.integers(1, 5)), int(rng.integers(5, 14))
    cell_w, cell_h = 4 * unit, 7 * unit
    chars = max(1, min(chars, (cols // 2) // cell_w))
    lines = max(1, min(lines, (rows // 3) // cell_h))
    glyphs = rng.random((lines, chars, 5, 3)) < 0.45
    glyphs[:, rng.random(chars) < 0.15] = False  # spaces
    block = np.zeros((lines * cell_h, chars * cell_w), bool)
    for i in range(lines):
        for j in range(chars):
            cell = np.kron(glyphs[i, j], np.ones((unit, unit), bool))
            block[i * cell_h + unit: i * cell_h + 6 * unit, j * cell_w: j * cell_w + 3 * unit] = cell
    margin = max(2, rows // 40)
    top = margin if var.text == 0 else rows - margin - block.shape[0]
    left = margin if var.text == 2 else cols - margin - block.shape[1]
    if top < 0 or left < 0:
        return
    window = grey[..., top: top + block.shape[0], left: left + block.shape[1]]
    window[..., block] = value


def ct_table(hu: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> None:
    """Paint the patient table (two carbon-fibre shells around foam) below the body, in air only, in place."""
    rows, cols = label.shape
    body_rows = np.flatnonzero((label != AIR).any(axis=1))
    if body_rows.size == 0:
        return
    xs, ys = _axes(rows, cols)
    top = float(ys[body_rows[-1]]) + rng.uniform(0.02, 0.08)
    if top > 0.9:
        return
    curve = rng.uniform(0.0, 0.12)
    surface = top - curve * (1.0 - xs[None, :] ** 2)  # a shallow cradle, higher at the sides
    depth = ys[:, None] - surface
    width = np.abs(xs)[None, :] <= rng.uniform(0.6, 0.85)
    plate = rng.uniform(0.015, 0.03)
    thick = rng.uniform(0.05, 0.1)
    table = np.where((depth >= 0) & (depth < plate) | (depth >= thick - plate) & (depth < thick), rng.uniform(150, 450),
                     np.where((depth >= plate) & (depth < thick - plate), rng.uniform(-900, -700), np.nan))
    paint_here = width & (label == AIR) & ~np.isnan(table)
    hu[paint_here] = table[paint_here]


def coil_sensitivity(rows: int, cols: int, radius: float) -> np.ndarray:
    """A limb or surface coil's receive sensitivity (rows, cols): 1 inside `radius`, falling off outside."""
    xs, ys = _axes(rows, cols)
    r = np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2) / radius
    return (1.0 / (1.0 + r**8)).astype(np.float32)


def vary_window(window: tuple[float, float], var: Variation) -> tuple[float, float]:
    """A stored window (centre, width) moved by the series' display choice."""
    c, w = window
    return c + var.window[0] * w, max(w * var.window[1], 1.0)


_CANONICAL = Variation()


# ---- modality renderers ---------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian noise correlated over `sigma` pixels."""
    n = rng.standard_normal(shape, dtype=np.float32)
    if sigma > 0:
        n = ndimage.gaussian_filter(n, sigma)
        n /= max(float(n.std()), 1e-6)
    return n


def _tissue_lut(base: np.ndarray, rng: np.random.Generator, rel: float) -> np.ndarray:
    return (base * (1.0 + rel * rng.uniform(-1, 1, base.shape))).astype(np.float32)


CT_WINDOWS = {
    "brain": ((40.0, 80.0), (600.0, 2800.0)),
    "lung": ((-600.0, 1500.0), (40.0, 400.0)),
    "abdomen": ((40.0, 400.0),),
    "thyroid": ((40.0, 350.0),),
    "spine": ((40.0, 400.0), (500.0, 2000.0)),
}


def render_ct(label: np.ndarray, rng: np.random.Generator, *, noise_hu: float, region: str,
              var: Variation = _CANONICAL) -> PixelImage:
    """CT: HU per tissue, partial volume, correlated noise, circular FOV; stored = HU + 1024 (12 bits).

    var: the series' table, reconstruction kernel, noise factor, FOV radius, stored window, text.
    """
    rows, cols = label.shape
    hu = (_CT_HU + rng.uniform(-8, 8, N_TISSUES).astype(np.float32))[label]
    lung = label == LUNG
    if lung.any():  # parenchymal texture
        hu[lung] += 35.0 * _smooth_noise(rng, label.shape, 1.2)[lung]
    if var.table:
        ct_table(hu, label, np.random.default_rng([var.detail_seed, 43]))
    hu = ndimage.gaussian_filter(hu, 0.6 + max(0.0, -var.kernel))
    hu += noise_hu * var.noise * _smooth_noise(rng, label.shape, 0.8)
    if var.kernel > 0:  # a sharp reconstruction kernel: edges and noise enhanced
        hu += var.kernel * (hu - ndimage.gaussian_filter(hu, 1.0))
    xs, ys = _axes(rows, cols)
    fov = (xs[None, :] ** 2 + ys[:, None] ** 2) > var.fov
    hu[fov] = -1024.0
    burn_text(hu, var, 2500.0)
    stored = np.rint(np.clip(hu, -1024.0, 3000.0) + 1024.0).astype(np.uint16)
    windows = CT_WINDOWS.get(region, ((400.0, 1800.0), (40.0, 400.0)))
    if var != _CANONICAL:
        first = _CT_PRESETS[var.preset] if var.preset >= 0 else windows[0]
        windows = (vary_window(first, var),) + tuple(w for w in windows if w != first)
    return PixelImage(stored, "MONOCHROME2", 12, (1.0, -1024.0), "HU", windows)


def mr_contrast(weighting: str) -> tuple[np.ndarray, float]:
    """Tissue intensities and blur (pixels) for an MR weighting name (see `WEIGHTINGS`)."""
    w = weighting.upper()
    if w == "FLAIR":
        lut = _MR["T2"].copy()
        lut[FLUID] = 60.0
        return lut, 0.6
    if w == "DWI":
        lut = _MR["T2"].copy()
        lut[FAT] = 80.0
        return lut, 1.6
    base = "T1" if w.startswith("T1") else "PD" if w.startswith("PD") else "T2"
    lut = _MR[base].copy()
    if w.endswith("FS") or w == "STIR":
        lut[FAT] *= 0.12
        lut[MARROW] *= 0.2
    return lut, 0.5


def render_mr(label: np.ndarray, rng: np.random.Generator, *, weighting: str, bits: int,
              var: Variation = _CANONICAL) -> PixelImage:
    """MR: tissue contrast x texture x smooth bias field, then Rician noise; no physical units.

    var: the series' grey-level curve, bias strength, coil falloff, noise level, filter, window, text.
    """
    rows, cols = label.shape
    lut, blur = mr_contrast(weighting)
    s = _tissue_lut(lut, rng, 0.08)[label]
    s *= 1.0 + 0.06 * _smooth_noise(rng, label.shape, 2.0)
    s = ndimage.gaussian_filter(s, blur)
    if var.gamma != 1.0:  # TE/TR/flip angle and vendor scaling bend the contrast
        peak = max(float(lut.max()), 1.0)
        s = peak * np.power(np.clip(s / peak, 0.0, None), var.gamma)
    xs, ys = _axes(rows, cols)
    x, y = xs[None, :], ys[:, None]
    k = rng.uniform(-0.3, 0.3, 5).astype(np.float32) * np.float32(var.bias)
    bias = np.exp(k[0] * x + k[1] * y + k[2] * x * x + k[3] * y * y + k[4] * x * y)
    if var.coil:
        bias = bias * coil_sensitivity(rows, cols, var.coil)
    gain = rng.uniform(0.8, 1.6) * (4.0 if bits > 12 else 1.0)
    s = s * bias * gain
    sigma = rng.uniform(0.02, 0.045) * var.noise * float(np.percentile(s, 95))
    n1 = rng.standard_normal(s.shape, dtype=np.float32)
    n2 = rng.standard_normal(s.shape, dtype=np.float32)
    mag = np.sqrt((s + sigma * n1) ** 2 + (sigma * n2) ** 2)
    if var.kernel < 0:  # the vendor's denoising filter
        mag = ndimage.gaussian_filter(mag, -var.kernel)
    top = (1 << bits) - 1
    stored = np.rint(np.clip(mag, 0, top)).astype(np.uint16)
    lo, hi = np.percentile(stored, [1.0, 99.5])
    window = ((lo + hi) / 2.0, max(hi - lo, 1.0))
    if var != _CANONICAL:
        window = vary_window(window, var)
        burn_text(stored, var, min(top, 1.1 * hi))
    return PixelImage(stored, "MONOCHROME2", bits, None, None, (window,))


def us_sector(rows: int, cols: int, probe: str, spread: float, depth_factor: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The imaged area (bool mask, rows x cols) and depth in [0, 1] for a curved or linear probe.

    depth_factor < 1 images less deep (the sector ends higher up the image).
    """
    xs, ys = _axes(rows, cols)
    x, y = xs[None, :], ys[:, None]
    if probe == "linear":
        half = 0.55 + 0.25 * spread
        span = 1.84 * depth_factor
        mask = (np.abs(x) <= half) & (y >= -0.92) & (y <= span - 0.92)
        depth = np.broadcast_to((y + 0.92) / span, mask.shape)
    else:
        apex = -1.3
        r = np.sqrt(x * x + (y - apex) ** 2)
        theta = np.arctan2(x, y - apex)
        r0, r1 = 0.38, 0.38 + 1.82 * depth_factor
        mask = (r >= r0) & (r <= r1) & (np.abs(theta) <= math.radians(28 + 12 * spread))
        depth = (r - r0) / (r1 - r0)
    return mask, np.clip(depth, 0.0, 1.0).astype(np.float32)


def _speckle(rng: np.random.Generator, shape: tuple[int, int], lateral: float, axial: float) -> np.ndarray:
    """Complex Gaussian field correlated over (axial, lateral) pixels; its magnitude is Rayleigh."""
    re = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), (axial, lateral))
    im = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), (axial, lateral))
    return re + 1j * im


def render_us(labels: list[np.ndarray], rng: np.random.Generator, *, probe: str, spread: float,
              colour: bool, doppler: bool, var: Variation = _CANONICAL) -> PixelImage:
    """US: echogenicity x Rayleigh speckle x shadows x attenuation, log-compressed, black outside the sector.

    labels: one tissue map per frame (cine clips have several).
    var: the series' depth, speckle size, gain, dynamic range, grey map (gamma), text.
    """
    rows, cols = labels[0].shape
    mask, depth = us_sector(rows, cols, probe, spread, var.depth)
    lut = _tissue_lut(_US_ECHO, rng, 0.1)
    grain = max(rows, cols) / 256.0 * var.grain
    field = _speckle(rng, (rows, cols), 1.6 * grain, 0.7 * grain)
    dynamic_range = rng.uniform(45, 60) * var.dynamic_range
    gain_db = rng.uniform(-4, 2) + var.gain_db
    tgc = rng.uniform(0.6, 1.4)
    frames = []
    for label in labels:
        echo = ndimage.gaussian_filter(lut[label], 0.8 * grain)
        gy, gx = np.gradient(echo)
        echo = echo + 2.5 * np.abs(gy)  # specular reflection at interfaces facing the probe
        blocker = np.isin(label, (BONE, GAS)).astype(np.float32)
        lag = max(2, int(3 * grain))  # the reflecting surface itself stays bright
        behind = np.zeros_like(blocker)
        behind[lag:] = np.maximum.accumulate(blocker, axis=0)[:-lag]
        shadow = 1.0 - 0.92 * behind
        field = 0.8 * field + 0.6 * _speckle(rng, (rows, cols), 1.6 * grain, 0.7 * grain)  # decorrelates
        speckle = np.abs(field)
        speckle /= float(speckle.mean()) + 1e-6
        near = 1.0 + 0.8 * np.exp(-depth / 0.04)  # reverberation band under the probe
        intensity = echo * speckle * shadow * near * np.exp(-tgc * depth)
        db = 20.0 * np.log10(intensity + 1e-5) + gain_db - 18.0  # mid-grey parenchyma
        db = ndimage.gaussian_filter(db, 0.6 * grain)  # spatial compounding / persistence
        grey = np.clip((db + dynamic_range) / dynamic_range, 0.0, 1.0)
        grey = (grey if var.gamma == 1.0 else np.power(grey, var.gamma)) * 255.0  # the grey map
        grey[~mask] = 0.0
        frames.append(grey)
    grey = np.rint(np.stack(frames)).astype(np.uint8)
    # depth-scale ticks beside the sector (burned-in annotation, away from the corners)
    tick_col = min(cols - 3, int(cols * 0.9))
    grey[:, int(rows * 0.15):int(rows * 0.9):max(4, rows // 12), tick_col:tick_col + 2] = 200
    burn_text(grey, var, 220)
    out = grey if len(labels) > 1 else grey[0]
    if not colour:
        return PixelImage(out, "MONOCHROME2", 8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[..., 2] = np.clip(rgb[..., 2].astype(np.int16) + 6, 0, 255).astype(np.uint8)  # a faint blue tint
    if doppler:
        box = np.zeros((rows, cols), bool)
        box[int(rows * 0.3):int(rows * 0.7), int(cols * 0.35):int(cols * 0.65)] = True
        for f, label in enumerate(labels):
            flow = box & (label == VESSEL) & mask
            rgb[f][flow] = (210, 40, 30) if f % 2 == 0 else (30, 60, 220)
            edge = box ^ ndimage.binary_erosion(box)
            rgb[f][edge & mask] = (200, 200, 60)
    return PixelImage(rgb if len(labels) > 1 else rgb[0], "RGB", 8)


def render_xr(shapes: list[Shape], label: np.ndarray, rng: np.random.Generator, *, bits: int,
              monochrome1: bool, collimate: bool, fluoro_frames: list[np.ndarray] | None = None,
              var: Variation = _CANONICAL) -> PixelImage:
    """XR: a projection (blurred attenuation x body thickness), exponential attenuation, noise, processing.

    var: the series' dose (noise), grey-level curve, window, text.
    """
    rows, cols = label.shape
    scale = max(rows, cols) / 256.0
    body = thickness(shapes[0], rows, cols)
    frames_in = fluoro_frames or [label]
    xs, ys = _axes(rows, cols)
    heel = 1.0 + rng.uniform(0.04, 0.12) * ys[:, None]
    fluoro = fluoro_frames is not None
    out = []
    for lab in frames_in:
        mu = ndimage.gaussian_filter(_XR_MU[lab], 1.2 * scale)
        att = mu * (0.35 + 0.65 * np.sqrt(body)) * 5.0
        exposure = np.exp(-att) * heel
        q = (0.03 if fluoro else 0.01) * var.noise
        exposure = exposure + q * np.sqrt(exposure) * rng.standard_normal(exposure.shape, dtype=np.float32)
        v = -np.log(np.clip(exposure, 1e-3, None)) / 4.0
        v = v + 0.7 * (v - ndimage.gaussian_filter(v, 6.0 * scale))  # unsharp-mask processing
        v = np.clip(v, 0.0, 1.0)
        out.append(v if var.gamma == 1.0 else np.power(v, var.gamma))
    v = np.stack(out)
    if fluoro:
        disc = (xs[None, :] ** 2 + ys[:, None] ** 2) > 0.92
        grey = np.rint(np.clip(0.1 + 0.85 * v, 0, 1) * 255).astype(np.uint8)
        grey[:, disc] = 0
        burn_text(grey, var, 240)
        return PixelImage(grey, "MONOCHROME2", 8, None, None, (vary_window((128.0, 256.0), var),))
    v = v[0]
    if collimate:
        m = rng.uniform(0.03, 0.09, 4)
        x0, x1 = int(m[0] * cols), int((1 - m[1]) * cols)
        y0, y1 = int(m[2] * rows), int((1 - m[3]) * rows)
        v[:y0], v[y1:], v[:, :x0], v[:, x1:] = 0.95, 0.95, 0.95, 0.95
    mk = max(3, int(0.04 * rows))  # lead side marker
    left = rng.random() < 0.5
    mx = int(0.12 * cols) if left else int(0.88 * cols) - mk
    v[int(0.1 * rows):int(0.1 * rows) + mk, mx:mx + mk] = 1.0
    top = (1 << bits) - 1
    stored = np.rint((0.04 + 0.92 * v) * top).astype(np.uint16)
    if monochrome1:
        stored = (top - stored).astype(np.uint16)
    lo, hi = np.percentile(stored, [2.0, 98.0])
    burn_text(stored, var, 0 if monochrome1 else top)
    return PixelImage(stored, "MONOCHROME1" if monochrome1 else "MONOCHROME2", bits, None, None,
                      (vary_window(((lo + hi) / 2.0, max(hi - lo, 1.0)), var),))


# ---- one entry point --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    """Per-series acquisition choices that shape the pixels (all chosen by the export writer)."""

    weighting: str = "T2"  # MR
    bits: int = 12  # MR / XR bits stored
    monochrome1: bool = False  # XR
    collimate: bool = False  # XR
    fluoro: bool = False  # XR: RF multi-frame look
    colour: bool = False  # US
    doppler: bool = False  # US colour box
    noise_hu: float = 14.0  # CT
    lesion: bool = False
    vary: float = 0.0  # strength of archive-like variation (`Variation`) in [0, 1]; 0: the canonical phantom


def synth_pixels(region: str, modality: str, rows: int, cols: int, *, series_seed: int, seed: int,
                 z: float = 0.0, frames: int = 1, look: Look | None = None) -> PixelImage:
    """One phantom image of `region` as `modality` ("CT", "MR", "US" or "XR") sees it.

    series_seed fixes the anatomy and pose (shared by the slices of a series); seed the noise of this
    image; z in [-1, 1] is the slice position. frames > 1 (US cine, XR fluoroscopy) adds slow motion.
    look.vary > 0 draws the series' `Variation` (field of view, rotation, position, build, slice level,
    window, grey curve, noise, kernel, coil, text, table) from series_seed, plus a little per-image motion.
    Returns stored values (rows, cols) or (frames, rows, cols[, 3]) with their photometric/rescale.
    """
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    if region not in _US_VIEW:
        raise ValueError(f"unknown region {region!r}; expected one of {REGIONS}")
    look = look or Look()
    srng = np.random.default_rng([series_seed, 11])
    rng = np.random.default_rng([seed, 23])
    scene_name = region
    zoom, centre, probe = 1.0, (0.0, 0.0), "curved"
    if modality == "US":
        scene_name, zoom, centre, probe = _US_VIEW[region]
    elif modality == "XR":
        scene_name = _PROJECTION_SCENE.get(region, region)
    scene = SCENES[scene_name](np.random.default_rng([series_seed, 13]))
    jitter = 0.6 if modality == "US" else 1.0
    var, nudge = _CANONICAL, (0.0, 0.0)
    if look.vary > 0:
        vrng = np.random.default_rng([series_seed, 29])
        base = srng.bit_generator.state
        for _ in range(12):  # the same base pose; the variation is redrawn until the framing rule holds
            srng.bit_generator.state = base
            var = draw_variation(vrng, modality, region, look.vary)
            pose = vary_pose(random_pose(srng, len(scene), zoom=zoom * var.zoom, centre=centre, jitter=jitter), var)
            if region not in _FRAMED_WHOLE or modality not in ("CT", "MR") or corners_clear(
                    place(vary_scene(scene[:1], var), pose)[0], rows, cols):
                break
        else:  # nothing drawn framed the body whole: the canonical framing does
            var = dataclasses.replace(var, zoom=1.0, angle=0.0, shift=(0.0, 0.0), habitus=(1.0, 1.0), fat=1.0)
            srng.bit_generator.state = base
            pose = random_pose(srng, len(scene), zoom=zoom, centre=centre, jitter=jitter)
        scene = vary_scene(scene, var)
        z = float(np.clip(z + var.z_shift, -0.85, 0.85))
        irng = np.random.default_rng([seed, 31])
        nudge = (float(irng.uniform(-0.015, 0.015)), float(irng.uniform(-0.015, 0.015)))  # breathing, movement
    else:
        pose = random_pose(srng, len(scene), zoom=zoom, centre=centre, jitter=jitter)
    spread = float(srng.random())

    def shapes_at(motion: tuple[float, float]) -> list[Shape]:
        placed = place(scene, pose, z, (motion[0] + nudge[0], motion[1] + nudge[1]))
        # the same lesion (relative to its host) in every slice and frame of the series
        return add_lesion(placed, np.random.default_rng([series_seed, 17])) if look.lesion else placed

    if frames > 1:
        phase = rng.uniform(0, 2 * math.pi)
        motions = [(0.02 * math.sin(phase + 0.7 * f), 0.03 * math.sin(phase + 0.5 * f)) for f in range(frames)]
    else:
        motions = [(0.0, 0.0)]
    shapes = shapes_at(motions[0])
    labels = [paint(shapes, rows, cols)] + [paint(shapes_at(m), rows, cols) for m in motions[1:]]
    if modality == "CT":
        return render_ct(labels[0], rng, noise_hu=look.noise_hu, region=region, var=var)
    if modality == "MR":
        return render_mr(labels[0], rng, weighting=look.weighting, bits=look.bits, var=var)
    if modality == "US":
        return render_us(labels, rng, probe=probe, spread=spread, colour=look.colour, doppler=look.doppler,
                         var=var)
    return render_xr(shapes, labels[0], rng, bits=look.bits, monochrome1=look.monochrome1,
                     collimate=look.collimate, fluoro_frames=labels if look.fluoro else None, var=var)


def display_uint8(image: PixelImage) -> np.ndarray:
    """A display rendering (H, W) uint8 of the middle frame: rescale, first window, MONOCHROME1, colour -> grey."""
    px = image.pixels
    colour = image.photometric in ("RGB", "YBR_FULL", "YBR_FULL_422")
    if image.frames > 1:
        px = px[image.frames // 2]
    if colour:
        px = px.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.rint(px).astype(np.uint8)
    v = px.astype(np.float32)
    if image.rescale:
        v = v * image.rescale[0] + image.rescale[1]
    if image.windows:
        c, w = image.windows[0]
        v = (v - (c - w / 2.0)) / w
    else:
        lo, hi = np.percentile(v, [0.5, 99.5])
        v = (v - lo) / max(hi - lo, 1e-6)
    v = np.clip(v, 0.0, 1.0)
    if image.photometric == "MONOCHROME1":
        v = 1.0 - v
    return np.rint(v * 255.0).astype(np.uint8)
