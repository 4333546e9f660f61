"""The CBOR profile of tailnet lock (docs/format.md §2): a CTAP2-canonical encoder and a strict
decoder.

Decoding happens in two steps, like the reference's well-formedness pass followed by typed
decoding:

1. `decode` / `decode_stream` turn bytes into a small generic model (`CValue`) while enforcing
   everything that applies to the *whole* item, including parts a typed decoder later ignores:
   no tags, no indefinite lengths, nesting <= 16 (arrays and maps count; the top-level map is
   depth 1), arrays <= 4096 elements, maps <= 1024 pairs, valid heads, and (one-shot only) no
   trailing bytes. Every length is checked against the remaining input before anything is
   sliced or allocated; recursion is bounded by the nesting limit. Text strings are kept as raw
   bytes (`CText`) because the reference validates UTF-8 only where a text string is actually
   decoded, not inside unknown fields it skips.
2. The `field_*` helpers map generic values onto wire-type fields with the reference's
   leniencies (non-shortest heads, unsorted maps, text keys ignored as unknown, null and
   undefined as "absent", null into integer fields as 0, simple values into integer fields as
   their number, arrays of small integers as byte strings) and strictness (duplicate keys,
   overflow of the field's width, negative into unsigned, wrong major types, UTF-8).

The encoder produces exactly what the reference's CTAP2 mode produces for our types: shortest
heads, definite lengths, map entries sorted bytewise by their encoded key.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import TypeAlias

from verifier.errors import DecodeError
from verifier.fields import Frozen

MAX_NESTING = 16
MAX_ARRAY_ELEMENTS = 4096
MAX_MAP_PAIRS = 1024

_U64 = 1 << 64
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1

SIMPLE_FALSE = 20
SIMPLE_TRUE = 21
SIMPLE_NULL = 22
SIMPLE_UNDEFINED = 23

NULL = b"\xf6"


# --- generic model -----------------------------------------------------------------------------


_set = object.__setattr__


class CText(Frozen):
    """A text string as received; UTF-8 is checked only when it is used (`text()`)."""

    __match_args__ = ("raw",)
    __slots__ = __match_args__
    raw: bytes

    def __init__(self, raw: bytes) -> None:
        _set(self, "raw", raw)

    def text(self, what: str = "text string") -> str:
        try:
            return self.raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(f"{what}: invalid UTF-8 in CBOR text string") from None


class CSimple(Frozen):
    """A major-type-7 simple value (20 false, 21 true, 22 null, 23 undefined, others)."""

    __match_args__ = ("value",)
    __slots__ = __match_args__
    value: int

    def __init__(self, value: int) -> None:
        _set(self, "value", value)


class CFloat(Frozen):
    """A float (major type 7, ai 25/26/27); only ever valid inside ignored fields."""

    __match_args__ = ("bits", "size")
    __slots__ = __match_args__
    bits: int
    size: int

    def __init__(self, bits: int, size: int) -> None:
        _set(self, "bits", bits)
        _set(self, "size", size)


class CMap(Frozen):
    """A map with its entries in received order (duplicates are judged by the typed layer)."""

    __match_args__ = ("items",)
    __slots__ = __match_args__
    items: tuple[tuple[CValue, CValue], ...]

    def __init__(self, items: tuple[tuple[CValue, CValue], ...]) -> None:
        _set(self, "items", items)


# Unsigned and negative integers are Python ints; byte strings are bytes; arrays are tuples.
CValue: TypeAlias = int | bytes | CText | tuple["CValue", ...] | CMap | CSimple | CFloat


def is_nil(value: CValue) -> bool:
    """CBOR null and undefined both mean "absent" to the reference's decoder."""
    return isinstance(value, CSimple) and value.value in (SIMPLE_NULL, SIMPLE_UNDEFINED)


def describe(value: CValue) -> str:
    if isinstance(value, bool):  # pragma: no cover - the model never holds bools
        return "boolean"
    if isinstance(value, int):
        return "unsigned integer" if value >= 0 else "negative integer"
    if isinstance(value, bytes):
        return "byte string"
    if isinstance(value, CText):
        return "text string"
    if isinstance(value, tuple):
        return "array"
    if isinstance(value, CMap):
        return "map"
    if isinstance(value, CFloat):
        return "float"
    if value.value in (SIMPLE_FALSE, SIMPLE_TRUE):
        return "boolean"
    if value.value == SIMPLE_NULL:
        return "null"
    if value.value == SIMPLE_UNDEFINED:
        return "undefined"
    return f"simple value {value.value}"


