"""A purpose-built reader of SR Part 10 bytes: the content tree as light dictionaries, decoded lazily.

pydicom builds a full Dataset for every one of the tens of thousands of items in a large SR (the
1,561-measurement radiomics report has 16,000), which costs most of a read. This reader parses only
the element framing, keeps each value as a byte slice, and decodes a value when the walker asks for
it. It covers the common case: explicit or implicit VR little endian, deflated explicit VR, and the
character sets ISO_IR 6/100/192. Anything else, and any value pydicom would warn about, makes it
give up (`NeedsPydicom`) so that the pydicom path reads the file and the Report is identical.
"""

from __future__ import annotations

import struct
import zlib
from functools import cache, lru_cache

from pydicom.datadict import dictionary_VR
from pydicom.valuerep import VALIDATORS

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"

ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})  # the ones Specific Character Set governs
ENCODINGS = {"": "iso8859", "ISO_IR 6": "iso8859", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}
SPECIFIC_CHARACTER_SET = 0x00080005
_VR_NAMES = {name.encode(): name for name in (
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split())}

_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from
_tag_vr_u16 = struct.Struct("<HH2sH").unpack_from


class NeedsPydicom(Exception):
    """The file is outside what this reader covers; read it with pydicom instead."""


class FastDataset(dict):
    """tag -> (VR, bytes) for plain elements, tag -> list[FastDataset] for sequences.

    `code` memoises the Code this item encodes (sr_items.code_of): items of cached sequences are shared
    between content items and files, so each distinct code is built once."""

    __slots__ = ("encoding", "code")

    def value(self, tag: int):
        entry = self.get(tag)
        if entry is None:
            return None
        if isinstance(entry, list):
            return entry
        return decode(entry[0], entry[1], self.encoding)


@cache
def _implicit_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def parse(data: bytes) -> FastDataset:
    """Part 10 bytes -> FastDataset, or NeedsPydicom."""
    if len(data) < 132 or data[128:132] != b"DICM":
        raise NeedsPydicom("no preamble")
    meta, pos = _meta(data, 132)
    syntax = meta.get(0x00020010, b"").rstrip(b"\x00 ").decode("ascii", "replace")
    if syntax == DEFLATED_LE:
        try:
            data, pos = zlib.decompress(data[pos:], -zlib.MAX_WBITS), 0
        except zlib.error as exc:
            raise NeedsPydicom("bad deflate stream") from exc
        explicit = True
    elif syntax in (EXPLICIT_LE, IMPLICIT_LE):
        explicit = syntax == EXPLICIT_LE
    else:
        raise NeedsPydicom(f"transfer syntax {syntax}")
    parser = _Parser(data, explicit)
    root, end = parser.dataset(pos, len(data), top=True)
    if end != len(data):
        raise NeedsPydicom("trailing bytes")
    if parser.encoding is None:
        parser.set_encoding(ENCODINGS[""])
    return root


def _meta(data: bytes, pos: int) -> tuple[dict[int, bytes], int]:
    """File meta group (always explicit VR little endian)."""
    meta: dict[int, bytes] = {}
    while pos + 8 <= len(data):
        group, element, vr, length = _tag_vr_u16(data, pos)
        if group != 0x0002:
            break
        if vr in LONG_VRS:
            if pos + 12 > len(data):
                raise NeedsPydicom("truncated meta")
            length = _u32(data, pos + 8)[0]
            pos += 12
        else:
            pos += 8
        if pos + length > len(data):
            raise NeedsPydicom("truncated meta")
        meta[(group << 16) | element] = data[pos:pos + length]
        pos += length
    return meta, pos


# Parsed sequences keyed by their bytes: code sequences repeat hundreds of times in one SR and across
# SRs, and a parse depends on nothing but the bytes, the VR encoding and the character set.
_SEQUENCES: dict[tuple[bool, str, bytes], list[FastDataset]] = {}
_CACHED_SEQUENCE_BYTES = 512
_CACHE_ENTRIES = 50_000
_SEQUENCE_END_BYTES = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def clear_caches() -> None:
    """Forget every parsed sequence and decoded value (benchmarks measure a cold start with it)."""
    _SEQUENCES.clear()
    decode.cache_clear()


