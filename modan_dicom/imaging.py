"""Decode one image file (DICOM or anything Pillow reads) into a float32 (H, W) array in [0, 1].

DICOM, in display order (PS3.3 C.11, C.7.6.3):

1. stored values of one frame (the middle one of a multi-frame object unless `frame` is given),
   decoded by pydicom's pixel handlers in any common transfer syntax; when none of them can
   decode the file, SimpleITK (GDCM) is tried before giving up;
2. colour (RGB, YBR_*, PALETTE COLOR) becomes luma 0.299 R + 0.587 G + 0.114 B, divided by the
   largest sample value (2**BitsStored - 1, or the palette's range): colour images carry no VOI;
3. grey: Modality LUT (Rescale Slope/Intercept, per frame for enhanced objects, or a Modality LUT
   Sequence), then VOI: a VOI LUT Sequence if present (as pydicom prefers it), else the first
   Window Center/Width (LINEAR, LINEAR_EXACT or SIGMOID), else the 0.5 / 99.5 percentiles;
4. MONOCHROME1 is inverted (1 - y), so bright always means dense/strong signal.

PNG/JPEG/TIFF...: grey 8-bit / 255, 16-bit / 65535, colour to luma as above.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SourceError

# Caps on what one image may cost (hostile input): beyond them load_image raises SourceError.
MAX_FRAME_BYTES = 1 << 30  # decoded bytes of one frame; of all frames for a deflated data set
_PIXEL_EXCESS, _PIXEL_SLACK = 2, 1 << 20  # stored pixels may be 2x + 1 MiB what the frames need
_DEFER_BYTES = 1 << 20  # header values longer than this stay in the file until used
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_UNDEFINED = 0xFFFFFFFF
DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.1"

# what error messages never carry (`_scrub`): the file's identifiers, and any value quoted
_IDENTIFYING = (
    "PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "OtherPatientNames",
    "PatientAddress", "PatientMotherBirthName", "AccessionNumber", "StudyID", "InstitutionName",
    "InstitutionAddress", "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
)
_QUOTED = re.compile(r"b?'[^']*'|b?\"[^\"]*\"")

# Rec. 601 luma, the weights of the YCbCr transform DICOM's YBR_FULL uses
LUMA = (0.299, 0.587, 0.114)
LOW_PERCENTILE, HIGH_PERCENTILE = 0.5, 99.5
_PERCENTILE_SAMPLE = 1 << 20  # larger images: percentiles from a strided subsample

_RASTER_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF
    b"MM\x00*",
    b"\x00\x00\x00\x0cjP  ",  # JPEG 2000 (JP2)
)

# fastest exact plugin measured per transfer syntax (512x512); others are still tried after it
_PREFERRED_PLUGIN = {
    "1.2.840.10008.1.2.5": "pylibjpeg",  # RLE
    "1.2.840.10008.1.2.4.50": "pillow",  # JPEG baseline
    "1.2.840.10008.1.2.4.51": "pylibjpeg",  # GDCM and Pillow refuse 12-bit JPEG
    "1.2.840.10008.1.2.4.57": "gdcm",
    "1.2.840.10008.1.2.4.70": "gdcm",
    "1.2.840.10008.1.2.4.80": "pyjpegls",
    "1.2.840.10008.1.2.4.81": "pyjpegls",
    "1.2.840.10008.1.2.4.90": "pylibjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg",
}


def load_image(path: str | os.PathLike[str], *, frame: int | None = None) -> np.ndarray:
    """Decode the image in `path` to a float32 array (H, W) with values in [0, 1].

    frame: which frame of a multi-frame DICOM (or multi-page raster) to return, from 0;
        default the middle one (index F // 2).
    Raises `SourceError` (one line naming the file, never a patient identifier) for a missing
    file, a file that is not an image (e.g. a DICOM structured report), pixel data that no decoder
    can read, or a file beyond the caps: a header the index's reader refuses (a deflate bomb, an
    absurd length), a frame over `MAX_FRAME_BYTES` decoded, pixel data far larger than the image
    needs. It reads the header values and the pixels, never a whole file for a small image.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise SourceError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    if not head:
        raise SourceError(f"{p}: empty file")
    if head[128:132] == b"DICM":
        return _load_dicom(p, frame, force=False)
    if head.startswith(_RASTER_MAGIC) or head[8:12] == b"WEBP":
        return _load_raster(p, frame)
    # no DICM marker: a DICOM data set without preamble, another raster format, or junk
    try:
        return _load_dicom(p, frame, force=True)
    except SourceError as dicom_error:
        try:
            return _load_raster(p, frame)
        except SourceError:
            raise dicom_error from None