# --- decoder -----------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _need(self, n: int, what: str) -> None:
        if len(self.data) - self.pos < n:
            raise DecodeError(f"truncated CBOR: {what} needs {n} more bytes at offset {self.pos}")

    def head(self) -> tuple[int, int, int]:
        """Returns (major type, additional information, argument)."""
        self._need(1, "an item head")
        initial = self.data[self.pos]
        self.pos += 1
        major, ai = initial >> 5, initial & 0x1F
        if ai < 24:
            return major, ai, ai
        if ai in (24, 25, 26, 27):
            size = 1 << (ai - 24)
            self._need(size, "an item argument")
            arg = int.from_bytes(self.data[self.pos : self.pos + size], "big")
            self.pos += size
            if major == 7 and ai == 24 and arg < 32:
                raise DecodeError(f"invalid CBOR simple value {arg} in two-byte form")
            return major, ai, arg
        if ai == 31:
            if major in (2, 3, 4, 5):
                raise DecodeError("indefinite-length CBOR items are not allowed")
            if major == 7:
                raise DecodeError("unexpected CBOR break code")
            raise DecodeError(f"invalid CBOR additional information 31 for major type {major}")
        raise DecodeError(f"invalid CBOR additional information {ai} (reserved)")

    def item(self, depth: int) -> CValue:
        start = self.pos
        major, ai, arg = self.head()
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major in (2, 3):
            # Compare with what is left before slicing: a forged length never allocates.
            if arg > len(self.data) - self.pos:
                raise DecodeError(
                    f"truncated CBOR: string at offset {start} claims {arg} bytes, "
                    f"{len(self.data) - self.pos} remain"
                )
            raw = bytes(self.data[self.pos : self.pos + arg])
            self.pos += arg
            return raw if major == 2 else CText(raw)
        if major in (4, 5):
            depth += 1
            if depth > MAX_NESTING:
                raise DecodeError(f"CBOR nesting deeper than {MAX_NESTING} levels")
            if major == 4:
                if arg > MAX_ARRAY_ELEMENTS:
                    raise DecodeError(f"CBOR array of {arg} elements (max {MAX_ARRAY_ELEMENTS})")
                return tuple(self.item(depth) for _ in range(arg))
            if arg > MAX_MAP_PAIRS:
                raise DecodeError(f"CBOR map of {arg} pairs (max {MAX_MAP_PAIRS})")
            pairs = []
            for _ in range(arg):
                key = self.item(depth)
                pairs.append((key, self.item(depth)))
            return CMap(tuple(pairs))
        if major == 6:
            raise DecodeError("CBOR tags are not allowed")
        # major 7
        if ai <= 24:
            return CSimple(arg)
        return CFloat(arg, 1 << (ai - 24))


def decode(data: bytes) -> CValue:
    """Decode exactly one item; trailing bytes are an error (the reference's one-shot path)."""
    buf = bytes(data)
    if not buf:
        raise DecodeError("empty input: expected a CBOR item")
    reader = _Reader(buf)
    value = reader.item(0)
    if reader.pos != len(buf):
        raise DecodeError(
            f"{len(buf) - reader.pos} trailing bytes after the CBOR item at offset {reader.pos}"
        )
    return value


def decode_stream(data: bytes) -> tuple[CValue, int]:
    """Decode the first item and return it with the number of bytes it used; what follows is
    not examined (the reference's streaming decoder, used for storage records)."""
    buf = bytes(data)
    if not buf:
        raise DecodeError("empty input: expected a CBOR item")
    reader = _Reader(buf)
    value = reader.item(0)
    return value, reader.pos


# --- typed mapping helpers ---------------------------------------------------------------------