class _Parser:
    def __init__(self, data: bytes, explicit: bool) -> None:
        self.data = data
        self.explicit = explicit
        self.encoding: str | None = None  # known once (0008,0005) has been read
        self.pending: list[FastDataset] = []  # datasets made before that

    def set_encoding(self, encoding: str) -> None:
        self.encoding = encoding
        for ds in self.pending:
            ds.encoding = encoding
        self.pending = []

    def new_dataset(self) -> FastDataset:
        ds = FastDataset()
        if self.encoding is None:
            self.pending.append(ds)
        else:
            ds.encoding = self.encoding
        return ds

    def dataset(self, pos: int, end: int, top: bool = False) -> tuple[FastDataset, int]:
        data, explicit = self.data, self.explicit
        ds = self.new_dataset()
        while pos < end:
            if pos + 8 > end:
                raise NeedsPydicom("truncated element header")
            if explicit:
                group, element, raw_vr, length = _tag_vr_u16(data, pos)
                tag = (group << 16) | element
                if tag == ITEM_END:
                    return ds, pos + 8
                if raw_vr in LONG_VRS:
                    length = _u32(data, pos + 8)[0]
                    pos += 12
                else:
                    pos += 8
                vr = _VR_NAMES.get(raw_vr) or raw_vr.decode("ascii", "replace")
            else:
                group, element = _u16(data, pos)[0], _u16(data, pos + 2)[0]
                tag = (group << 16) | element
                if tag == ITEM_END:
                    return ds, pos + 8
                length = _u32(data, pos + 4)[0]
                pos += 8
                vr = _implicit_vr(tag)
            if top and self.encoding is None and tag > SPECIFIC_CHARACTER_SET:
                self.set_encoding(ENCODINGS[""])  # elements are in tag order: there is no (0008,0005)
            if vr == "SQ":
                ds[tag], pos = self.sequence(pos, length, end)
                continue
            if length == UNDEFINED:
                raise NeedsPydicom("undefined length outside a sequence")
            if pos + length > end:
                raise NeedsPydicom("truncated value")
            if group != 0x0002 or not top:
                ds[tag] = (vr, data[pos:pos + length])
            if top and tag == SPECIFIC_CHARACTER_SET:
                name = data[pos:pos + length].decode("ascii", "replace").strip(" \x00")
                if name not in ENCODINGS:
                    raise NeedsPydicom(f"character set {name}")
                self.set_encoding(ENCODINGS[name])
            pos += length
        return ds, pos

    def sequence(self, pos: int, length: int, end: int) -> tuple[list[FastDataset], int]:
        """A sequence, from the cache when the same bytes were parsed before (see _SEQUENCES)."""
        key = self.sequence_bytes(pos, length, end)
        if key is None:
            return self.parse_sequence(pos, length, end)
        cache_key = (self.explicit, self.encoding, key)
        items = _SEQUENCES.get(cache_key)
        after = pos + len(key) + (8 if length == UNDEFINED else 0)
        if items is None:
            items, stop = self.parse_sequence(pos, length, end)
            if stop != after:  # the delimiter found was a nested one: the bytes are not this sequence
                return items, stop
            if len(_SEQUENCES) >= _CACHE_ENTRIES:
                _SEQUENCES.clear()
            _SEQUENCES[cache_key] = items
        return items, after

    def sequence_bytes(self, pos: int, length: int, end: int) -> bytes | None:
        if self.encoding is None:
            return None
        if length != UNDEFINED:
            return self.data[pos:pos + length] if length <= _CACHED_SEQUENCE_BYTES and pos + length <= end else None
        stop = self.data.find(_SEQUENCE_END_BYTES, pos, min(end, pos + _CACHED_SEQUENCE_BYTES + 8))
        return self.data[pos:stop] if stop >= 0 else None

    def parse_sequence(self, pos: int, length: int, end: int) -> tuple[list[FastDataset], int]:
        data = self.data
        stop = end if length == UNDEFINED else pos + length
        if stop > end:
            raise NeedsPydicom("truncated sequence")
        items: list[FastDataset] = []
        while pos < stop:
            if pos + 8 > stop:
                raise NeedsPydicom("truncated item")
            tag = (_u16(data, pos)[0] << 16) | _u16(data, pos + 2)[0]
            item_length = _u32(data, pos + 4)[0]
            pos += 8
            if tag == SEQUENCE_END:
                if length != UNDEFINED:
                    raise NeedsPydicom("delimiter in a defined-length sequence")
                return items, pos
            if tag != ITEM:
                raise NeedsPydicom("not an item")
            if item_length == UNDEFINED:
                item, pos = self.dataset(pos, stop)
            else:
                if pos + item_length > stop:
                    raise NeedsPydicom("truncated item")
                item, after = self.dataset(pos, pos + item_length)
                pos = pos + item_length
            items.append(item)
        if length == UNDEFINED:
            raise NeedsPydicom("sequence without delimiter")
        return items, pos


@lru_cache(maxsize=8192)
def decode(vr: str, raw: bytes, encoding: str):
    """Bytes -> the Python value the walker expects (strings stripped as pydicom strips them).

    Cached: an SR repeats the same few hundred codes, meanings and relationship types many times.
    """
    if vr == "FD":
        if len(raw) % 8:
            raise NeedsPydicom("bad FD length")
        values = struct.unpack(f"<{len(raw) // 8}d", raw)
        return values[0] if len(values) == 1 else list(values)
    if vr in ("US", "UL", "SS", "SL", "FL", "OB", "OW", "UN", "OF", "OD", "OL", "OV", "SV", "UV", "AT"):
        raise NeedsPydicom(f"value of VR {vr} requested")
    try:
        text = raw.decode(encoding if vr in TEXT_VRS else "iso8859")
    except UnicodeDecodeError as exc:
        raise NeedsPydicom("undecodable text") from exc
    if vr == "UI":
        text = text.rstrip("\x00 ")
    elif vr in ("LT", "ST", "UT", "UR"):
        text = text.rstrip("\x00 ")
    else:
        text = text.strip("\x00 ")
    validator = VALIDATORS.get(vr)
    if validator is not None:
        parts = [text] if vr in ("LT", "ST", "UT", "UR") else text.split("\\")
        for part in parts:
            if not validator(vr, part)[0]:
                raise NeedsPydicom(f"{vr} value pydicom would warn about")
    return text
