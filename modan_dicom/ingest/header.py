"""Read the few header values the index needs from one file, fast, and classify the file.

`read_header(path)` never touches pixel data and never force-parses a file that does not look like
DICOM. It recognises DICOM by the "DICM" marker at offset 128, or, for files written without the
128-byte preamble, by a plausible first data element (a known group 0x0002 / 0x0008 tag with a
valid VR and a length that fits the file). Anything else is `not_dicom`.

A small element walker reads the file through 8 kB windows (`os.pread`): only top-level elements
are visited, values that are not wanted are skipped by their length (never read), undefined-length
sequences are stepped over item by item, and reading stops at the pixel data (or, for objects
without an Image Pixel module, once group 0x0028 is passed). It handles explicit / implicit VR,
little / big endian, preamble-less files, and deflated datasets (inflated only as far as the walk
goes). Files it cannot make sense of go through pydicom's `read_partial` with `specific_tags`
(`read_header_pydicom`), which is also the reference the tests compare it against. pydicom
itself costs ~0.5 ms per file in Python overhead; the walker ~0.04-0.05 ms (~0.3 µs per element
stepped over, ~0.5 µs per value read; deflated files ~0.1 ms, inflating).

A file is an `error` ("truncated: ...") when it ends inside an element, before the pixel data of
an Image Pixel module, or inside native or encapsulated pixel data. (A deflated file cut inside
its pixel data is not detected: that would take inflating the pixels.)

Hostile files cost little: a deflated dataset is inflated in a sliding window and at most
`MAX_INFLATED_HEADER` bytes of it before its pixel data; no text value longer than
`MAX_VALUE_BYTES` is read. A file beyond a cap (a deflate bomb, an absurd length), or one that
runs out of memory, is an `error` ("too large: ..."). The pydicom fallback keeps the same caps.

Returned dict (DICOM keywords for raw values; absent values are None)::

    kind             "dicom" | "not_dicom" | "error"
    error            one-line reason for "error", else None
    image            True when the object carries pixel data (an Image Pixel module)
    Modality, BodyPartExamined, StudyDescription, SeriesDescription, ProtocolName, Laterality,
    ImageLaterality, ViewPosition, Manufacturer, ManufacturerModelName, SOPClassUID,
    TransferSyntaxUID, PatientID, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID,
    PatientName, PatientBirthDate  (str; identifiers for pseudonyms and `scrub.py`, never kept)
    Rows, Columns, NumberOfFrames (int)
    AnatomicRegion   tuple of (scheme, code, meaning) from the Anatomic Region Sequence
    StudyMonth       "YYYY-MM" from StudyDate (the day is never kept)
"""

from __future__ import annotations

import os
import re
import struct
import sys
import warnings
import zlib
from typing import Any

from pydicom.datadict import dictionary_has_tag, tag_for_keyword

from . import pagecache
from .sopclass import is_non_image_sop_class

# ---- what we read -------------------------------------------------------------------------------

STRING_KEYWORDS = (
    "Modality", "BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName",
    "Laterality", "ImageLaterality", "ViewPosition", "Manufacturer", "ManufacturerModelName",
    "SOPClassUID", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
    "PatientName", "PatientBirthDate",  # never kept: what `scrub.py` removes from the texts
)
INT_KEYWORDS = ("Rows", "Columns", "NumberOfFrames")
RAW_KEYWORDS = STRING_KEYWORDS + ("TransferSyntaxUID",) + INT_KEYWORDS

_TAG = {kw: int(tag_for_keyword(kw)) for kw in STRING_KEYWORDS + INT_KEYWORDS + (
    "StudyDate", "SpecificCharacterSet", "AnatomicRegionSequence", "CodeValue",
    "CodingSchemeDesignator", "CodeMeaning", "LongCodeValue", "URNCodeValue",
    "TransferSyntaxUID", "MediaStorageSOPClassUID", "DirectoryRecordSequence",
)}
_WANTED: dict[int, str] = {_TAG[kw]: kw for kw in STRING_KEYWORDS + INT_KEYWORDS + ("StudyDate",)}
_CHARSET = _TAG["SpecificCharacterSet"]
_ARS = _TAG["AnatomicRegionSequence"]
_CODE_ITEM = {
    _TAG["CodeValue"]: "code", _TAG["LongCodeValue"]: "code", _TAG["URNCodeValue"]: "code",
    _TAG["CodingSchemeDesignator"]: "scheme", _TAG["CodeMeaning"]: "meaning",
}
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})  # float, double, integer pixel data
_DIRECTORY_RECORDS = _TAG["DirectoryRecordSequence"]
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR

# top-level tag -> (what the walker does with it, keyword); any other tag is stepped over unread
_ACTIONS: dict[int, str] = {tag: "text" for tag in _WANTED}
_ACTIONS.update({_TAG["Rows"]: "us", _TAG["Columns"]: "us", _TAG["NumberOfFrames"]: "int",
                 _TAG["StudyDate"]: "date", _CHARSET: "charset", _ARS: "regions",
                 _DIRECTORY_RECORDS: "directory", **dict.fromkeys(_PIXEL_TAGS, "pixels")})