def struct_fields(value: CValue, fields: Mapping[int, str], what: str) -> dict[int, CValue] | None:
    """Map a CBOR map onto the integer-keyed fields of a struct.

    Returns None for null/undefined (the caller decides: pointer → absent, value → zero).
    Integer keys match field numbers; text keys are always unknown (see the note below). Unknown
    keys are ignored but still must not repeat (text and
    integer unknown keys are distinct; unsigned keys >= 2**63 wrap to negative int64 as in the
    reference). Any other key type is an error.
    """
    if is_nil(value):
        return None
    if not isinstance(value, CMap):
        raise DecodeError(f"{what}: expected a CBOR map, got {describe(value)}")
    found: dict[int, CValue] = {}
    unknown: set[tuple[str, object]] = set()
    for key, val in value.items:
        field: int | None
        ident: tuple[str, object]
        if isinstance(key, int):
            if key >= 0:
                num = key - _U64 if key > _I64_MAX else key
            elif key < _I64_MIN:
                raise DecodeError(f"{what}: map key {key} overflows int64")
            else:
                num = key
            field = num if num in fields else None
            ident = ("int", num)
        elif isinstance(key, CText):
            # Text keys never name a keyasint field in the reference as shipped (tailscale.com
            # v1.104.5, fxamacker/cbor v2.9.3): "1" is an unknown key, ignored (docs/design.md).
            name = key.text(f"{what} map key")
            field = None
            ident = ("text", name)
        else:
            raise DecodeError(f"{what}: map key of type {describe(key)} cannot name a field")
        if field is not None:
            if field in found:
                raise DecodeError(f"{what}: duplicate map key for field {field} ({fields[field]})")
            found[field] = val
        else:
            if ident in unknown:
                raise DecodeError(f"{what}: duplicate map key {ident[1]!r}")
            unknown.add(ident)
    return found


def field_uint(value: CValue | None, bits: int, what: str) -> int:
    """A non-pointer unsigned field: absent/null/undefined → 0."""
    if value is None or is_nil(value):
        return 0
    return _uint(value, bits, what)


def field_opt_uint(value: CValue | None, bits: int, what: str) -> int | None:
    """A pointer-to-unsigned field (AUM Votes): null/undefined → absent."""
    if value is None or is_nil(value):
        return None
    return _uint(value, bits, what)


def _uint(value: CValue, bits: int, what: str) -> int:
    if isinstance(value, int):
        if value < 0:
            raise DecodeError(f"{what}: negative integer {value} for an unsigned field")
        if value >> bits:
            raise DecodeError(f"{what}: {value} overflows a {bits}-bit unsigned field")
        return value
    if isinstance(value, CSimple) and value.value not in (SIMPLE_FALSE, SIMPLE_TRUE):
        if value.value >> bits:
            raise DecodeError(f"{what}: {value.value} overflows a {bits}-bit unsigned field")
        return value.value
    raise DecodeError(f"{what}: expected an unsigned integer, got {describe(value)}")


def field_int64(value: CValue | None, what: str) -> int:
    """A signed 64-bit field (storage record times): absent/null → 0."""
    if value is None or is_nil(value):
        return 0
    if isinstance(value, int):
        if not _I64_MIN <= value <= _I64_MAX:
            raise DecodeError(f"{what}: {value} overflows int64")
        return value
    if isinstance(value, CSimple) and value.value not in (SIMPLE_FALSE, SIMPLE_TRUE):
        return value.value
    raise DecodeError(f"{what}: expected an integer, got {describe(value)}")


def field_bytes(value: CValue | None, what: str) -> bytes | None:
    """A byte-slice field: null/undefined/absent → None; a byte string; or (as the reference
    allows) an array whose elements decode as 8-bit unsigned integers."""
    if value is None or is_nil(value):
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, tuple):
        return bytes(field_uint(e, 8, f"{what}[{i}]") for i, e in enumerate(value))
    raise DecodeError(f"{what}: expected a byte string, got {describe(value)}")


def field_fixed(value: CValue | None, size: int, what: str) -> bytes | None:
    """A pointer to a fixed-size byte array (State LastAUMHash): copied left-aligned,
    zero-padded or truncated; from an array only the first `size` elements are decoded."""
    if value is None or is_nil(value):
        return None
    if isinstance(value, bytes):
        return (value[:size]).ljust(size, b"\x00")
    if isinstance(value, tuple):
        head = value[:size]
        out = bytes(field_uint(e, 8, f"{what}[{i}]") for i, e in enumerate(head))
        return out.ljust(size, b"\x00")
    raise DecodeError(f"{what}: expected a byte string, got {describe(value)}")