# --------------------------------------------------------------------------------------- DICOM


def _load_dicom(path: Path, frame: int | None, *, force: bool) -> np.ndarray:
    from pydicom.uid import UID

    from .ingest.header import read_header

    # The index's header reader first: bounded in time and memory whatever the file holds (a file
    # of zeros, a deflate bomb, an absurd length), where pydicom reads everything it is given.
    header = read_header(path)
    if header["kind"] == "not_dicom":
        raise SourceError(f"{path}: not a DICOM or image file")
    if header["kind"] == "error":
        raise SourceError(f"{path}: unreadable DICOM ({_scrub(header['error'], header)})")
    if not header["image"]:  # pydicom is not asked: it would read a file of zeros for minutes
        if force and not any(header[k] for k in ("SOPClassUID", "Modality", "StudyInstanceUID", "Rows")):
            raise SourceError(f"{path}: not a DICOM or image file")
        sop = header["SOPClassUID"]
        kind = f" ({UID(sop).name})" if sop else ""
        raise SourceError(f"{path}: DICOM object without pixel data{kind}")
    ds = _read_dataset(path, force, header)

    if not any(k in ds for k in _PIXEL_KEYWORDS):
        if force and not _plausible(ds):
            raise SourceError(f"{path}: not a DICOM or image file")
        if "Rows" in ds and "Columns" in ds:  # pydicom drops a Pixel Data cut off by the file's end
            raise SourceError(f"{path}: DICOM image header without readable pixel data (truncated?)")
        sop = ds.get("SOPClassUID")
        kind = f" ({getattr(sop, 'name', sop)})" if sop else ""
        raise SourceError(f"{path}: DICOM object without pixel data{kind}")

    index, n_frames = _frame_index(path, ds, frame)
    _check_pixel_size(path, ds, n_frames)
    if "TransferSyntaxUID" not in ds.get("file_meta", {}):
        _guess_transfer_syntax(ds)
    try:
        arr = _decode_pydicom(ds, index if n_frames > 1 else None)
    except Exception as exc:
        arr = _decode_with_fallback(path, ds, index, exc)
    try:
        return _to_grey(ds, arr, index)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:  # e.g. no palette tables
        raise SourceError(f"{path}: cannot display the pixel values ({_one_line(exc, ids=ds)})") from exc


def _read_dataset(path: Path, force: bool, header: dict[str, Any]) -> Any:
    """The data set of `path`, its values longer than `_DEFER_BYTES` left in the file until used
    (a 2 GB private element before a small image is never read); a deflated one inflated only
    as far as its pixels need."""
    from pydicom.filereader import read_partial

    seen = [False]

    def after_pixels(tag: Any, vr: Any, length: int) -> bool:
        """Stop at the element after the pixel data (trailing padding, or gigabytes of zeros)."""
        if seen[0]:
            return True
        seen[0] = int(tag) in _PIXEL_TAGS
        return False

    try:
        if header["TransferSyntaxUID"] == DeflatedExplicitVRLittleEndian:
            return _read_deflated(path, header)
        with open(path, "rb") as handle:  # pydicom.dcmread, stopping after the pixels
            return read_partial(handle, stop_when=after_pixels, defer_size=_DEFER_BYTES, force=force)
    except SourceError:
        raise
    except Exception as exc:  # corrupt files raise anything from EOFError to ValueError
        if force:
            raise SourceError(f"{path}: not a DICOM or image file") from exc
        raise SourceError(f"{path}: unreadable DICOM ({_one_line(exc, ids=header)})") from exc