# keyed by the "swapped" tag: element << 16 | group, one little-endian 32-bit read of the tag bytes
_ATTENTION_SWAPPED = {(t & 0xFFFF) << 16 | t >> 16: (a, _WANTED.get(t, "")) for t, a in _ACTIONS.items()}
_ATTENTION_TAG = {t: (a, _WANTED.get(t, "")) for t, a in _ACTIONS.items()}  # big endian: tags as they are
# the text values the hot loop of `_Walker.dataset` reads itself (little endian, swapped tags)
_TEXT_SWAPPED = {t: keyword for t, (action, keyword) in _ATTENTION_SWAPPED.items() if action == "text"}

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_SEQ_END_LE, _SEQ_END_BE = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0), struct.pack(">HHL", 0xFFFE, 0xE0DD, 0)
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_ALL_VRS = _LONG_VRS | frozenset({
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
})

_VR_HEADER = {vr: 12 if vr in _LONG_VRS else 8 for vr in _ALL_VRS}  # element header bytes, explicit VR
_EXPLICIT_LE_SWAPPED = struct.Struct("<L2sHL")  # swapped tag, VR, short length, long length
_IMPLICIT_LE_SWAPPED = struct.Struct("<LL")  # swapped tag, length
_US_LE, _US_BE = struct.Struct("<H").unpack_from, struct.Struct(">H").unpack_from
_STRUCTS = {e: (struct.Struct(e + "HHL"), struct.Struct(e + "HH2sH"), struct.Struct(e + "L")) for e in "<>"}

_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"  # the whole dataset is deflated (raw DEFLATE after the meta)

_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")  # no text VR holds these (ESC, TAB, LF, FF, CR may occur)
_WINDOW = 8192  # bytes read per pread; most headers fit in one
# Caps on what one file may cost (hostile input): beyond them the file is an "error" row.
MAX_INFLATED_HEADER = 16 << 20  # bytes of a deflated dataset inflated to reach its pixel data
MAX_VALUE_BYTES = 64 << 10  # the longest text value read (LO holds 64 characters, a UID 64 bytes)
_INFLATE_CHUNK = 1 << 20  # bytes inflated per call while stepping over an element
HEADER_WINDOW = _WINDOW  # what read_header reads first (the index prefetches that much on a cold disk)
_FAST_CODECS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO 2022 IR 6": "latin-1",
                "ISO_IR 100": "latin-1", "ISO 2022 IR 100": "latin-1", "ISO_IR 192": "utf-8"}


_CHARSETS: dict[str, str | list[str]] = {}  # Specific Character Set value -> codecs (a cache)


class _Truncated(Exception):
    """The file ends before a data element it announces."""


class _Malformed(Exception):
    """The bytes do not follow the DICOM encoding the walker expects (pydicom gets a try)."""


class _TooLarge(Exception):
    """A value or a deflated header beyond the caps below: the file is an error row (its reason)."""


_EMPTY: dict[str, Any] = {**dict.fromkeys(RAW_KEYWORDS), "kind": None, "error": None, "image": None,
                          "AnatomicRegion": (), "StudyMonth": None}


def empty_header(kind: str, error: str | None = None) -> dict[str, Any]:
    """A header dict with every value None (for not_dicom / error rows and the RadImageNet layout)."""
    header = _EMPTY.copy()
    header["kind"], header["error"] = kind, error
    return header


# ---- recognising DICOM --------------------------------------------------------------------------