def field_text(value: CValue | None, what: str) -> str:
    """A string: null/undefined → "" (the reference leaves the zero value)."""
    if value is None or is_nil(value):
        return ""
    if isinstance(value, CText):
        return value.text(what)
    raise DecodeError(f"{what}: expected a text string, got {describe(value)}")


def field_text_map(value: CValue | None, what: str) -> dict[str, str] | None:
    """A map[string]string: null/undefined → None; duplicate keys (after decoding) → error."""
    if value is None or is_nil(value):
        return None
    if not isinstance(value, CMap):
        raise DecodeError(f"{what}: expected a CBOR map, got {describe(value)}")
    out: dict[str, str] = {}
    for k, v in value.items:
        key = field_text(k, f"{what} key")
        val = field_text(v, f"{what}[{key!r}]")
        if key in out:
            raise DecodeError(f"{what}: duplicate map key {key!r}")
        out[key] = val
    return out


def field_array(value: CValue | None, what: str) -> tuple[CValue, ...] | None:
    """A slice of non-byte elements: null/undefined → None."""
    if value is None or is_nil(value):
        return None
    if isinstance(value, tuple):
        return value
    raise DecodeError(f"{what}: expected a CBOR array, got {describe(value)}")


# --- encoder -----------------------------------------------------------------------------------


def head(major: int, arg: int) -> bytes:
    """Shortest head for a major type and argument."""
    if arg < 0 or arg >= _U64:
        raise ValueError(f"CBOR argument out of range: {arg}")
    top = major << 5
    if arg < 24:
        return bytes((top | arg,))
    if arg < 0x100:
        return bytes((top | 24, arg))
    if arg < 0x10000:
        return bytes((top | 25,)) + struct.pack(">H", arg)
    if arg < 0x100000000:
        return bytes((top | 26,)) + struct.pack(">I", arg)
    return bytes((top | 27,)) + struct.pack(">Q", arg)


def enc_uint(n: int) -> bytes:
    return head(0, n)


def enc_int(n: int) -> bytes:
    return head(0, n) if n >= 0 else head(1, -1 - n)


def enc_bytes(b: bytes) -> bytes:
    return head(2, len(b)) + b


def enc_opt_bytes(b: bytes | None) -> bytes:
    """A non-omitempty byte slice: nil → null, empty → 0x40."""
    return NULL if b is None else enc_bytes(b)


def enc_text(s: str) -> bytes:
    raw = s.encode("utf-8")
    return head(3, len(raw)) + raw


def enc_array(items: Iterable[bytes]) -> bytes:
    encoded = list(items)
    return head(4, len(encoded)) + b"".join(encoded)


def enc_struct(entries: Iterable[tuple[int, bytes]]) -> bytes:
    """A keyasint struct: entries are (field number, encoded value) for emitted fields only."""
    encoded = sorted((enc_uint(k), v) for k, v in entries)
    return head(5, len(encoded)) + b"".join(k + v for k, v in encoded)


def enc_text_map(m: Mapping[str, str]) -> bytes:
    """map[string]string in CTAP2 order: bytewise by encoded key (length first, then bytes)."""
    encoded = sorted((enc_text(k), enc_text(v)) for k, v in m.items())
    return head(5, len(encoded)) + b"".join(k + v for k, v in encoded)


def encode_generic(value: CValue) -> bytes:
    """Canonical encoding of a generic value (tests and tooling; maps sorted bytewise)."""
    if isinstance(value, bool):  # pragma: no cover - not part of the model
        raise TypeError("booleans are CSimple values in this model")
    if isinstance(value, int):
        return enc_int(value)
    if isinstance(value, bytes):
        return enc_bytes(value)
    if isinstance(value, CText):
        return head(3, len(value.raw)) + value.raw
    if isinstance(value, tuple):
        return enc_array(encode_generic(v) for v in value)
    if isinstance(value, CMap):
        pairs = sorted((encode_generic(k), encode_generic(v)) for k, v in value.items)
        return head(5, len(pairs)) + b"".join(k + v for k, v in pairs)
    if isinstance(value, CSimple):
        return bytes((0xE0 | value.value,)) if value.value < 24 else bytes((0xF8, value.value))
    size_ai = {2: 25, 4: 26, 8: 27}[value.size]
    return bytes((0xE0 | size_ai,)) + value.bits.to_bytes(value.size, "big")
