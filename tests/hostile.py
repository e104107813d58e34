"""Hostile DICOM files for the tests (no tests in this module): deflate bombs, elements of absurd
declared length, large files of zeros. Each is small on disk (a bomb's inflated bytes are zeros or
one repeated letter, compressed ~1,000:1) or sparse (`truncate`), and written in well under a second.

Elements are encoded by hand (explicit VR little endian), so a test can declare any length.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydicom.uid import CTImageStorage, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

PATIENT_NAME = "Qwyzzle^Hostile"  # distinctive: a message that contains it leaks an identifier
PATIENT_ID = "HX-93517"
MIB = 1 << 20

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def element(tag: int, vr: str, value: bytes = b"", length: int | None = None) -> bytes:
    """One explicit-VR little-endian element; `length` declares another length than the value's."""
    code = vr.encode()
    if len(value) % 2:
        value += b"\0" if vr in ("UI", "OB") else b" "
    n = len(value) if length is None else length
    group, elem = tag >> 16, tag & 0xFFFF
    if code in _LONG_VRS:
        return struct.pack("<HH2s2xL", group, elem, code, n) + value
    return struct.pack("<HH2sH", group, elem, code, n) + value


def meta(transfer_syntax: str) -> bytes:
    """Preamble, "DICM" and the file meta group of a CT image in `transfer_syntax`."""
    body = (element(0x00020001, "OB", b"\0\1") + element(0x00020002, "UI", CTImageStorage.encode())
            + element(0x00020003, "UI", b"1.2.3.4.5.6") + element(0x00020010, "UI", transfer_syntax.encode()))
    return b"\0" * 128 + b"DICM" + element(0x00020000, "UL", struct.pack("<L", len(body))) + body


def header_elements(rows: int = 4, columns: int = 4) -> dict[int, bytes]:
    """The top-level elements of a small CT image up to (not including) its pixel data, with the
    patient's name and ID (`PATIENT_NAME`, `PATIENT_ID`): tag -> encoded element."""
    us = lambda v: struct.pack("<H", v)  # noqa: E731
    return {tag: element(tag, vr, value) for tag, vr, value in [
        (0x00080016, "UI", CTImageStorage.encode()),
        (0x00080018, "UI", b"1.2.3.4.5.6"),
        (0x00080060, "CS", b"CT"),
        (0x00100010, "PN", PATIENT_NAME.encode()),
        (0x00100020, "LO", PATIENT_ID.encode()),
        (0x00180015, "CS", b"CHEST"),
        (0x00280002, "US", us(1)),
        (0x00280004, "CS", b"MONOCHROME2"),
        (0x00280010, "US", us(rows)),
        (0x00280011, "US", us(columns)),
        (0x00280100, "US", us(8)),
        (0x00280101, "US", us(8)),
        (0x00280102, "US", us(7)),
        (0x00280103, "US", us(0)),
    ]}


def pixel_element(rows: int = 4, columns: int = 4) -> bytes:
    return element(0x7FE00010, "OB", bytes(range(rows * columns)))


def dataset(extra: dict[int, Iterable[Any]], rows: int = 4, columns: int = 4) -> Iterator[Any]:
    """The bytes of a small image's dataset with `extra` elements (tag -> their encoded bytes, in
    parts) in tag order, the pixel data last."""
    elements: dict[int, Iterable[Any]] = {tag: [b] for tag, b in header_elements(rows, columns).items()}
    elements.update(extra)
    for tag in sorted(elements):
        yield from elements[tag]
    yield pixel_element(rows, columns)


def repeated(byte: bytes, n: int) -> Iterator[bytes]:
    """`n` copies of `byte`, in blocks of 1 MiB."""
    block = byte * MIB
    while n > 0:
        yield block[:n]
        n -= MIB


