"""A tiny, deliberately permissive CBOR item model for building test inputs.

It can write what a canonical encoder never would (non-shortest heads, indefinite lengths, tags,
unsorted or duplicate map keys, invalid UTF-8), so the mutation tests can ask both decoders the
same awkward questions. It is test tooling only: it decides nothing about validity.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field


@dataclass
class Item:
    major: int  # 0 uint, 1 nint, 2 bytes, 3 text, 4 array, 5 map, 6 tag, 7 simple/float
    value: int = 0  # uint / nint argument / tag number / simple value
    data: bytes = b""  # bytes and text payloads (raw, possibly invalid UTF-8)
    items: list[Item] = field(default_factory=list)  # array elements or tag content (one)
    pairs: list[tuple[Item, Item]] = field(default_factory=list)  # map entries
    head_width: int | None = None  # force 1/2/4/8-byte argument (None = shortest)
    indefinite: bool = False
    float64: float | None = None  # major 7 encoded as a double


def uint(n: int) -> Item:
    return Item(0, n)


def nint(n: int) -> Item:  # encodes -1 - n
    return Item(1, n)


def bstr(b: bytes) -> Item:
    return Item(2, data=b)


def tstr(s: str | bytes) -> Item:
    return Item(3, data=s.encode() if isinstance(s, str) else s)


def array(xs: list[Item]) -> Item:
    return Item(4, items=xs)


def cmap(pairs: list[tuple[Item, Item]]) -> Item:
    return Item(5, pairs=pairs)


def simple(n: int) -> Item:
    return Item(7, n)


NULL = 22
UNDEFINED = 23


def _head(major: int, arg: int, width: int | None) -> bytes:
    mt = major << 5
    if width is None:
        if arg < 24:
            return bytes([mt | arg])
        width = 1 if arg < 0x100 else 2 if arg < 0x10000 else 4 if arg < 0x100000000 else 8
    if width == 0:
        return bytes([mt | arg])
    code = {1: 24, 2: 25, 4: 26, 8: 27}[width]
    return bytes([mt | code]) + arg.to_bytes(width, "big")


def encode(it: Item) -> bytes:
    m = it.major
    if m in (0, 1):
        return _head(m, it.value, it.head_width)
    if m in (2, 3):
        if it.indefinite:
            half = len(it.data) // 2
            chunks = [it.data[:half], it.data[half:]]
            return (
                bytes([(m << 5) | 31])
                + b"".join(_head(m, len(c), None) + c for c in chunks)
                + b"\xff"
            )
        return _head(m, len(it.data), it.head_width) + it.data
    if m == 4:
        body = b"".join(encode(x) for x in it.items)
        if it.indefinite:
            return bytes([0x9F]) + body + b"\xff"
        return _head(4, len(it.items), it.head_width) + body
    if m == 5:
        body = b"".join(encode(k) + encode(v) for k, v in it.pairs)
        if it.indefinite:
            return bytes([0xBF]) + body + b"\xff"
        return _head(5, len(it.pairs), it.head_width) + body
    if m == 6:
        return _head(6, it.value, it.head_width) + encode(it.items[0])
    if it.float64 is not None:
        return b"\xfb" + struct.pack(">d", it.float64)
    if it.value < 24:
        return bytes([0xE0 | it.value])
    return bytes([0xF8, it.value])


class ParseError(ValueError):
    pass


def parse(data: bytes) -> Item:
    """Parse one definite-length item (our own canonical outputs); trailing bytes are an error."""
    it, pos = _parse(data, 0)
    if pos != len(data):
        raise ParseError("trailing bytes")
    return it


def _arg(data: bytes, pos: int) -> tuple[int, int, int]:
    ib = data[pos]
    major, ai = ib >> 5, ib & 31
    pos += 1
    if ai < 24:
        return major, ai, pos
    if ai > 27:
        raise ParseError("indefinite or reserved")
    w = 1 << (ai - 24)
    return major, int.from_bytes(data[pos : pos + w], "big"), pos + w


def _parse(data: bytes, pos: int) -> tuple[Item, int]:
    major, arg, pos = _arg(data, pos)
    if major in (0, 1):
        return Item(major, arg), pos
    if major in (2, 3):
        return Item(major, data=data[pos : pos + arg]), pos + arg
    if major == 4:
        xs = []
        for _ in range(arg):
            x, pos = _parse(data, pos)
            xs.append(x)
        return Item(4, items=xs), pos
    if major == 5:
        ps = []
        for _ in range(arg):
            k, pos = _parse(data, pos)
            v, pos = _parse(data, pos)
            ps.append((k, v))
        return Item(5, pairs=ps), pos
    if major == 6:
        x, pos = _parse(data, pos)
        return Item(6, arg, items=[x]), pos
    return Item(7, arg), pos


def walk(it: Item, depth: int = 1) -> list[tuple[Item, int]]:
    """Every item in the tree with its nesting depth (containers count as one level)."""
    out = [(it, depth)]
    if it.major == 4:
        for x in it.items:
            out.extend(walk(x, depth + 1))
    elif it.major == 5:
        for k, v in it.pairs:
            out.extend(walk(k, depth + 1))
            out.extend(walk(v, depth + 1))
    elif it.major == 6:
        out.extend(walk(it.items[0], depth))
    return out


def copy_item(it: Item) -> Item:
    return Item(
        it.major,
        it.value,
        it.data,
        [copy_item(x) for x in it.items],
        [(copy_item(k), copy_item(v)) for k, v in it.pairs],
        it.head_width,
        it.indefinite,
        it.float64,
    )


def random_width(rng: random.Random, arg: int) -> int:
    """A head width that can hold arg and is longer than the shortest form."""
    widths = [w for w in (1, 2, 4, 8) if arg < (1 << (8 * w))]
    if arg >= 24:
        shortest = widths[0]
        widths = [w for w in widths if w > shortest] or [8]
    return rng.choice(widths)