def _read_deflated(path: Path, header: dict[str, Any]) -> Any:
    """A deflated data set, inflated in memory (pydicom would inflate all there is): first its
    header (at most MAX_INFLATED_HEADER bytes), then as far as its pixels need, at most
    `MAX_FRAME_BYTES` of pixels in all (every frame before the one asked for is inflated too)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset

    from .ingest.header import MAX_INFLATED_HEADER, read_deflated

    def parse(data: bytes, stop: bool) -> Any:
        def at_pixels(tag: Any, vr: Any, length: int) -> bool:
            return stop and int(tag) in _PIXEL_TAGS

        return read_dataset(DicomBytesIO(data), False, True, stop_when=at_pixels)

    found = read_deflated(path, MAX_INFLATED_HEADER)
    if found is None:
        raise SourceError(f"{path}: unreadable DICOM (deflated data set without its file meta)")
    data, whole, media_class = found
    if not whole:
        head = parse(data, stop=True)
        n_frames = max(1, _first_int(head.get("NumberOfFrames")) or 1)
        needed = _frame_bytes(path, head) * n_frames
        del data, head, found
        if needed > MAX_FRAME_BYTES:
            raise SourceError(f"{path}: deflated pixel data too large ({needed:,} bytes inflated; "
                              f"the limit is {MAX_FRAME_BYTES >> 20} MiB)")
        data, whole, _ = read_deflated(path, MAX_INFLATED_HEADER + _PIXEL_EXCESS * needed + _PIXEL_SLACK)
        if not whole:
            raise SourceError(f"{path}: deflated data set far larger than its pixels need "
                              f"({needed:,} bytes)")
    ds = parse(data, stop=False)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # the data set is inflated now
    if media_class:
        ds.file_meta.MediaStorageSOPClassUID = media_class
    return ds


def _first_int(value: Any) -> int | None:
    number = _first_number(value)
    return int(number) if number is not None else None


def _frame_bytes(path: Path, ds: Any) -> int:
    """Decoded bytes of one frame (Rows x Columns x Samples per Pixel x Bits Allocated / 8), 0 when
    the header lacks them; raises SourceError above `MAX_FRAME_BYTES`."""
    rows, columns = _first_int(ds.get("Rows")) or 0, _first_int(ds.get("Columns")) or 0
    samples, bits = _first_int(ds.get("SamplesPerPixel")) or 1, _first_int(ds.get("BitsAllocated")) or 0
    size = -(-rows * columns * max(samples, 1) * max(bits, 0) // 8)
    if size > MAX_FRAME_BYTES:
        raise SourceError(f"{path}: image too large ({rows} x {columns}, {samples} sample(s) of {bits} bits: "
                          f"{size:,} bytes a frame; the limit is {MAX_FRAME_BYTES >> 20} MiB)")
    return size


def _check_pixel_size(path: Path, ds: Any, n_frames: int) -> None:
    """Refuse a frame over `MAX_FRAME_BYTES`, and stored pixel data far larger than the image needs
    (more than `_PIXEL_EXCESS` times, plus `_PIXEL_SLACK`), before any of it is read."""
    needed = _frame_bytes(path, ds) * n_frames
    if not needed:
        return  # pydicom names what is missing
    keyword = next(k for k in _PIXEL_KEYWORDS if k in ds)
    elem = ds.get_item(keyword, keep_deferred=True)
    length = getattr(elem, "length", None)
    if length is None:  # already read
        value = elem.value
        length = len(value) if isinstance(value, (bytes, bytearray)) else 0
    if length == _UNDEFINED:  # encapsulated: its fragments run to about the end of the file
        start = getattr(elem, "value_tell", None) or getattr(elem, "file_tell", None)
        try:
            length = os.path.getsize(path) - start if start else 0
        except OSError:
            length = 0
    if length > _PIXEL_EXCESS * needed + _PIXEL_SLACK:
        raise SourceError(f"{path}: pixel data of {length:,} bytes, far more than the image needs "
                          f"({needed:,} bytes)")


def _plausible(ds: Any) -> bool:
    """A force-read data set looks like DICOM when it holds known group 0008/0010/0020/0028 tags."""
    return any(k in ds for k in ("SOPClassUID", "Modality", "StudyInstanceUID", "Rows", "PatientID"))


def _frame_index(path: Path, ds: Any, frame: int | None) -> tuple[int, int]:
    """(index of the frame to decode, number of frames)."""
    try:
        n_frames = max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        n_frames = 1
    if frame is None:
        return n_frames // 2, n_frames
    if not 0 <= frame < n_frames:
        raise SourceError(f"{path}: frame {frame} out of range (the object has {n_frames} frame(s))")
    return frame, n_frames


def _guess_transfer_syntax(ds: Any) -> None:
    """Data sets without file meta (no preamble): take the encoding pydicom found while reading."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    implicit, little = ds.original_encoding
    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = FileMetaDataset()
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian


def _decode_pydicom(ds: Any, frame: int | None) -> np.ndarray:
    """Stored values of one frame (None: the only one): (H, W) grey/palette indices or (H, W, 3) RGB."""
    from pydicom.pixels import pixel_array

    preferred = _PREFERRED_PLUGIN.get(str(ds.file_meta.TransferSyntaxUID))
    if preferred:
        try:
            return pixel_array(ds, index=frame, decoding_plugin=preferred)
        except Exception:  # plugin missing or unable: every available plugin is tried next
            pass
    return pixel_array(ds, index=frame)


def _decode_with_fallback(path: Path, ds: Any, index: int, pydicom_error: Exception) -> np.ndarray:
    """Stored values of frame `index` decoded by SimpleITK, for files pydicom cannot decode.

    GDCM (inside SimpleITK) applies Rescale Slope/Intercept and turns MONOCHROME1 into MONOCHROME2
    with a constant that depends on the codec; so it reads a copy of the file whose header says
    neither, and the values that come back are the stored ones, processed like pydicom's.
    """
    import tempfile

    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

    from .ingest.header import is_deferred

    ts = ds.file_meta.get("TransferSyntaxUID")
    name = getattr(ts, "name", ts) or "unknown transfer syntax"
    if ts is not None and not ts.is_compressed:
        # pydicom reads every native encoding: its failure (e.g. too few bytes) is the answer
        raise SourceError(f"{path}: cannot decode pixel data ({name}): {_one_line(pydicom_error, ids=ds)}")

    drop = {"RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence"}
    monochrome1 = str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"
    tags = {ds.data_element(keyword).tag for keyword in drop if keyword in ds}
    changed = monochrome1 or bool(tags)
    # values left in the file (`_DEFER_BYTES`), the pixels apart, are not copied: never read
    tags |= {tag for tag in ds.keys() if tag not in _PIXEL_TAGS and is_deferred(ds, tag)}
    neutral = Dataset({tag: elem for tag, elem in ds.items() if tag not in tags})  # ds stays intact
    neutral.file_meta = ds.file_meta
    neutral.preamble = b"\0" * 128
    if monochrome1:  # a new element: the old one is shared with ds
        neutral[0x00280004] = DataElement(0x00280004, "CS", "MONOCHROME2")
    tmp = None
    try:
        if changed:
            with tempfile.NamedTemporaryFile(suffix=".dcm", delete=False) as fh:
                tmp = fh.name
                neutral.save_as(fh)
        return decode_with_simpleitk(tmp or path, index)
    except Exception as exc:
        raise SourceError(
            f"{path}: cannot decode pixel data ({name}): {_one_line(pydicom_error, 160, ds)}; "
            f"SimpleITK: {_one_line(exc, 120, ds)}"
        ) from exc
    finally:
        if tmp is not None:
            os.unlink(tmp)