def write_deflated(path: Path, parts: Iterable[bytes]) -> Path:
    """A Deflated Explicit VR Little Endian file whose dataset is the concatenation of `parts`
    (compressed as they come: gigabytes of zeros never sit in memory)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with open(path, "wb") as handle:
        handle.write(meta(DeflatedExplicitVRLittleEndian))
        for part in parts:
            handle.write(deflate.compress(part))
        handle.write(deflate.flush())
    return path


def deflate_bomb(path: Path, inflated: int, pieces: int = 1) -> Path:
    """A 4x4 deflated image behind `inflated` zero bytes (~inflated / 1,000 bytes on disk) in
    `pieces` private OB elements (at most 61,440)."""
    size = inflated // pieces
    private = [element(0x00090010, "LO", b"BOMB")]
    for i in range(pieces):
        private += [element(0x00091000 + i, "OB", length=size), *repeated(b"\0", size)]
    return write_deflated(path, dataset({0x00090010: private}))


def deflated_text_bomb(path: Path, inflated: int) -> Path:
    """A deflated 4x4 image whose Study Description (UT) holds `inflated` letters."""
    description = [element(0x00081030, "UT", length=inflated), *repeated(b"A", inflated)]
    return write_deflated(path, dataset({0x00081030: description}))


def write_plain(path: Path, parts: Iterable[bytes | int]) -> Path:
    """An Explicit VR Little Endian file whose dataset is `parts`; a part that is an int is that
    many zero bytes, left as a hole (sparse)."""
    with open(path, "wb") as handle:
        handle.write(meta(ExplicitVRLittleEndian))
        for part in parts:
            if isinstance(part, int):
                handle.seek(part, 1)
            else:
                handle.write(part)
        handle.truncate(handle.tell())
    return path


def huge_text_value(path: Path, declared: int) -> Path:
    """An image whose Study Description (UT) declares `declared` bytes, sparse zeros: the file holds
    them (the length is not beyond its end)."""
    return write_plain(path, dataset({0x00081030: [element(0x00081030, "UT", length=declared), declared]}))


def image_behind_huge_element(path: Path, hidden: int, rows: int = 4, columns: int = 4) -> Path:
    """A small native image behind a private OB element of `hidden` bytes (sparse zeros)."""
    private = [element(0x00090010, "LO", b"BIG"), element(0x00091001, "OB", length=hidden), hidden]
    return write_plain(path, dataset({0x00090010: private}, rows, columns))


def deflated_pixel_bomb(path: Path, inflated: int) -> Path:
    """A deflated 4x4 image whose Pixel Data element holds `inflated` zero bytes."""
    elements = header_elements()
    pixels = [element(0x7FE00010, "OB", length=inflated), *repeated(b"\0", inflated)]
    return write_deflated(path, [*(elements[t] for t in sorted(elements)), *pixels])


def oversized_pixel_data(path: Path, declared: int) -> Path:
    """A native 4x4 image whose Pixel Data element holds `declared` (sparse zero) bytes."""
    elements = header_elements()
    return write_plain(path, [*(elements[t] for t in sorted(elements)),
                              element(0x7FE00010, "OB", length=declared), declared])


def huge_dimensions(path: Path, rows: int = 65535, columns: int = 65535) -> Path:
    """A native image that declares `rows` x `columns` and holds 16 bytes of pixels."""
    elements = header_elements(rows, columns)
    return write_plain(path, [*(elements[t] for t in sorted(elements)), pixel_element()])


def image_then_zeros(path: Path, size: int) -> Path:
    """A native 4x4 image followed by (sparse) zeros up to `size` bytes."""
    write_plain(path, dataset({}))
    with open(path, "r+b") as handle:
        handle.truncate(size)
    return path


def meta_then_zeros(path: Path, size: int, transfer_syntax: str | None = ExplicitVRLittleEndian) -> Path:
    """A file meta group (None: only the preamble and "DICM") followed by (sparse) zeros up to `size` bytes."""
    with open(path, "wb") as handle:
        handle.write(meta(transfer_syntax) if transfer_syntax else b"\0" * 128 + b"DICM")
        handle.truncate(size)
    return path


def zeros(path: Path, size: int) -> Path:
    """A sparse file of `size` zero bytes."""
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path