def sniff(head: bytes, size: int) -> str | None:
    """Classify the first bytes of a file: "preamble" (DICM at 128), "bare" (a plausible dataset
    or file meta group starting at byte 0), or None (not DICOM; must not be parsed)."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "preamble"
    if len(head) < 8:
        return None
    for endian in "<>":
        group, elem = struct.unpack_from(endian + "HH", head, 0)
        if group not in (0x0002, 0x0008) or (endian == ">" and group == 0x0002):
            continue
        tag = group << 16 | elem
        if elem != 0 and not dictionary_has_tag(tag):
            continue
        vr = head[4:6]
        if vr in _ALL_VRS:  # explicit VR
            if vr in _LONG_VRS:
                if len(head) < 12 or head[6:8] != b"\0\0":
                    continue
                length = struct.unpack_from(endian + "L", head, 8)[0]
            else:
                length = struct.unpack_from(endian + "H", head, 6)[0]
        elif endian == "<":  # implicit VR is always little endian
            length = struct.unpack_from("<L", head, 4)[0]
        else:
            continue
        if length == _UNDEFINED or length <= size - 8:
            return "bare"
    return None


# ---- the fast element walker --------------------------------------------------------------------


class _Bytes:
    """Random access to a file (or a bytes buffer) through a small cached window."""

    __slots__ = ("fd", "size", "buf", "base")

    def __init__(self, fd: int | None, size: int, first: bytes) -> None:
        self.fd, self.size, self.buf, self.base = fd, size, first, 0

    def at(self, offset: int, n: int) -> tuple[bytes, int]:
        """Return (buffer, position) such that buffer[position:position + n] is the file's
        bytes at `offset`; raise `_Truncated` when the file is shorter."""
        rel = offset - self.base
        if rel >= 0 and rel + n <= len(self.buf):
            return self.buf, rel
        if offset + n > self.size or self.fd is None:
            raise _Truncated
        self.buf = os.pread(self.fd, max(n, _WINDOW), offset)
        self.base = offset
        if len(self.buf) < n:
            raise _Truncated
        return self.buf, 0

    def reach(self, offset: int, n: int) -> None:
        """Make the bytes [offset, offset + n) available if the file has them (see `_Inflated`)."""


class _Inflated(_Bytes):
    """The dataset of a deflated file, read and inflated on demand as the walker advances.

    Its `size` is unknown (sys.maxsize) until the DEFLATE stream ends. Only a window is held:
    the bytes before the offset last asked for are dropped (the walker only moves forward; a
    request behind the window is `_Malformed`), and elements stepped over are inflated and thrown
    away. Asking for bytes past `MAX_INFLATED_HEADER` raises `_TooLarge`: a deflate bomb costs
    at most that much inflating. The walker stops at the pixel data, so the pixels are never
    inflated: a deflated file cut inside its pixel data is therefore not detected (a cut inside
    the header is).
    """

    __slots__ = ("inflater", "pending", "next_in", "file_size", "_fd")

    def __init__(self, fd: int, start: int, file_size: int) -> None:
        super().__init__(None, sys.maxsize, b"")
        self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self.pending, self.next_in, self.file_size = b"", start, file_size
        self._fd = fd
        self.reach(0, _WINDOW)

    def _inflate(self, n: int) -> bytes:
        """Up to `n` more bytes of the dataset; b"" at the end of the stream (then `size` is set)."""
        while True:
            if not self.pending and self.next_in < self.file_size:
                self.pending = os.pread(self._fd, _WINDOW, self.next_in)
                self.next_in += len(self.pending)
            try:
                chunk = self.inflater.decompress(self.pending, n)
            except zlib.error as exc:
                raise _Truncated from exc
            self.pending = self.inflater.unconsumed_tail
            if chunk or self.inflater.eof:
                return chunk
            if not self.pending and self.next_in >= self.file_size:
                raise _Truncated  # the compressed data ends before the stream does

    def reach(self, offset: int, n: int) -> None:
        end = offset + n
        buf, base = self.buf, self.base
        have = base + len(buf)
        if end <= have or self.size != sys.maxsize:
            return
        if offset < base:
            raise _Malformed("a deflated dataset read backwards")
        if end > MAX_INFLATED_HEADER:
            raise _TooLarge(f"deflated header larger than {MAX_INFLATED_HEADER >> 20} MiB")
        kept = [buf[offset - base:]] if offset < have else []
        while have < end:
            skipping = have < offset  # stepping over bytes no one asks for: inflated and dropped
            chunk = self._inflate(min(_INFLATE_CHUNK, max(_WINDOW, (offset if skipping else end) - have)))
            if not chunk:
                self.size = have
                break
            if skipping:
                if have + len(chunk) > offset:
                    kept.append(chunk[offset - have:])
            else:
                kept.append(chunk)
            have += len(chunk)
        self.buf = kept[0] if len(kept) == 1 else b"".join(kept)
        self.base = min(offset, have)

    def at(self, offset: int, n: int) -> tuple[bytes, int]:
        rel = offset - self.base
        if rel < 0:
            raise _Malformed("a deflated dataset read backwards")
        if rel + n > len(self.buf):
            self.reach(offset, n)
            rel = offset - self.base
            if rel + n > len(self.buf):
                raise _Truncated
        return self.buf, rel


class _Walker:
    """Walks the top-level data elements of one dataset encoding."""

    __slots__ = ("src", "little", "implicit", "tag_fmt", "short_fmt", "long_fmt", "codecs", "defer", "tail")

    def __init__(self, src: _Bytes, little: bool, implicit: bool, defer: bool = False) -> None:
        self.src, self.little, self.implicit = src, little, implicit
        self.defer = defer  # leave the encapsulated pixel data's end to `tail_is_whole`
        self.tail: tuple[int, bytes] | None = None
        # (group, element, 4-byte length), (group, element, VR, 2-byte length), (4-byte length)
        self.tag_fmt, self.short_fmt, self.long_fmt = _STRUCTS["<" if little else ">"]
        self.codecs: str | list[str] = "latin-1"

    def header(self, pos: int) -> tuple[int, bytes | None, int, int]:
        """(tag, VR or None, value length, value position) of the element at `pos`."""
        buf, p = self.src.at(pos, 8)
        if self.implicit:
            group, elem, length = self.tag_fmt.unpack_from(buf, p)
            return group << 16 | elem, None, length, pos + 8
        group, elem, vr, length = self.short_fmt.unpack_from(buf, p)
        tag = group << 16 | elem
        if group == 0xFFFE:  # items and delimiters have no VR, whatever the transfer syntax
            return tag, None, self.tag_fmt.unpack_from(buf, p)[2], pos + 8
        if vr in _LONG_VRS:
            buf, p = self.src.at(pos + 8, 4)
            return tag, vr, self.long_fmt.unpack_from(buf, p)[0], pos + 12
        if vr not in _ALL_VRS:
            raise _Malformed(f"invalid VR {vr!r} in element ({group:04X},{elem:04X})")
        return tag, vr, length, pos + 8

    def skip_undefined(self, pos: int) -> int:
        """Step over the items of an undefined-length value starting at `pos`; return the
        position after its sequence delimiter."""
        while True:
            tag, _, length, vpos = self.header(pos)
            if tag == _SEQ_END:
                return vpos
            if tag != _ITEM:
                raise _Malformed(f"expected an item, found ({tag >> 16:04X},{tag & 0xFFFF:04X})")
            if length == _UNDEFINED:
                pos = self.skip_item_dataset(vpos)
            else:
                pos = vpos + length
                if pos > self.src.size:
                    raise _Truncated

    def skip_item_dataset(self, pos: int) -> int:
        """Step over an undefined-length item's dataset; return the position after its delimiter."""
        while True:
            tag, _, length, vpos = self.header(pos)
            if tag == _ITEM_END:
                return vpos
            pos = self.skip_undefined(vpos) if length == _UNDEFINED else vpos + length

    def code_items(self, pos: int, end: int | None) -> tuple[list[tuple[str, str, str]], int]:
        """Read the (scheme, code, meaning) triples of a code sequence whose items start at `pos`
        (`end` = None for undefined length). Returns the codes and the position after the value."""
        codes: list[tuple[str, str, str]] = []
        while end is None or pos < end:
            tag, _, length, vpos = self.header(pos)
            if tag == _SEQ_END:
                return codes, vpos
            if tag != _ITEM:
                raise _Malformed("expected an item in the Anatomic Region Sequence")
            item: dict[str, str] = {}
            item_end = None if length == _UNDEFINED else vpos + length
            p = vpos
            while item_end is None or p < item_end:
                etag, _, elen, epos = self.header(p)
                if etag == _ITEM_END:
                    p = epos
                    break
                if elen == _UNDEFINED:
                    p = self.skip_undefined(epos)
                    continue
                field = _CODE_ITEM.get(etag)
                if field is not None and elen:
                    item.setdefault(field, self.text(epos, elen))
                p = epos + elen
            pos = p
            if item.get("code"):
                codes.append((item.get("scheme", ""), item["code"], item.get("meaning", "")))
        return codes, pos

    def text(self, pos: int, length: int) -> str:
        if length > MAX_VALUE_BYTES:
            raise _TooLarge(f"a text value of {length:,} bytes (more than {MAX_VALUE_BYTES >> 10} KiB)")
        src = self.src
        rel = pos - src.base
        if rel >= 0 and rel + length <= len(src.buf):
            raw = src.buf[rel:rel + length].strip(b" \0")
        else:
            buf, p = src.at(pos, length)
            raw = buf[p:p + length].strip(b" \0")
        if isinstance(self.codecs, str):
            return raw.decode(self.codecs, "replace")
        from pydicom.charset import decode_bytes

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return decode_bytes(raw, self.codecs, set())

    def set_charset(self, pos: int, length: int) -> None:
        value = self.text(pos, length) if length else ""
        codecs = _CHARSETS.get(value)
        if codecs is None:
            terms = [t.strip() for t in value.split("\\")]
            if len(terms) == 1 and terms[0] in _FAST_CODECS:
                codecs = _FAST_CODECS[terms[0]]
            else:
                from pydicom.charset import convert_encodings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    codecs = convert_encodings(terms)
            if len(_CHARSETS) < 1000:
                _CHARSETS[value] = codecs
        self.codecs = codecs if isinstance(codecs, str) else list(codecs)

    def value(self, action: str, keyword: str, pos: int, length: int, out: dict[str, Any]) -> None:
        """Read one wanted value of `length` > 0 bytes at `pos` into `out`: action "text", "us",
        "int", "date" or "charset" (see `_ACTIONS`)."""
        if action == "text":
            out[keyword] = self.text(pos, length) or None
        elif action == "us":
            b, p = self.src.at(pos, 2)
            out[keyword] = (_US_LE if self.little else _US_BE)(b, p)[0]
        elif action == "int":
            out[keyword] = _to_int(self.text(pos, length))
        elif action == "date":
            out["StudyMonth"] = study_month(self.text(pos, length))
        elif action == "charset":
            self.set_charset(pos, length)

    def dataset(self, pos: int, out: dict[str, Any]) -> None:
        """Read the wanted top-level elements from `pos` to the pixel data (or the end of the
        Image Pixel module); fill `out`; set out["image"].

        Two levels. The hot loop runs over the elements whose header lies in the current window:
        it steps over unwanted ones (~75 of ~90 a file: one unpack, a set test and an add each)
        and reads the wanted values that lie whole in the window (little endian). Every other
        element (pixel data, the Anatomic Region Sequence, undefined lengths, past the window, a
        group after 0x0028 before any Rows, anything odd) falls to the general step below it,
        which does what the element needs and may move the window. Little-endian tags are
        handled "swapped" (element << 16 | group: one 32-bit read of the tag bytes); big-endian
        ones as they are, each by the general step.
        """
        src = self.src
        little, implicit = self.little, self.implicit
        if little:
            attention, group_mask, group_limit = _ATTENTION_SWAPPED, 0xFFFF, 0x0028
            unpack = (_IMPLICIT_LE_SWAPPED if implicit else _EXPLICIT_LE_SWAPPED).unpack_from
        else:
            attention, group_mask, group_limit = _ATTENTION_TAG, 0xFFFF0000, 0x0028FFFF
        hdr_get, text_get = _VR_HEADER.get, _TEXT_SWAPPED.get
        undefined = _UNDEFINED
        seen_rows = False
        buf, base = src.buf, src.base
        last = len(buf) - 12  # window position of the last element header that fits whole
        r = pos - base
        while True:
            # -- hot loop: step over unwanted elements inside the window, values unread. Wanted
            # values that lie whole in the window are read here too (text inline: ~12 a file).
            codec = self.codecs if isinstance(self.codecs, str) else None
            window = len(buf)
            if implicit:
                while r <= last:
                    key, length = unpack(buf, r)
                    if key in attention:
                        keyword, e = text_get(key), r + 8 + length
                        if keyword is None or codec is None or e > window:
                            break  # also an undefined length
                        out[keyword] = buf[r + 8:e].strip(b" \0").decode(codec, "replace") or None
                        r = e
                        continue
                    if length == undefined or (not seen_rows and key & group_mask > group_limit):
                        break
                    r += 8 + length
            elif little:
                while r <= last:
                    key, vr, length, long_length = unpack(buf, r)
                    if key in attention:
                        keyword, e = text_get(key), r + 8 + length
                        if keyword is None or codec is None or hdr_get(vr) != 8 or e > window:
                            break  # text VRs with a 12-byte header (UC, UT) go to the general step
                        out[keyword] = buf[r + 8:e].strip(b" \0").decode(codec, "replace") or None
                        r = e
                        continue
                    if not seen_rows and key & group_mask > group_limit:
                        break
                    h = hdr_get(vr)
                    if h == 8:
                        r += 8 + length
                    elif h == 12 and long_length != undefined:
                        r += 12 + long_length
                    else:
                        break
            # big endian (retired in 2004) has no hot loop: every element takes the general step
            pos = base + r
            # -- general step: one element the hot loop left
            if little and 0 <= r <= last:
                if implicit:
                    key, length = unpack(buf, r)
                    vpos = pos + 8
                else:
                    key, vr, length, long_length = unpack(buf, r)
                    h = hdr_get(vr)
                    if h == 12:
                        length = long_length
                    elif h is None:
                        raise _Malformed(f"invalid VR {vr!r} at byte {pos}")
                    vpos = pos + h
            else:
                src.reach(pos, 12)
                if pos >= src.size:
                    break  # the end of the dataset
                try:
                    tag, _, length, vpos = self.header(pos)
                except _Malformed:  # an invalid VR: zero bytes (explicit VR) are taken as below
                    zeros, z = src.at(pos, 8)
                    if any(zeros[z:z + 8]):
                        raise
                    break
                if not (tag or length):
                    break  # zero bytes where an element should be: padding, or a file of zeros
                key = (tag & 0xFFFF) << 16 | tag >> 16 if little else tag
                buf, base = src.buf, src.base
            wanted = attention.get(key)
            if wanted is None:
                if not seen_rows and key & group_mask > group_limit:
                    out["image"] = False  # past group 0x0028 with no Image Pixel module
                    return
                pos = vpos + length if length != undefined else self.skip_undefined(vpos)
            else:
                action, keyword = wanted
                if action == "pixels":
                    out["image"] = True
                    self.check_pixel_data(length, vpos)
                    return
                if action == "directory":
                    out["image"] = False  # a DICOMDIR's records are not read
                    return
                if length == undefined:
                    if action == "regions":
                        codes, pos = self.code_items(vpos, None)
                        out["AnatomicRegion"] = tuple(codes)
                    else:
                        pos = self.skip_undefined(vpos)
                else:
                    end = vpos + length
                    if end > src.size:
                        raise _Truncated
                    if not length:
                        pass
                    elif action == "regions":
                        codes, _ = self.code_items(vpos, end)
                        out["AnatomicRegion"] = tuple(codes)
                    else:
                        self.value(action, keyword, vpos, length, out)
                        if action == "us":
                            seen_rows = True
                    pos = end
            buf, base = src.buf, src.base
            last = len(buf) - 12
            r = pos - base
            if r < 0:  # a helper left the window past `pos` (malformed items): re-read there
                last = r - 1
        if pos > src.size:
            raise _Truncated  # the last element runs past the end of the file
        out["image"] = False
        if seen_rows:
            raise _Truncated  # an Image Pixel module but the file ends before its pixel data

    def check_pixel_data(self, length: int, vpos: int) -> None:
        """Raise `_Truncated` when the pixel data runs past the end of the file."""
        src = self.src
        if length != _UNDEFINED:
            if vpos + length > src.size:
                raise _Truncated
            return
        # Encapsulated: a file that ends with the Sequence Delimitation Item is whole (one read);
        # else every fragment must be there.
        if type(src) is _Bytes and src.size - 8 >= vpos:
            end = _SEQ_END_LE if self.little else _SEQ_END_BE
            rel = src.size - 8 - src.base
            if self.defer and (rel < 0 or rel + 8 > len(src.buf)) and src.fd is not None:
                cached = pagecache.read_cached(src.fd, src.size - 8, 8)
                if cached is None:
                    # This read would wait for the disk: ask for the bytes now and let the caller
                    # check them after the other files of its chunk (`tail_is_whole`).
                    pagecache.advise(src.fd, src.size - 8, 8)
                    self.tail = (src.size - 8, end)
                    return
                if cached == end:
                    return
            buf, p = src.at(src.size - 8, 8)
            if buf[p:p + 8] == end:
                return
        self.skip_undefined(vpos)


