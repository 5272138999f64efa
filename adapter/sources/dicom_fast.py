"""A purpose-built reader of SR Part 10 bytes: the content tree as light dictionaries, decoded lazily.

pydicom builds a full Dataset for every one of the tens of thousands of items in a large SR (the
1,561-measurement radiomics report has 16,000), which costs most of a read. This reader parses only
the element framing, keeps each value as a byte slice, and decodes a value when the walker asks for
it. It covers the common case: explicit or implicit VR little endian, deflated explicit VR, and the
character sets ISO_IR 6/100/192. Anything else, and any value pydicom would warn about, makes it
give up (`NeedsPydicom`) so that the pydicom path reads the file and the Report is identical.
"""

from __future__ import annotations

import re
import struct
import zlib
from functools import cache, lru_cache

from pydicom.datadict import dictionary_VR
from pydicom.valuerep import VALIDATORS

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"

ITEM_END = 0xFFFEE00D
# Item and sequence delimiter tags as their four bytes read as one little-endian number (group in the
# low half): how _item_header reads them.
ITEM_LE, SEQUENCE_END_LE = 0xE000FFFE, 0xE0DDFFFE
UNDEFINED = 0xFFFFFFFF
SHORT_VRS = frozenset(v.encode() for v in "AE AS AT CS DA DS DT FL FD IS LO LT PN SH SL SS ST TM UI UL US".split())
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
# Values the walker may ask for, as text; the ones Specific Character Set governs are TEXT_VRS.
STRING_VRS = {v.encode(): v for v in "AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT".split()}
TEXT_VRS = frozenset({b"SH", b"LO", b"ST", b"LT", b"UC", b"UT", b"PN"})
UNPADDED_VRS = frozenset({b"UI", b"LT", b"ST", b"UT", b"UR"})  # trailing padding only; leading spaces count
SINGLE_VALUED_VRS = frozenset({b"LT", b"ST", b"UT", b"UR"})  # a backslash is text, not a separator
# Values pydicom accepts without a warning, checked without calling its validator (which costs more than
# the rest of a decode): plain decimal numbers and UIDs within their length limits. Sizes and UIDs are
# the values that differ from file to file, so the decode cache does not spare the check. Anything
# else goes through pydicom's validator.
_SURELY_VALID = {
    b"DS": (re.compile(r"[+-]?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?").fullmatch, 16),
    b"UI": (re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*").fullmatch, 64),
}
ENCODINGS = {"": "iso8859", "ISO_IR 6": "iso8859", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}
SPECIFIC_CHARACTER_SET = 0x00080005

_u32 = struct.Struct("<I").unpack_from
_explicit_header = struct.Struct("<HH2sH").unpack_from  # group, element, VR, 16-bit length
# the same with the 32-bit length that follows when the VR is a long one; parse() pads the data with
# four bytes so that this read never runs off the end
_explicit_long_header = struct.Struct("<HH2sHI").unpack_from
_implicit_header = struct.Struct("<HHI").unpack_from  # group, element, 32-bit length
_item_header = struct.Struct("<II").unpack_from  # tag (see ITEM_LE), length


class NeedsPydicom(Exception):
    """The file is outside what this reader covers; read it with pydicom instead."""


class FastDataset(dict):
    """tag -> (VR as bytes, value bytes) for plain elements, tag -> list[FastDataset] for sequences.

    `encoding` is the file's text encoding. `code` memoises the Code this item encodes
    (sr_items.code_of), `head` the value type and concept of this content item (sr_items.head_of):
    cached items are shared between content items and files, so each is worked out once. Both start
    as None."""

    __slots__ = ("encoding", "code", "head")


@cache
def _implicit_vr(tag: int) -> bytes:
    try:
        return dictionary_VR(tag).encode()
    except KeyError:
        return b"UN"


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
    charset, encoding = _character_set(data, pos, explicit)
    parser = _Parser(data + bytes(4), explicit, encoding)
    root, end = parser.dataset(pos, len(data))
    if end != len(data):
        raise NeedsPydicom("trailing bytes")
    if root.get(SPECIFIC_CHARACTER_SET, (None, charset))[1] != charset:
        raise NeedsPydicom("character set out of tag order")
    return root


def _meta(data: bytes, pos: int) -> tuple[dict[int, bytes], int]:
    """File meta group (always explicit VR little endian)."""
    meta: dict[int, bytes] = {}
    while pos + 8 <= len(data):
        group, element, vr, length = _explicit_header(data, pos)
        if group != 0x0002:
            break
        if vr in LONG_VRS:
            if pos + 12 > len(data):
                raise NeedsPydicom("truncated meta")
            length = _u32(data, pos + 8)[0]
            pos += 12
        elif vr in SHORT_VRS:
            pos += 8
        else:
            raise NeedsPydicom("unknown VR in the meta group")
        if pos + length > len(data):
            raise NeedsPydicom("truncated meta")
        meta[(group << 16) | element] = data[pos:pos + length]
        pos += length
    return meta, pos


def _character_set(data: bytes, pos: int, explicit: bool) -> tuple[bytes | None, str]:
    """The raw (0008,0005) value and its encoding, found before parsing so that every item is made
    knowing the encoding; NeedsPydicom for a character set this reader does not decode."""
    while pos + 8 <= len(data):
        if explicit:
            group, element, vr, length = _explicit_header(data, pos)
            if vr in LONG_VRS:
                length = _u32(data, pos + 8)[0] if pos + 12 <= len(data) else UNDEFINED
                pos += 4
            elif vr not in SHORT_VRS:
                raise NeedsPydicom("unknown VR")
        else:
            group, element, length = _implicit_header(data, pos)
        tag = (group << 16) | element
        if tag > SPECIFIC_CHARACTER_SET:
            break
        pos += 8
        if tag == SPECIFIC_CHARACTER_SET:
            value = data[pos:pos + length]
            encoding = ENCODINGS.get(value.decode("ascii", "replace").strip(" \x00"))
            if encoding is None:
                raise NeedsPydicom("character set")
            return value, encoding
        if length == UNDEFINED:
            raise NeedsPydicom("a sequence before the character set")
        pos += length
    return None, ENCODINGS[""]


# Parsed sequences and items keyed by their bytes, per transfer syntax and encoding: code sequences
# repeat hundreds of times in one SR, modifier sequences under each NUM of a radiomics SR repeat, and
# most content items repeat verbatim across the SRs of one writer; a parse depends on nothing but the
# bytes, the VR encoding and the character set.
#   "sequences": a sequence of defined length, by its bytes.
#   "open sequences": a sequence of undefined length, by its bytes up to the first sequence delimiter
#     (its own, or that of a nested sequence), holding its whole bytes and delimiter to compare: its
#     end is known only once parsed.
#   "items": an item of defined length, by its bytes. (An item of undefined length is not looked up.)
_CACHES: dict[tuple[bool, str, str], dict] = {}  # (explicit VR, encoding, kind above) -> bytes -> parse
_CACHED_BYTES = 512
_CACHE_ENTRIES = 10_000  # per kind (about 3 kB each, parse included); a full cache is emptied, then relearnt
_SEQUENCE_END_BYTES = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def clear_caches() -> None:
    """Forget every parsed sequence and item and every decoded value (benchmarks measure a cold start)."""
    _CACHES.clear()
    decode.cache_clear()


def _remember(cache: dict, key: bytes, parsed) -> None:
    if len(cache) >= _CACHE_ENTRIES:
        cache.clear()
    cache[key] = parsed


class _Parser:
    def __init__(self, data: bytes, explicit: bool, encoding: str) -> None:
        self.data = data
        self.encoding = encoding
        self.sequences = _CACHES.setdefault((explicit, encoding, "sequences"), {})
        self.open_sequences = _CACHES.setdefault((explicit, encoding, "open sequences"), {})
        self.items_cache = _CACHES.setdefault((explicit, encoding, "items"), {})
        self.dataset = self.explicit_dataset if explicit else self.implicit_dataset

    def explicit_dataset(self, pos: int, end: int) -> tuple[FastDataset, int]:
        """Elements from pos up to end or up to an item delimiter; returns the position after it."""
        data = self.data
        ds = FastDataset()
        ds.encoding, ds.code, ds.head = self.encoding, None, None
        while pos < end:
            group, element, vr, length, long_length = _explicit_long_header(data, pos)
            if vr in SHORT_VRS:
                pos += 8
            elif vr == b"SQ":
                ds[(group << 16) | element], pos = self.sequence(pos + 12, long_length, end)
                continue
            elif vr in LONG_VRS:
                length = long_length
                pos += 12
            elif group == 0xFFFE and element == 0xE00D:
                return ds, pos + 8
            else:
                raise NeedsPydicom("unknown VR")
            if pos + length > end:  # an undefined length (0xFFFFFFFF) too: only a sequence may have one
                raise NeedsPydicom("truncated value")
            ds[(group << 16) | element] = (vr, data[pos:pos + length])
            pos += length
        return ds, pos

    def implicit_dataset(self, pos: int, end: int) -> tuple[FastDataset, int]:
        data = self.data
        ds = FastDataset()
        ds.encoding, ds.code, ds.head = self.encoding, None, None
        while pos < end:
            group, element, length = _implicit_header(data, pos)
            tag = (group << 16) | element
            if tag == ITEM_END:
                return ds, pos + 8
            pos += 8
            vr = _implicit_vr(tag)
            if vr == b"SQ":
                ds[tag], pos = self.sequence(pos, length, end)
                continue
            if pos + length > end:
                raise NeedsPydicom("truncated value")
            ds[tag] = (vr, data[pos:pos + length])
            pos += length
        return ds, pos

    def sequence(self, pos: int, length: int, end: int) -> tuple[list[FastDataset], int]:
        """A sequence, from the cache when the same bytes were parsed before (see _CACHES)."""
        data = self.data
        if length == UNDEFINED:
            limit = pos + _CACHED_BYTES + 8
            first = data.find(_SEQUENCE_END_BYTES, pos, limit if limit < end else end)
            if first < 0:
                return self.items(pos, end, True)
            prefix = data[pos:first]
            known = self.open_sequences.get(prefix)
            if known is not None:
                whole, items = known  # its bytes and delimiter, which begin with the prefix
                after = pos + len(whole)
                if after == first + 8 or after <= end and data.startswith(whole, pos):  # no nested sequence, or same
                    return items, after
            items, after = self.items(pos, end, True)
            if after - pos <= _CACHED_BYTES:
                _remember(self.open_sequences, prefix, (data[pos:after], items))
            return items, after
        stop = pos + length
        if stop > end:
            raise NeedsPydicom("truncated sequence")
        if length > _CACHED_BYTES:
            return self.items(pos, stop, False)
        key = data[pos:stop]
        items = self.sequences.get(key)
        if items is None:
            items = self.items(pos, stop, False)[0]
            _remember(self.sequences, key, items)
        return items, stop

    def items(self, pos: int, stop: int, undefined: bool) -> tuple[list[FastDataset], int]:
        """The items of a sequence ending at stop (defined length) or at its delimiter (undefined)."""
        data, dataset, cache = self.data, self.dataset, self.items_cache
        items: list[FastDataset] = []
        while pos < stop:
            tag, length = _item_header(data, pos)
            pos += 8
            if tag == ITEM_LE:
                if length == UNDEFINED:
                    item, pos = dataset(pos, stop)
                elif length <= _CACHED_BYTES:
                    item_end = pos + length
                    if item_end > stop:
                        raise NeedsPydicom("truncated item")
                    key = data[pos:item_end]
                    item = cache.get(key)
                    if item is None:
                        item = self.defined_item(pos, item_end, stop)
                        _remember(cache, key, item)
                    pos = item_end
                else:
                    item = self.defined_item(pos, pos + length, stop)
                    pos += length
                items.append(item)
            elif tag == SEQUENCE_END_LE and undefined:
                return items, pos
            else:
                raise NeedsPydicom("not an item")
        if undefined or pos != stop:
            raise NeedsPydicom("sequence without its end")
        return items, pos

    def defined_item(self, pos: int, item_end: int, stop: int) -> FastDataset:
        if item_end > stop:
            raise NeedsPydicom("truncated item")
        item, after = self.dataset(pos, item_end)
        if after != item_end:
            raise NeedsPydicom("item delimiter in a defined-length item")
        return item


@lru_cache(maxsize=8192)
def decode(vr: bytes, raw: bytes, encoding: str):
    """Bytes -> the Python value the walker expects (strings stripped as pydicom strips them).

    Cached: an SR repeats the same few hundred codes, meanings and relationship types many times.
    sr_items.value_of passes values over 1,024 bytes (free text) to the uncached `decode.__wrapped__`,
    so that no file can fill memory through the cache.
    """
    if vr == b"FD":
        if len(raw) != 8:
            raise NeedsPydicom("FD value empty or with several values (pydicom gives None or a list)")
        return struct.unpack("<d", raw)[0]
    name = STRING_VRS.get(vr)
    if name is None:
        raise NeedsPydicom(f"value of VR {vr!r} requested")
    try:
        text = raw.decode(encoding if vr in TEXT_VRS else "iso8859")
    except UnicodeDecodeError as exc:
        raise NeedsPydicom("undecodable text") from exc
    text = text.rstrip("\x00 ") if vr in UNPADDED_VRS else text.strip("\x00 ")
    if vr not in SINGLE_VALUED_VRS and "\\" in text:
        raise NeedsPydicom("several values (pydicom gives a list)")
    surely_valid = _SURELY_VALID.get(vr)
    if surely_valid is not None and len(text) <= surely_valid[1] and surely_valid[0](text):
        return text
    validator = VALIDATORS.get(name)
    if validator is not None and not validator(name, text)[0]:
        raise NeedsPydicom(f"{name} value pydicom would warn about")
    return text
