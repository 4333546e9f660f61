"""A small, slow, obviously-written pure-Python edwards25519 model for building test cases.

It builds inputs (torsion points, non-canonical encodings, mixed-order keys, signatures with
chosen scalars); verdicts come from the independent oracles (ed25519_zebra, cryptography) and
from facts stated in the notes, never from this model alone.
"""

from __future__ import annotations

import hashlib
import os

from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, -1, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]  # extended (X, Y, Z, T)
IDENTITY: Point = (0, 1, 1, 0)


def add(p: Point, q: Point) -> Point:
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * D * t1 * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def mul(k: int, p: Point) -> Point:
    acc = IDENTITY
    while k > 0:
        if k & 1:
            acc = add(acc, p)
        p = add(p, p)
        k >>= 1
    return acc


def neg(p: Point) -> Point:
    x, y, z, t = p
    return (-x % P, y, z, -t % P)


def equal(p: Point, q: Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def encode(p: Point) -> bytes:
    x, y, z, _ = p
    zi = pow(z, -1, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def decode_lenient(s: bytes) -> Point | None:
    """ZIP-215 decoding: y mod p, x = -0 allowed."""
    v = int.from_bytes(s, "little")
    sign, y = v >> 255, (v & (2**255 - 1)) % P
    u, w = (y * y - 1) % P, (D * y * y + 1) % P
    x2 = u * pow(w, -1, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = -x % P
    return (x, y, 1, x * y % P)


BASE = decode_lenient(bytes.fromhex("58" + "66" * 31))
assert BASE is not None


def _order_eight_point() -> Point:
    """[L]Q for a random curve point Q lands in the torsion subgroup; keep one of order 8."""
    while True:
        q = decode_lenient(os.urandom(32))
        if q is None:
            continue
        t = mul(L, q)
        if not equal(mul(4, t), IDENTITY):
            return t


def torsion_points() -> list[Point]:
    t8 = _order_eight_point()
    return [mul(i, t8) for i in range(8)]


def low_order_encodings() -> list[bytes]:
    """The 14 encodings of small-order points: 8 canonical, 6 non-canonical.

    Non-canonical ones exist only where the encoding has room for them: x = 0 with the sign
    bit set (y = 1 and y = -1), and y + p < 2^255 for y in {0, 1} (both signs).
    """
    canonical = sorted({encode(t) for t in torsion_points()})
    assert len(canonical) == 8
    sign = 1 << 255
    noncanonical = [
        (1 | sign).to_bytes(32, "little"),
        ((P - 1) | sign).to_bytes(32, "little"),
        P.to_bytes(32, "little"),
        (P | sign).to_bytes(32, "little"),
        (P + 1).to_bytes(32, "little"),
        ((P + 1) | sign).to_bytes(32, "little"),
    ]
    for enc in noncanonical:
        pt = decode_lenient(enc)
        assert pt is not None and equal(mul(8, pt), IDENTITY)
    return canonical + noncanonical


def zip215_grid() -> list[tuple[bytes, bytes, bytes]]:
    """The 196-case ZIP-215 grid: every low-order A x every low-order R, S = 0, M = b"Zcash"."""
    encs = low_order_encodings()
    return [(a, b"Zcash", r + bytes(32)) for a in encs for r in encs]


def base_mul(k: int) -> Point:
    """[k]B via libsodium (fast), decoded back into the model."""
    pt = decode_lenient(crypto_scalarmult_ed25519_base_noclamp((k % L).to_bytes(32, "little")))
    assert pt is not None
    return pt


def challenge(r_bytes: bytes, a_bytes: bytes, msg: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r_bytes + a_bytes + msg).digest(), "little") % L


def sign_raw(a: int, a_bytes: bytes, msg: bytes, r_point: Point, r: int) -> bytes:
    """Signature with nonce point r_point (whose B-part is [r]B) for secret scalar a:
    S = r + k a mod L. Lets tests add torsion to A or R and pick non-canonical encodings."""
    r_bytes = encode(r_point)
    s = (r + challenge(r_bytes, a_bytes, msg) * a) % L
    return r_bytes + s.to_bytes(32, "little")