def _to_int(text: str) -> int | None:
    try:
        return int(text.split("\\")[0].strip())
    except ValueError:
        return None


def study_month(date: str | None) -> str | None:
    """'20190412' (or '2019.04.12', the old form) -> '2019-04'; anything else -> None."""
    if not date:
        return None
    digits = date if date.isdigit() else "".join(ch for ch in date if ch.isdigit())
    if len(digits) < 6:
        return None
    year, month = digits[:4], digits[4:6]
    if not ("1800" <= year <= "2999") or not ("01" <= month <= "12"):
        return None
    return f"{year}-{month}"


def _transfer_syntax(ts: str | None, first: bytes) -> tuple[bool, bool]:
    """(little endian, implicit VR) for a dataset whose first 6 bytes are `first`."""
    if ts == _EXPLICIT_BE:
        return False, False
    explicit = len(first) >= 6 and first[4:6] in _ALL_VRS
    if ts is None and explicit and len(first) >= 2 and struct.unpack_from("<H", first, 0)[0] >= 0x0400:
        return False, False  # no meta, big endian: group 0x0008 read as 0x0800
    # Whatever the transfer syntax says, trust the bytes (some writers label implicit as explicit).
    return True, not explicit


_META_SHORT = struct.Struct("<HH2sH").unpack_from
_META_LONG = struct.Struct("<L").unpack_from
_TS_TAG, _MEDIA_CLASS_TAG = _TAG["TransferSyntaxUID"], _TAG["MediaStorageSOPClassUID"]