def decode_with_simpleitk(path: str | os.PathLike[str], index: int = 0) -> np.ndarray:
    """One frame as SimpleITK's GDCM reader returns it: (H, W) values or (H, W, C) colour.

    GDCM applies Rescale Slope/Intercept and inverts MONOCHROME1 itself. Raises RuntimeError when
    it cannot read the file.
    """
    import SimpleITK as sitk

    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # library code never prints
    try:
        reader = sitk.ImageFileReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileName(str(path))
        image = reader.Execute()
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)
    arr = sitk.GetArrayFromImage(image)  # (F, H, W[, C]) for 3-D images, (H, W[, C]) for 2-D
    if image.GetDimension() == 3:
        arr = arr[index]
    return arr


def _to_grey(ds: Any, arr: np.ndarray, index: int) -> np.ndarray:
    """Stored values of one frame -> float32 (H, W) in [0, 1] (module docstring, steps 2-4)."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if arr.ndim == 3:  # RGB samples (pydicom converts YBR to RGB; GDCM also expands palettes)
        if photometric == "PALETTE COLOR":
            peak = float(np.iinfo(arr.dtype).max) if arr.dtype.kind == "u" else 65535.0
        else:
            peak = float(2 ** int(ds.get("BitsStored", 8)) - 1)
        return _luma(arr[..., :3], peak)
    if photometric == "PALETTE COLOR":
        return _palette_to_grey(ds, arr)

    y = _voi(ds, _modality(ds, arr, index), index)
    if photometric == "MONOCHROME1":
        np.subtract(1.0, y, out=y)
    return y


def _little_endian(ds: Any) -> bool:
    return str(ds.file_meta.get("TransferSyntaxUID", "")) != "1.2.840.10008.1.2.2"


def _palette_to_grey(ds: Any, indices: np.ndarray) -> np.ndarray:
    """PALETTE COLOR indices (H, W) -> luma of the RGB they name, over the tables' nominal range."""
    if "RedPaletteColorLookupTableData" not in ds:  # segmented tables: pydicom expands them
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(indices, ds)
        return _luma(rgb, float(np.iinfo(rgb.dtype).max))
    n, first, bits = (int(v) for v in ds.RedPaletteColorLookupTableDescriptor)
    n = n or 65536
    tables = []
    for colour in ("Red", "Green", "Blue"):
        raw = ds[f"{colour}PaletteColorLookupTableData"].value
        # OW words in the data set's byte order (pydicom's apply_color_lut assumes little endian)
        dtype = np.uint8 if len(raw) < 2 * n else np.dtype("<u2" if _little_endian(ds) else ">u2")
        tables.append(np.frombuffer(raw, dtype=dtype)[:n])
    rgb = np.stack(tables, -1)[np.clip(indices.astype(np.int64) - first, 0, n - 1)]
    return _luma(rgb, float(2 ** (16 if bits > 8 else 8) - 1))


def _luma(rgb: np.ndarray, peak: float) -> np.ndarray:
    rgb = rgb.astype(np.float32, copy=False)
    grey = rgb[..., 0] * np.float32(LUMA[0] / peak)
    grey += rgb[..., 1] * np.float32(LUMA[1] / peak)
    grey += rgb[..., 2] * np.float32(LUMA[2] / peak)
    return np.clip(grey, 0.0, 1.0, out=grey)


def _frame_item(ds: Any, index: int, keyword: str) -> Any:
    """The first item of functional-group macro `keyword` for frame `index` (enhanced objects)."""
    for groups, i in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        seq = ds.get(groups)
        if seq and len(seq) > i:
            inner = seq[i].get(keyword)
            if inner:
                return inner[0]
    return None


