"""Whether a retrieved instance arrived whole: `whole_instance(data)` parses it or raises `Incomplete`.

pydicom reads a file cut short without a word (the last value is simply shorter), so an instance counts only
when:

- its encoding ends exactly where its last data element does: every element's value lies within the bytes,
  every sequence, item and encapsulated pixel data of undefined length ends with its delimiter (walked by
  `_Walker`, nesting at most `MAX_DEPTH` deep), and a deflated dataset's stream ends;
- pydicom parses every element, nested ones included;
- native pixel data hold at least Rows × Columns × Samples per Pixel × Number of Frames × Bits Allocated
  bits, and encapsulated pixel data hold at least one fragment.

Used by both protocols' `retrieve` (DICOMweb: the multipart part; DIMSE: the C-STORE dataset as sent).
"""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from typing import Any

from ..errors import PacsError

MAX_DEPTH = 32
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
IMPLICIT_LE, EXPLICIT_BE, DEFLATED = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"
NATIVE = frozenset({IMPLICIT_LE, "1.2.840.10008.1.2.1", EXPLICIT_BE, DEFLATED})


class Incomplete(PacsError):
    """A retrieved instance is cut short or does not parse (it is not kept; the next run asks again)."""


class _Cut(Exception):
    pass


class _Walker:
    """Checks that one dataset encoding is whole (see the module docstring)."""

    def __init__(self, data: bytes, little: bool, implicit: bool) -> None:
        self.data = data
        self.end = len(data)
        self.little, self.implicit = little, implicit

    def _unpack(self, fmt: str, pos: int, little: bool) -> tuple[Any, ...]:
        layout = ("<" if little else ">") + fmt
        if pos + struct.calcsize(layout) > self.end:
            raise _Cut
        return struct.unpack_from(layout, self.data, pos)

    def dataset(self, pos: int, depth: int, until: int | None, little: bool, implicit: bool) -> int:
        """Walk elements from `pos`; to the end of the data (`until` None) or to the delimiter `until`."""
        while pos < self.end or until is not None:
            group, element = self._unpack("HH", pos, little)
            tag = group << 16 | element
            if tag == until:
                return pos + 8
            if group == 0xFFFE:
                raise Incomplete("the instance is malformed (a delimiter out of place)")
            if implicit:
                (length,) = self._unpack("L", pos + 4, little)
                vr, start = None, pos + 8
            else:
                vr = self.data[pos + 4:pos + 6]
                if vr in LONG_VRS:
                    (length,) = self._unpack("L", pos + 8, little)
                    start = pos + 12
                else:
                    (length,) = self._unpack("H", pos + 6, little)
                    start = pos + 8
            if length == UNDEFINED:
                # an undefined-length UN holds implicit VR little endian items (PS3.5 6.2.2)
                nested = (True, True) if vr == b"UN" else (little, implicit)
                pos = self.items(start, depth + 1, *nested)
            elif start + length > self.end:
                raise _Cut
            else:
                pos = start + length
        return pos

    def items(self, pos: int, depth: int, little: bool, implicit: bool) -> int:
        """Walk the items of a sequence (or the fragments of encapsulated pixel data) to its delimiter."""
        if depth > MAX_DEPTH:
            raise Incomplete(f"the instance nests sequences more than {MAX_DEPTH} deep")
        while True:
            group, element, length = self._unpack("HHL", pos, little)
            tag = group << 16 | element
            if tag == SEQUENCE_END:
                return pos + 8
            if tag != ITEM:
                raise Incomplete("the instance is malformed (a sequence holds something other than items)")
            if length == UNDEFINED:
                pos = self.dataset(pos + 8, depth + 1, ITEM_END, little, implicit)
            elif pos + 8 + length > self.end:
                raise _Cut
            else:
                pos += 8 + length