def _read_meta(head: bytes, size: int, kind: str) -> tuple[str | None, str | None, int]:
    """(Transfer Syntax UID, Media Storage SOP Class UID, position of the dataset) from the file
    meta information: explicit VR little endian, group 0x0002, within the first window `head`."""
    pos = 132 if kind == "preamble" else 0
    ts: str | None = None
    media_class: str | None = None
    last = len(head) - 12
    hdr_get = _VR_HEADER.get
    while pos + 8 <= size:
        if pos > last:
            raise _Malformed("file meta information larger than the first window")
        group, elem, vr, length = _META_SHORT(head, pos)
        if group != 0x0002:
            break
        h = hdr_get(vr)
        if h == 12:
            length = _META_LONG(head, pos + 8)[0]
        elif h is None:
            raise _Malformed("file meta information is not explicit VR")
        vpos = pos + h
        if length == _UNDEFINED:
            raise _Malformed("undefined length in file meta information")
        if vpos + length > size:
            raise _Truncated
        tag = group << 16 | elem
        if tag == _TS_TAG or tag == _MEDIA_CLASS_TAG:
            if vpos + length > len(head):
                raise _Malformed("file meta information larger than the first window")
            value = head[vpos:vpos + length].strip(b" \0").decode("ascii", "replace")
            if tag == _TS_TAG:
                ts = value
            else:
                media_class = value
        pos = vpos + length
    return ts, media_class, pos


