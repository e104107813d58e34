"""Write pixel data into a pydicom Dataset in a chosen transfer syntax.

One home for every encoding the synthetic exports use. Each syntax is done by a real codec:

| short name          | UID                      | encoder                                          |
| ------------------- | ------------------------ | ------------------------------------------------ |
| explicit_le         | 1.2.840.10008.1.2.1      | pydicom (native)                                 |
| implicit_le         | 1.2.840.10008.1.2        | pydicom (native)                                 |
| explicit_be         | 1.2.840.10008.1.2.2      | pydicom (native; pixel words swapped here)       |
| deflate             | 1.2.840.10008.1.2.1.99   | pydicom deflates the dataset when it is saved    |
| rle                 | 1.2.840.10008.1.2.5      | pydicom `compress` (pylibjpeg-rle when present)  |
| jpeg_baseline       | 1.2.840.10008.1.2.4.50   | Pillow (libjpeg), 8-bit; colour as YBR_FULL_422  |
| jpeg_extended       | 1.2.840.10008.1.2.4.51   | GDCM (IJG 12-bit), unsigned, <= 12 bits stored   |
| jpeg_lossless       | 1.2.840.10008.1.2.4.57   | GDCM (IJG lossless, process 14)                  |
| jpeg_lossless_sv1   | 1.2.840.10008.1.2.4.70   | GDCM (IJG lossless, selection value 1)           |
| jpegls_lossless     | 1.2.840.10008.1.2.4.80   | pydicom `compress` (pyjpegls / CharLS)           |
| jpegls_near         | 1.2.840.10008.1.2.4.81   | pydicom `compress` (pyjpegls / CharLS)           |
| j2k_lossless        | 1.2.840.10008.1.2.4.90   | pydicom `compress` (pylibjpeg-openjpeg)          |
| j2k                 | 1.2.840.10008.1.2.4.91   | pydicom `compress` (pylibjpeg-openjpeg)          |
| j2k_part2_lossless  | 1.2.840.10008.1.2.4.92   | GDCM (OpenJPEG); pydicom cannot decode it, so    |
|                     |                          | readers need the SimpleITK path                  |

Input arrays (`pixels`):

* grey: (H, W) or (F, H, W) with F frames; colour (RGB values): (H, W, 3) or (F, H, W, 3).
  An array with ndim 3 whose last axis is 3 is taken as colour.
* dtype uint8, int8, uint16 or int16 (stored values, before any Rescale Slope/Intercept).
* j2k and j2k_lossless need at least 32 x 32 pixels (OpenJPEG's default 6 resolution levels).

Encoding one 512 x 512 16-bit frame takes ~1 ms (native), ~7 ms (RLE, JPEG-LS), ~30 ms (JPEG
lossless), ~50 ms (JPEG 2000) on one core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

JPEG2000_PART2_LOSSLESS = "1.2.840.10008.1.2.4.92"

TRANSFER_SYNTAXES: dict[str, str] = {
    "explicit_le": str(ExplicitVRLittleEndian),
    "implicit_le": str(ImplicitVRLittleEndian),
    "explicit_be": str(ExplicitVRBigEndian),
    "deflate": str(DeflatedExplicitVRLittleEndian),
    "rle": str(RLELossless),
    "jpeg_baseline": str(JPEGBaseline8Bit),
    "jpeg_extended": str(JPEGExtended12Bit),
    "jpeg_lossless": str(JPEGLossless),
    "jpeg_lossless_sv1": str(JPEGLosslessSV1),
    "jpegls_lossless": str(JPEGLSLossless),
    "jpegls_near": str(JPEGLSNearLossless),
    "j2k_lossless": str(JPEG2000Lossless),
    "j2k": str(JPEG2000),
    "j2k_part2_lossless": JPEG2000_PART2_LOSSLESS,
}

# short names whose decoded values differ from the input
LOSSY: frozenset[str] = frozenset({"jpeg_baseline", "jpeg_extended", "jpegls_near", "j2k"})
LOSSLESS: frozenset[str] = frozenset(TRANSFER_SYNTAXES) - LOSSY

# largest Bits Stored each syntax accepts (others: 16)
MAX_BITS: dict[str, int] = {"jpeg_baseline": 8, "jpeg_extended": 12}

# the quality of the lossy encodings: realistic, small errors
JPEG_QUALITY = 90  # IJG quality for jpeg_baseline / jpeg_extended
JPEGLS_NEAR_ERROR = 2  # NEAR parameter of jpegls_near (max absolute error per sample)
J2K_COMPRESSION_RATIO = 5.0  # j2k (of the 16-bit container: ~3 bits per pixel)

_LOSSY_METHOD = {
    "jpeg_baseline": "ISO_10918_1",
    "jpeg_extended": "ISO_10918_1",
    "jpegls_near": "ISO_14495_1",
    "j2k": "ISO_15444_1",
}
_COLOUR_SYNTAXES = frozenset(TRANSFER_SYNTAXES) - {"jpeg_extended", "j2k_part2_lossless"}
_NATIVE = frozenset({"explicit_le", "implicit_le", "explicit_be", "deflate"})


def set_pixels(
    ds: pydicom.Dataset,
    pixels: np.ndarray,
    syntax: str,
    *,
    photometric: str | None = None,
    bits_stored: int | None = None,
    palette: np.ndarray | None = None,
) -> None:
    """Set the Image Pixel module and the encoded Pixel Data of `ds`, in transfer syntax `syntax`.

    Sets Rows, Columns, SamplesPerPixel, PhotometricInterpretation, BitsAllocated/Stored, HighBit,
    PixelRepresentation, NumberOfFrames (only for an F-frame input), PlanarConfiguration (colour),
    PixelData and ``ds.file_meta.TransferSyntaxUID`` (a file meta is created when missing), so that
    ``ds.save_as(path, enforce_file_format=True)`` writes a valid file. Lossy syntaxes also set
    LossyImageCompression "01" and its method. SOPInstanceUID is never changed.

    pixels: (H, W) | (F, H, W) grey or (H, W, 3) | (F, H, W, 3) RGB; uint8/int8/uint16/int16
        stored values.
    syntax: a key of `TRANSFER_SYNTAXES`.
    photometric: grey: "MONOCHROME2" (default), "MONOCHROME1", or "PALETTE COLOR" (unsigned indices,
        with `palette`); colour: "RGB" (default) or "YBR_FULL" / "YBR_FULL_422" (the RGB input is
        converted; native syntaxes and RLE only for YBR_FULL, native only for YBR_FULL_422).
        jpeg_baseline always stores colour as YBR_FULL_422 (the JPEG holds YCbCr 4:2:2).
    bits_stored: default 8 for 8-bit arrays; for 16-bit arrays 12 when every value fits in 12 bits,
        else 16.
    palette: (N, 3) uint8 or uint16 RGB table for "PALETTE COLOR", N <= 65536; written as 16-bit
        Red/Green/Blue Palette Color Lookup Tables whose first entry maps stored value 0.

    Raises ValueError for an unknown syntax or an array the syntax cannot hold (jpeg_baseline: 8-bit
    unsigned; jpeg_extended: unsigned grey, <= 12 bits stored; j2k_part2_lossless: grey;
    j2k*: at least 32 x 32).
    """
    if syntax not in TRANSFER_SYNTAXES:
        raise ValueError(f"unknown transfer syntax {syntax!r}; known: {', '.join(TRANSFER_SYNTAXES)}")
    arr = np.ascontiguousarray(pixels)
    if arr.dtype not in (np.uint8, np.int8, np.uint16, np.int16):
        raise ValueError(f"pixels must be uint8, int8, uint16 or int16, not {arr.dtype}")
    colour = arr.ndim == 4 or (arr.ndim == 3 and arr.shape[-1] == 3)
    if arr.ndim not in (2, 3, 4) or (arr.ndim == 4 and arr.shape[-1] != 3):
        raise ValueError(f"pixels must be (H, W), (F, H, W), (H, W, 3) or (F, H, W, 3), not {arr.shape}")
    signed = arr.dtype.kind == "i"

    pi = photometric or ("RGB" if colour else "MONOCHROME2")
    if colour and syntax == "jpeg_baseline":
        pi = "YBR_FULL_422"
    _check_combination(syntax, arr, colour, signed, pi, palette)

    bits = bits_stored or _default_bits(arr)
    if bits > MAX_BITS.get(syntax, 16):
        raise ValueError(f"{syntax} holds at most {MAX_BITS[syntax]} bits stored, not {bits}")

    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = FileMetaDataset()
    for keyword in ("LossyImageCompression", "LossyImageCompressionMethod", "LossyImageCompressionRatio"):
        if keyword in ds:
            delattr(ds, keyword)

    native = arr
    if colour and pi in ("YBR_FULL", "YBR_FULL_422") and syntax != "jpeg_baseline":
        native = convert_color_space(arr, "RGB", "YBR_FULL")
    # native pixel data (also what the encoders read); set_pixel_data checks the range against bits
    ds.set_pixel_data(native, pi, bits, generate_instance_uid=False)
    if palette is not None:
        _set_palette(ds, palette)

    uid = TRANSFER_SYNTAXES[syntax]
    if syntax in _NATIVE:
        ds.file_meta.TransferSyntaxUID = uid
        if syntax == "explicit_be":
            _swap_words_for_big_endian(ds)
    elif syntax == "rle":
        ds.compress(uid, encoding_plugin=_rle_plugin(), generate_instance_uid=False)
    elif syntax.startswith("jpegls"):
        near = {"jls_error": JPEGLS_NEAR_ERROR} if syntax == "jpegls_near" else {}
        ds.compress(uid, generate_instance_uid=False, **near)
    elif syntax in ("j2k", "j2k_lossless"):
        lossy: dict[str, Any] = {"j2k_cr": [J2K_COMPRESSION_RATIO]} if syntax == "j2k" else {}
        # pydicom turns the multi-component transform off for RGB: the data stays RGB
        ds.compress(uid, generate_instance_uid=False, **lossy)
    else:
        frames = arr if _is_multiframe(arr, colour) else arr[None]
        encode = _pillow_jpeg if syntax == "jpeg_baseline" else _gdcm_encoder(syntax, bits, signed, colour)
        _set_encapsulated(ds, [encode(frame) for frame in frames], uid)

    if syntax in LOSSY:
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = _LOSSY_METHOD[syntax]
        ratio = arr.size * arr.itemsize / max(1, len(ds.PixelData))
        ds.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]


def _check_combination(
    syntax: str, arr: np.ndarray, colour: bool, signed: bool, pi: str, palette: np.ndarray | None
) -> None:
    grey_pis = ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR")
    colour_pis = ("RGB", "YBR_FULL", "YBR_FULL_422")
    if colour and pi not in colour_pis:
        raise ValueError(f"colour pixels need photometric RGB, YBR_FULL or YBR_FULL_422, not {pi!r}")
    if not colour and pi not in grey_pis:
        raise ValueError(f"grey pixels need photometric MONOCHROME1/2 or PALETTE COLOR, not {pi!r}")
    if colour and syntax not in _COLOUR_SYNTAXES:
        raise ValueError(f"{syntax} is for grey images only")
    if pi == "YBR_FULL" and syntax not in _NATIVE | {"rle"}:
        raise ValueError(f"YBR_FULL is written only with native syntaxes and rle, not {syntax}")
    if pi == "YBR_FULL_422" and syntax not in _NATIVE | {"jpeg_baseline"}:
        raise ValueError(f"YBR_FULL_422 is written only with native syntaxes and jpeg_baseline, not {syntax}")
    if (pi == "PALETTE COLOR") != (palette is not None):
        raise ValueError("PALETTE COLOR needs `palette`, and `palette` needs PALETTE COLOR")
    if pi == "PALETTE COLOR" and signed:
        raise ValueError("PALETTE COLOR indices must be unsigned")
    if syntax == "jpeg_baseline" and arr.dtype != np.uint8:
        raise ValueError(f"jpeg_baseline holds 8-bit unsigned pixels, not {arr.dtype}")
    if syntax == "jpeg_extended" and signed:
        raise ValueError("jpeg_extended holds unsigned pixels (store CT with an intercept)")
    rows, columns = arr.shape[-3:-1] if colour else arr.shape[-2:]
    if syntax in ("j2k", "j2k_lossless") and min(rows, columns) < 32:
        # OpenJPEG's default 6 resolution levels need 2**5 pixels on each side
        raise ValueError(f"{syntax} needs images of at least 32 x 32, not {rows} x {columns}")


def _default_bits(arr: np.ndarray) -> int:
    if arr.itemsize == 1:
        return 8
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    fits12 = (-2048 <= lo and hi <= 2047) if arr.dtype.kind == "i" else hi <= 4095
    return 12 if fits12 else 16


def _is_multiframe(arr: np.ndarray, colour: bool) -> bool:
    return arr.ndim == (4 if colour else 3)


def _rle_plugin() -> str:
    # pylibjpeg-rle is ~10x faster than pydicom's pure-numpy RLE encoder; either is exact
    from pydicom.pixels import get_encoder

    encoder = get_encoder(RLELossless)
    return "pylibjpeg" if "pylibjpeg" in encoder.available_plugins else ""


def _swap_words_for_big_endian(ds: pydicom.Dataset) -> None:
    """pydicom writes OW values as given: big endian files need the words swapped here."""
    if ds.BitsAllocated == 16:
        ds.PixelData = np.frombuffer(ds.PixelData, dtype="<u2").byteswap().tobytes()
    for colour in ("Red", "Green", "Blue"):
        keyword = f"{colour}PaletteColorLookupTableData"
        if keyword in ds:
            table = np.frombuffer(ds[keyword].value, dtype="<u2")
            ds[keyword].value = table.astype(">u2").tobytes()


def _set_palette(ds: pydicom.Dataset, palette: np.ndarray) -> None:
    table = np.asarray(palette)
    if table.ndim != 2 or table.shape[1] != 3 or not 1 <= len(table) <= 65536:
        raise ValueError(f"palette must be (N, 3) with 1 <= N <= 65536, not {table.shape}")
    if table.dtype == np.uint8:
        table = table.astype(np.uint16) * 257
    elif table.dtype != np.uint16:
        raise ValueError(f"palette must be uint8 or uint16, not {table.dtype}")
    n = len(table)
    for i, colour in enumerate(("Red", "Green", "Blue")):
        # 65536 entries are written as 0 (PS3.3 C.7.6.3.1.5); first stored value mapped is 0
        descriptor = pydicom.DataElement(0x00281101 + i, "US", [n % 65536, 0, 16])
        ds[descriptor.tag] = descriptor
        data = pydicom.DataElement(0x00281201 + i, "OW", table[:, i].astype("<u2").tobytes())
        ds[data.tag] = data


def _set_encapsulated(ds: pydicom.Dataset, frames: list[bytes], uid: str) -> None:
    ds.PixelData = encapsulate(frames, has_bot=len(frames) > 1)
    elem = ds["PixelData"]
    elem.VR = "OB"
    elem.is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = uid


def _pillow_jpeg(frame: np.ndarray) -> bytes:
    """Baseline JPEG of one 8-bit frame (H, W) or (H, W, 3 RGB) as YCbCr 4:2:2."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray(frame, mode="L" if frame.ndim == 2 else "RGB")
    # subsampling 1 = 4:2:2, what YBR_FULL_422 declares; grey ignores it
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=1)
    return buffer.getvalue()