def _meta(data: bytes) -> tuple[int, str | None]:
    """(where the dataset starts, the Transfer Syntax UID of the file meta information, if any)."""
    pos = 132 if data[128:132] == b"DICM" else 0
    syntax = None
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4:pos + 6]
        if vr in LONG_VRS:
            if pos + 12 > len(data):
                raise _Cut
            length, start = struct.unpack_from("<L", data, pos + 8)[0], pos + 12
        else:
            length, start = struct.unpack_from("<H", data, pos + 6)[0], pos + 8
        if length == UNDEFINED or start + length > len(data):
            raise _Cut
        if element == 0x0010:
            syntax = data[start:start + length].rstrip(b" \0").decode("ascii", "replace")
        pos = start + length
    return pos, syntax


def _check_encoding(data: bytes, max_bytes: int) -> str | None:
    """Walk the whole encoding; returns the transfer syntax. Raises `_Cut` or `Incomplete`."""
    start, syntax = _meta(data)
    body = data
    if syntax == DEFLATED:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            body = inflater.decompress(data[start:], max_bytes + 1)
        except zlib.error:
            raise _Cut from None
        if len(body) > max_bytes:
            raise Incomplete("the instance inflates to more than the size cap")
        if not inflater.eof:
            raise _Cut
        start = 0
    if start >= len(body):
        raise _Cut
    if syntax is None:  # no file meta: implicit VR unless the first element shows a VR
        implicit = not body[start + 4:start + 6].isalpha()
    else:
        implicit = syntax == IMPLICIT_LE
    _Walker(body, syntax != EXPLICIT_BE, implicit).dataset(start, 0, None, syntax != EXPLICIT_BE, implicit)
    return syntax


def _native_bytes(ds: Any) -> int:
    """Bytes the native pixel data of `ds` need (Rows × Columns × samples × frames × bits / 8, as pydicom
    counts them: 1-bit images packed, YBR_FULL_422 subsampled); 0 when the attributes say nothing usable."""
    from pydicom.pixels.utils import get_expected_length

    try:
        return int(get_expected_length(ds, "bytes"))
    except Exception:  # noqa: BLE001 - missing or odd attributes: nothing to compare with
        return 0


def whole_instance(data: bytes, sop_uid: str | None = None, max_bytes: int = 2 ** 31) -> Any:
    """The pydicom Dataset of a DICOM encoding (`data`: preamble or not; without file meta information, as
    archives store some files, the dataset is read as implicit VR little endian unless it shows a VR),
    checked to be whole, and to be the instance `sop_uid` when given; raises `Incomplete`. `max_bytes` caps
    what a deflated dataset may inflate to.

    A cut that falls exactly between two data elements leaves a well-formed encoding: it is caught when the
    SOP Instance UID (an early element) or the pixel data of an Image Pixel module (the last) are missing;
    `has_pixels` says whether an image arrived."""
    import pydicom

    try:
        syntax = _check_encoding(data, max_bytes)
    except (_Cut, struct.error):
        raise Incomplete("the instance arrived cut short") from None
    try:
        ds = pydicom.dcmread(BytesIO(data), force=True)
        for _ in ds.iterall():  # converts every raw element, nested ones included
            pass
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds for bad data
        raise Incomplete(f"the instance does not parse ({type(exc).__name__})") from None
    if sop_uid is not None and str(ds.get("SOPInstanceUID", "")).strip() != sop_uid:
        raise Incomplete("the archive sent another instance, or one cut short before its SOP Instance UID")
    if "Rows" in ds and "Columns" in ds and not has_pixels(ds):
        raise Incomplete("the instance arrived cut short (an image without its pixel data)")
    if "PixelData" in ds:
        pixels = ds.PixelData
        if syntax is None or syntax in NATIVE:
            if len(pixels) < _native_bytes(ds):
                raise Incomplete("the instance's pixel data are shorter than its rows, columns, frames and bits need")
        else:
            from pydicom.encaps import generate_fragments

            try:
                fragments = sum(1 for _ in generate_fragments(pixels))
            except Exception as exc:  # noqa: BLE001
                raise Incomplete("the instance's encapsulated pixel data do not parse "
                                 f"({type(exc).__name__})") from None
            if fragments < 2:  # the basic offset table, then at least one fragment
                raise Incomplete("the instance's encapsulated pixel data hold no fragment")
    return ds


def has_pixels(ds: Any) -> bool:
    """Whether `ds` holds pixel data (integer, float or double float)."""
    return any(name in ds for name in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