def _parse(fd: int, size: int, head: bytes, kind: str, out: dict[str, Any], defer: bool = False) -> None:
    src = _Bytes(fd, size, head)
    ts, media_class, pos = _read_meta(head, size, kind)
    out["TransferSyntaxUID"] = ts
    if media_class == MEDIA_STORAGE_DIRECTORY:
        out["SOPClassUID"], out["image"] = media_class, False
        return
    if ts == _DEFLATED:
        src, pos = _Inflated(fd, pos, size), 0
        size = src.size if src.size != sys.maxsize else len(src.buf)
    if pos >= size:
        raise _Truncated  # file meta but no dataset
    buf, p = src.at(pos, min(8, size - pos))
    little, implicit = _transfer_syntax(ts, buf[p:p + 8])
    walker = _Walker(src, little, implicit, defer)
    walker.dataset(pos, out)
    if walker.tail is not None:
        out["tail"] = walker.tail
    if out["SOPClassUID"] is None:
        out["SOPClassUID"] = media_class


def read_header(
    path: str | os.PathLike[str], *, defer_tail: bool = False, with_stat: bool = False
) -> dict[str, Any]:
    """Read the header values of one file; see the module docstring for the dict returned.

    Never raises for a bad file: unreadable, truncated or malformed files come back with
    kind "error" and a one-line reason; files that are not DICOM with kind "not_dicom".

    defer_tail: for a disk that may be cold. The last 8 bytes of a file with encapsulated pixel
    data (the Sequence Delimitation Item that shows it is whole) usually lie outside the first
    window. With defer_tail, when they are not in the page cache (a read there would wait for
    the disk), they are only requested (POSIX_FADV_WILLNEED) and the dict gets `tail` =
    (offset, expected bytes); the caller checks it later with `tail_is_whole(path, tail)`, and
    reads the file again without defer_tail when that is False.

    with_stat: the dict also gets the file's `size` (bytes) and `mtime_ns`, from the open file
    (a walk that did not stat the file needs them; 0 when the file cannot be looked at).
    """
    stat: list[os.stat_result] = []
    header = _read_header(path, defer_tail, stat)
    if with_stat:
        if not stat:
            try:
                stat.append(os.stat(path))
            except OSError:
                pass
        header["size"] = stat[0].st_size if stat else 0
        header["mtime_ns"] = stat[0].st_mtime_ns if stat else 0
    return header