def _gdcm_encoder(syntax: str, bits: int, signed: bool, colour: bool) -> Callable[[np.ndarray], bytes]:
    """A function frame -> JPEG / JPEG 2000 Part 2 codestream bytes, made with GDCM."""
    try:
        import gdcm
    except ImportError as exc:  # pragma: no cover - python-gdcm is a dependency
        raise ValueError(f"{syntax} needs python-gdcm (pip install python-gdcm)") from exc

    ts_type = {
        "jpeg_extended": gdcm.TransferSyntax.JPEGExtendedProcess2_4,
        "jpeg_lossless": gdcm.TransferSyntax.JPEGLosslessProcess14,
        "jpeg_lossless_sv1": gdcm.TransferSyntax.JPEGLosslessProcess14_1,
        "j2k_part2_lossless": gdcm.TransferSyntax.JPEG2000Part2Lossless,
    }[syntax]
    samples = 3 if colour else 1

    def encode(frame: np.ndarray) -> bytes:
        allocated = frame.itemsize * 8
        if syntax == "jpeg_extended" and allocated == 16:
            # GDCM picks its IJG build from Bits Allocated; 12 selects the 12-bit lossy codec
            # (the buffer still holds one 16-bit word per sample)
            allocated = 12
        writer = gdcm.ImageWriter()  # owns the image: keep it alive until the change is done
        image = writer.GetImage()
        image.SetNumberOfDimensions(2)
        image.SetDimensions((frame.shape[1], frame.shape[0], 1))
        pi_type = gdcm.PhotometricInterpretation.RGB if colour else gdcm.PhotometricInterpretation.MONOCHROME2
        image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(pi_type))
        image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.ExplicitVRLittleEndian))
        image.SetPixelFormat(gdcm.PixelFormat(samples, allocated, bits, bits - 1, int(signed)))
        if colour:
            image.SetPlanarConfiguration(0)
        element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
        element.SetByteStringValue(np.ascontiguousarray(frame).astype(frame.dtype.newbyteorder("<")).tobytes())
        image.SetDataElement(element)

        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(ts_type))
        if syntax == "jpeg_extended":
            codec = gdcm.JPEGCodec()
            codec.SetLossless(False)
            codec.SetQuality(JPEG_QUALITY)
            change.SetUserCodec(codec)
        change.SetInput(image)
        if not change.Change():
            raise ValueError(f"GDCM could not encode a {frame.shape} {frame.dtype} frame as {syntax}")
        fragments = change.GetOutput().GetDataElement().GetSequenceOfFragments()
        if fragments is None or fragments.GetNumberOfFragments() != 1:
            raise ValueError(f"GDCM returned an unexpected {syntax} fragment layout")
        # SWIG hands the bytes over as a str decoded with surrogateescape
        return fragments.GetFragment(0).GetByteValue().GetBuffer().encode("utf-8", "surrogateescape")

    return encode
