"""Hostile pixel data for the decoding tests: real files whose decoders raise, panic, crash or block.

`make_hostile(export, manifest)` rewrites some `ok` single-frame native images of a synthetic export
(headers kept, so the index still calls them `ok`) and returns {kind: relative path}:

- rle_panic: RLE whose first run repeats past the end of the frame: pylibjpeg-rle panics
  (pyo3's PanicException, a BaseException);
- rle_no_segments: an RLE header listing no segment: pydicom's decoders raise, SimpleITK (the
  fallback) dies of SIGFPE;
- j2k_garbage: a JPEG 2000 codestream with a damaged header: pydicom's GDCM plugin aborts (SIGABRT);
- unknown_syntax: a private transfer syntax UID: pydicom raises ValueError;
- short_pixels: Pixel Data shorter than Rows x Columns;
- jpeg_garbage: a JPEG baseline fragment of noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from pydicom.encaps import encapsulate, generate_frames

from modan_dicom.synth.encode import set_pixels

KINDS = ("rle_panic", "rle_no_segments", "j2k_garbage", "unknown_syntax", "short_pixels", "jpeg_garbage")


def _frame(ds: pydicom.Dataset) -> bytearray:
    return bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))


def corrupt(path: Path, kind: str) -> None:
    """Rewrite the pixel data of the single-frame grey DICOM at `path` as `kind` (see the module docstring)."""
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array
    write = {"enforce_file_format": True}
    if kind in ("rle_panic", "rle_no_segments"):
        set_pixels(ds, pixels.astype(np.uint16), "rle")
        frame = _frame(ds)
        if kind == "rle_panic":
            frame[64] = 0x81  # first run of segment 1: replicate 128 bytes, past the frame's end
        else:
            frame[:64] = bytes(64)  # no segment, no offsets
        ds.PixelData = encapsulate([bytes(frame)])
    elif kind == "j2k_garbage":
        set_pixels(ds, pixels.astype(np.uint16), "j2k_lossless")
        frame = _frame(ds)
        frame[40:60] = b"\xff" * 20
        ds.PixelData = encapsulate([bytes(frame)])
    elif kind == "unknown_syntax":
        ds.file_meta.TransferSyntaxUID = "1.2.826.0.1.3680043.9.9999.1"
        write.update(implicit_vr=False, little_endian=True)
    elif kind == "short_pixels":
        ds.PixelData = ds.PixelData[:100]
    elif kind == "jpeg_garbage":
        set_pixels(ds, (pixels >> max(0, int(pixels.max()).bit_length() - 8)).astype(np.uint8), "jpeg_baseline")
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4])
    else:
        raise ValueError(kind)
    ds.save_as(path, **write)


def native_ok_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    """`ok` single-frame grey images in a native transfer syntax, in manifest order."""
    chosen = (
        (manifest["status"] == "ok")
        & manifest["syntax"].isin(["explicit_le", "implicit_le"])
        & (manifest["n_frames"] <= 1)
        & (manifest["preamble"] == 1)
        & manifest["photometric"].isin(["MONOCHROME1", "MONOCHROME2"])
    )
    return manifest[chosen]


def make_hostile(export: Path, manifest: pd.DataFrame, kinds: tuple[str, ...] = KINDS) -> dict[str, str]:
    victims = native_ok_rows(manifest)["path"].tolist()
    chosen = {kind: victims[i * 3] for i, kind in enumerate(kinds)}
    for kind, relative in chosen.items():
        corrupt(export / relative, kind)
    return chosen