def _modality(ds: Any, arr: np.ndarray, index: int) -> np.ndarray:
    """Stored values -> modality units (HU for CT), float32 (H, W)."""
    if "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        return np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
    source = _frame_item(ds, index, "PixelValueTransformationSequence") or ds
    slope = _first_number(source.get("RescaleSlope"))
    intercept = _first_number(source.get("RescaleIntercept"))
    x = arr.astype(np.float32)
    if slope is not None and slope != 1.0:
        x *= np.float32(slope)
    if intercept:
        x += np.float32(intercept)
    return x


def _voi(ds: Any, x: np.ndarray, index: int) -> np.ndarray:
    """Modality values -> [0, 1]: VOI LUT Sequence, else window, else robust percentiles."""
    lut = ds.get("VOILUTSequence")
    if lut:
        try:
            return _voi_lut(ds, lut[0], x)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            pass  # a malformed table: fall back to the window or the percentiles
    source = _frame_item(ds, index, "FrameVOILUTSequence") or ds
    center = _first_number(source.get("WindowCenter"))
    width = _first_number(source.get("WindowWidth"))
    if center is not None and width is not None and width > 0:
        function = str(source.get("VOILUTFunction") or "LINEAR").strip().upper()
        return window(x, center, width, function)
    return percentile_normalise(x)