def _read_header(path: str | os.PathLike[str], defer_tail: bool, stat: list[os.stat_result]) -> dict[str, Any]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        return empty_header("error", f"cannot open: {exc.strerror or exc}")
    try:
        try:
            stat.append(os.fstat(fd))
            size = stat[0].st_size
            head = os.pread(fd, _WINDOW, 0)
        except OSError as exc:
            return empty_header("error", f"cannot read: {exc.strerror or exc}")
        kind = sniff(head, size)
        if kind is None:
            return empty_header("not_dicom")
        out = empty_header("dicom")
        try:
            _parse(fd, size, head, kind, out, defer_tail)
        except _Truncated:
            return empty_header("error", "truncated: the file ends inside its DICOM data")
        except _TooLarge as exc:
            return empty_header("error", f"too large: {exc}")
        except MemoryError:
            return empty_header("error", "too large: out of memory reading the header")
        except (_Malformed, struct.error, ValueError, UnicodeError, RecursionError):
            return read_header_pydicom(path, kind)
        return out
    finally:
        os.close(fd)


def tail_is_whole(path: str | os.PathLike[str], tail: tuple[int, bytes]) -> bool:
    """Whether the file's bytes at `tail`'s offset are `tail`'s bytes (see `read_header`)."""
    offset, expected = tail
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return os.pread(fd, len(expected), offset) == expected
    except OSError:
        return False
    finally:
        os.close(fd)


# ---- the reference reader (pydicom) -------------------------------------------------------------