def window(x: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM VOI window (PS3.3 C.11.2.1.2) mapped to [0, 1]; x (H, W) in modality units.

    LINEAR: y = ((x - (c - 0.5)) / (w - 1) + 0.5) clipped (w <= 1: a threshold at c - 0.5);
    LINEAR_EXACT: y = (x - c) / w + 0.5 clipped; SIGMOID: y = 1 / (1 + exp(-4 (x - c) / w)).
    """
    x = np.asarray(x, dtype=np.float32)
    if function == "SIGMOID":
        with np.errstate(over="ignore"):  # exp -> inf far below the center: y -> 0, as it should
            y = np.exp(x * np.float32(-4.0 / width) + np.float32(4.0 * center / width))
        y += 1.0
        return np.reciprocal(y, out=y)
    if function == "LINEAR_EXACT":
        offset, scale = center, width
    elif width <= 1.0:
        return (x > center - 0.5).astype(np.float32)
    else:
        offset, scale = center - 0.5, width - 1.0
    y = x - np.float32(offset)
    y *= np.float32(1.0 / scale)
    y += 0.5
    return np.clip(y, 0.0, 1.0, out=y)


def _voi_lut(ds: Any, item: Any, x: np.ndarray) -> np.ndarray:
    """Apply a VOI LUT (PS3.3 C.11.2.1.1); its output range (table min..max) becomes [0, 1]."""
    n, first = int(item.LUTDescriptor[0]) or 65536, int(item.LUTDescriptor[1])
    value = item["LUTData"].value
    if isinstance(value, (bytes, bytearray)):  # OW: raw words in the data set's byte order
        table = np.frombuffer(value, dtype="<u2" if _little_endian(ds) else ">u2")[:n]
    else:
        table = np.atleast_1d(np.asarray(value, dtype=np.float64))[:n]
    table = table.astype(np.float32)
    lo, hi = float(table.min()), float(table.max())
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.float32)
    indices = np.clip(np.rint(x) - first, 0, len(table) - 1).astype(np.intp)
    y = table[indices]
    y -= lo
    y *= np.float32(1.0 / (hi - lo))
    return y


def percentile_normalise(x: np.ndarray) -> np.ndarray:
    """Map the 0.5 and 99.5 percentiles of x (H, W) to 0 and 1, clipped; constant images -> zeros."""
    x = np.asarray(x, dtype=np.float32)
    sample = x
    if x.size > _PERCENTILE_SAMPLE:
        stride = int(np.ceil(np.sqrt(x.size / _PERCENTILE_SAMPLE)))
        sample = x[::stride, ::stride]
    lo, hi = (float(v) for v in np.percentile(sample, (LOW_PERCENTILE, HIGH_PERCENTILE)))
    if hi <= lo:  # e.g. a large uniform background: use the full range instead
        lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.float32)
    y = x - np.float32(lo)
    y *= np.float32(1.0 / (hi - lo))
    return np.clip(y, 0.0, 1.0, out=y)


def _first_number(value: Any) -> float | None:
    """First value of a possibly multi-valued DS/IS element as float; None if absent or junk."""
    if value is None:
        return None
    if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _one_line(exc: BaseException, limit: int = 200, ids: Any = None) -> str:
    """A decoder's or reader's message on one line, without any value it quotes or any of the
    file's identifiers (`_scrub`)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "ITK ERROR:" in text:  # drop ITK's source location and object address
        text = re.sub(r"^\w+\(0x[0-9a-f]+\):\s*", "", text.split("ITK ERROR:")[-1].strip())
    text = _scrub(text, ids)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scrub(text: str, ids: Any = None) -> str:
    """`text` without quoted values ('...', "...", b'...': readers quote the values they cannot
    parse) and without the identifiers of `ids` (a data set or a header dict) wherever they occur."""
    text = _QUOTED.sub(_unless_a_name, text)
    values: set[str] = set()
    for keyword in _IDENTIFYING if ids is not None else ():
        try:
            value = ids.get(keyword) if isinstance(ids, dict) else _raw_text(ids, keyword)
        except Exception:  # noqa: BLE001 - a value pydicom cannot convert: its raw bytes were tried
            continue
        if value:
            value = str(value)
            values.add(value)
            values.update(part for part in re.split(r"[\^\\= ]+", value) if len(part) >= 3)
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= 3:
            text = re.sub(re.escape(value), "...", text, flags=re.IGNORECASE)
    return text


def _unless_a_name(quoted: re.Match[str]) -> str:
    """A quoted DICOM attribute name or keyword stays (it says which element); any other value goes."""
    from pydicom.datadict import DicomDictionary, keyword_dict

    global _NAMES
    if _NAMES is None:
        _NAMES = frozenset(keyword_dict) | frozenset(entry[2] for entry in DicomDictionary.values())
    inner = quoted.group(0).lstrip("b")[1:-1]
    return quoted.group(0) if inner in _NAMES else "'...'"


_NAMES: frozenset[str] | None = None


def _raw_text(ds: Any, keyword: str) -> str | None:
    """The text of element `keyword` as stored (no conversion that could fail), or None."""
    from pydicom.datadict import tag_for_keyword

    elem = ds.get_item(tag_for_keyword(keyword), keep_deferred=True) if keyword in ds else None
    if elem is None:
        return None
    value = elem.value
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \0")
    return str(value) if value is not None else None


# -------------------------------------------------------------------------------------- rasters


def _load_raster(path: Path, frame: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            n_frames = int(getattr(image, "n_frames", 1))
            index = n_frames // 2 if frame is None else frame
            if not 0 <= index < n_frames:
                raise SourceError(f"{path}: frame {frame} out of range (the image has {n_frames} frame(s))")
            if index:
                image.seek(index)
            image.load()
            return _pil_to_grey(image)
    except UnidentifiedImageError as exc:
        raise SourceError(f"{path}: not a DICOM or image file") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise SourceError(f"{path}: cannot decode image ({_one_line(exc)})") from exc


def _pil_to_grey(image: Any) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16"):
        return np.asarray(image).astype(np.float32) * np.float32(1.0 / 65535.0)
    if mode == "I":  # 32-bit integer; Pillow's mode for some 16-bit files
        return np.clip(np.asarray(image).astype(np.float32) * np.float32(1.0 / 65535.0), 0.0, 1.0)
    if mode == "F":
        return percentile_normalise(np.asarray(image))
    if mode in ("L", "LA", "La"):
        return np.asarray(image.getchannel(0)).astype(np.float32) * np.float32(1.0 / 255.0)
    if mode == "1":
        return np.asarray(image).astype(np.float32)
    rgb = image if mode == "RGB" else image.convert("RGB")
    return _luma(np.asarray(rgb), 255.0)