def read_header_pydicom(path: str | os.PathLike[str], kind: str | None = None) -> dict[str, Any]:
    """The same dict as `read_header`, through pydicom's `read_partial` (slower, more tolerant).

    Used for anything the fast walker rejects; tests compare the two. A deflated dataset is
    inflated here (at most `MAX_INFLATED_HEADER` bytes: pydicom would inflate it whole), values
    longer than `MAX_VALUE_BYTES` are left unread (pydicom's defer_size) and make the file an error.
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset, read_partial
    from pydicom.tag import Tag

    try:
        with open(path, "rb") as handle:
            head = handle.read(_WINDOW)
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        return empty_header("error", f"cannot open: {exc.strerror or exc}")
    if kind is None:
        kind = sniff(head, size)
        if kind is None:
            return empty_header("not_dicom")
    ts, media_class, start = _meta_or_none(head, size, kind)
    state = {"pixels": False}

    def stop(tag: Any, vr: Any, length: int) -> bool:
        if tag in _PIXEL_TAGS:
            state["pixels"] = True
            return True
        return tag == _DIRECTORY_RECORDS

    specific = [Tag(t) for t in (*_WANTED, _ARS)]
    whole = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if ts == _DEFLATED:  # pydicom would inflate all of it: at most MAX_INFLATED_HEADER here
                data, whole = _inflate_head(path, start, MAX_INFLATED_HEADER)
                ds = read_dataset(DicomBytesIO(data), False, True, stop_when=stop,
                                  defer_size=MAX_VALUE_BYTES, specific_tags=specific)
                ds.file_meta = FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = ts
                if media_class:
                    ds.file_meta.MediaStorageSOPClassUID = media_class
            else:
                with open(path, "rb") as handle:
                    ds = read_partial(handle, stop_when=stop, defer_size=MAX_VALUE_BYTES, force=True,
                                      specific_tags=specific)
    except MemoryError:
        return empty_header("error", "too large: out of memory reading the header")
    except Exception as exc:  # noqa: BLE001 - a forced parse of corrupt bytes raises anything (unknown VR...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, zlib.error) or "truncated" in reason.lower():
            reason = f"truncated: {reason}"
        return empty_header("error", f"unreadable DICOM: {reason}"[:200])
    if not whole and not state["pixels"]:
        return empty_header("error", f"too large: deflated header larger than {MAX_INFLATED_HEADER >> 20} MiB")
    # values longer than MAX_VALUE_BYTES were deferred (not read): never read them (here they
    # are mostly a corrupt element read as implicit VR, its "length" taken from other bytes)
    deferred = next((t for t in _WANTED if t in ds and is_deferred(ds, t)), None)
    if deferred is not None:
        length = ds.get_item(deferred, keep_deferred=True).length
        return empty_header("error", f"unreadable DICOM value: a text value of {length:,} bytes "
                                     f"(more than {MAX_VALUE_BYTES >> 10} KiB)")
    out = empty_header("dicom")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = ds.file_meta
            out["TransferSyntaxUID"] = str(meta.get("TransferSyntaxUID") or "") or None
            for keyword in STRING_KEYWORDS:
                value = ds.get(keyword)
                if value is not None and value != "":
                    out[keyword] = _as_text(value)
            for keyword in ("Rows", "Columns"):
                value = ds.get(keyword)
                out[keyword] = int(value) if value not in (None, "") else None
            frames = ds.get("NumberOfFrames")
            out["NumberOfFrames"] = _to_int(str(frames)) if frames not in (None, "") else None
            out["StudyMonth"] = study_month(str(ds.get("StudyDate") or ""))
            codes = []
            for item in ds.get("AnatomicRegionSequence") or ():
                code = item.get("CodeValue") or item.get("LongCodeValue") or item.get("URNCodeValue")
                if code:
                    codes.append((str(item.get("CodingSchemeDesignator") or ""), str(code),
                                  str(item.get("CodeMeaning") or "")))
            out["AnatomicRegion"] = tuple(codes)
            if out["SOPClassUID"] is None and meta.get("MediaStorageSOPClassUID"):
                out["SOPClassUID"] = str(meta.MediaStorageSOPClassUID)
    except Exception as exc:  # noqa: BLE001 - a value pydicom cannot convert makes the file an error row
        return empty_header("error", f"unreadable DICOM value: {str(exc).splitlines()[0]}"[:200])
    longest = max([len(out[k] or "") for k in STRING_KEYWORDS] + [len(v) for c in out["AnatomicRegion"] for v in c])
    if longest > MAX_VALUE_BYTES:  # e.g. in a sequence item, which pydicom reads whole
        return empty_header("error", f"too large: a text value of {longest:,} characters "
                                     f"(more than {MAX_VALUE_BYTES >> 10} KiB)")
    garbled = next((k for k in STRING_KEYWORDS if out[k] is not None and _CONTROL.search(out[k])), None)
    if garbled is not None:
        # pydicom reads an explicit-VR file with a corrupt VR as implicit VR from there on: the
        # "value" then swallows the following elements (names, IDs) and pixel bytes.
        return empty_header("error", f"unreadable DICOM value: control characters in {garbled}")
    if out["SOPClassUID"] == MEDIA_STORAGE_DIRECTORY:
        out["image"] = False
    elif state["pixels"]:
        out["image"] = True
    else:
        out["image"] = False
        if out["Rows"] is not None:
            return empty_header("error", "truncated: the file ends inside its DICOM data")
    return out


def _meta_or_none(head: bytes, size: int, kind: str) -> tuple[str | None, str | None, int]:
    """`_read_meta`, or (None, None, 0) when the meta group is not as the walker expects it."""
    try:
        return _read_meta(head, size, kind)
    except (_Malformed, _Truncated, struct.error):
        return None, None, 0


def read_deflated(path: str | os.PathLike[str], limit: int) -> tuple[bytearray, bool, str | None] | None:
    """For a Deflated Explicit VR Little Endian file: (the first `limit` bytes at most of its
    inflated dataset, whether they are all of it, its Media Storage SOP Class UID); None for any
    other file. pydicom inflates such a dataset whole, whatever its size: read it this way first.
    Raises OSError, and zlib.error for a corrupt stream."""
    with open(path, "rb") as handle:
        head = handle.read(_WINDOW)
        size = os.fstat(handle.fileno()).st_size
    kind = sniff(head, size)
    ts, media_class, start = _meta_or_none(head, size, kind) if kind else (None, None, 0)
    if ts != _DEFLATED:
        return None
    data, whole = _inflate_head(path, start, limit)
    return data, whole, media_class


def is_deferred(ds: Any, tag: int) -> bool:
    """Whether pydicom left the value of `tag` in `ds` unread (longer than its defer_size)."""
    raw = ds.get_item(tag, keep_deferred=True)
    return (getattr(raw, "is_raw", False) and raw.value is None  # a DataElement: read (or empty)
            and raw.length not in (0, _UNDEFINED))


def _inflate_head(path: str | os.PathLike[str], start: int, limit: int) -> tuple[bytearray, bool]:
    """The first `limit` bytes (at most) of the deflated dataset at byte `start` of the file, and
    whether they are all of it. Raises zlib.error for a corrupt stream."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    with open(path, "rb") as handle:
        handle.seek(start)
        while len(out) < limit and not inflater.eof:
            data = inflater.unconsumed_tail or handle.read(1 << 16)
            if not data:
                break  # the file ends before the stream: pydicom reports the truncation
            out += inflater.decompress(data, limit - len(out))
    return out, inflater.eof or len(out) < limit


def _as_text(value: Any) -> str:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


NON_IMAGE_CODE = "a non-image SOP class or Modality"  # the vocabulary's verdict (file index and census)


def non_image_reason(header: dict[str, Any], non_image_code: bool = False) -> str | None:
    """Why a DICOM header is no image, for the `error` column of a `non_image` row; None for an image.
    non_image_code: the vocabulary says the SOP class or Modality is not an image (`Labels.non_image`)."""
    sop_class = header.get("SOPClassUID")
    if sop_class == MEDIA_STORAGE_DIRECTORY:
        return "a media storage directory (no image)"
    if is_non_image_sop_class(sop_class):
        return "a non-image SOP class"
    if not header.get("image"):
        return "no Pixel Data"
    if non_image_code:
        return NON_IMAGE_CODE
    return None


def is_image(header: dict[str, Any]) -> bool:
    """True when a DICOM header describes an image (pixel data, and an image SOP class): the rule of
    `non_image_reason`."""
    return non_image_reason(header) is None
