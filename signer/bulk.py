"""Sign many node keys with one key (and one login): `tka key sign-nodekeys`.

Input: a text file with one `nodekey:<64 hex>` per line; blank lines and lines starting with `#`
are skipped. Output: one serialized direct node-key signature (docs/format.md §3, §7) per input node
key, in input order, one per line, **standard base64 with padding** (the encoding the control
protocol uses for `MarshaledSignature` in JSON) or lower-case hex with `--format hex`.

The NKS is `{SigKind: direct, Pubkey: "np"‖nodekey, KeyID: signer's public key}` plus
`WrappingPubkey` only when a real rotation key is given. Tailscale's CLI sends 32 zero bytes
when there is none; that small-order key lets anyone forge rotation signatures (docs/format.md §10
item 1), so we omit the field instead, and refuse an all-zero rotation key outright.
"""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, TextIO

from signer.backends.base import KeyBackend
from signer.nks_signing import sign_direct_nks_many
from verifier.authority import Authority
from verifier.ed25519 import public_key_class
from verifier.errors import DecodeError, SignerError
from verifier.textforms import (
    format_node_public,
    format_tlpub,
    parse_nl_public,
    parse_node_public,
)

OutputFormat = Literal["base64", "hex"]


def _named(parse: Callable[[str], bytes], text: str, where: str) -> bytes:
    """A text-form parser whose errors say where the text came from."""
    try:
        return parse(text)
    except DecodeError as err:
        raise DecodeError(f"{where}: {err}") from None


def parse_node_key(text: str, where: str = "node key") -> bytes:
    return _named(parse_node_public, text, where)


def parse_tl_public(text: str, where: str = "rotation key") -> bytes:
    return _named(parse_nl_public, text, where)


def read_node_keys(lines: Iterable[str], source: str) -> list[bytes]:
    """Parse an input file; errors name the line."""
    keys: list[bytes] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keys.append(parse_node_key(line, f"{source} line {number}"))
    return keys


_ROTATION_KEY_PROBLEMS = {
    "not_point": "is not an Ed25519 public key (no curve point has this encoding), so no "
                 "rotation could ever verify",
    "small_order": "is a small-order point: anyone could forge rotation signatures with it",
    "mixed_order": "has a small-order component: rotation signatures with it could be forged",
    "noncanonical": "is a non-canonical encoding, which no key generator produces",
}


def check_rotation_key(rotation_public: bytes | None) -> None:
    """Refuse rotation keys that would make the signatures forgeable or unusable: anything but
    the canonical encoding of a prime-order point (what key generation produces). Both
    verification rules accept the others, so the reference would sign with them."""
    if rotation_public is None:
        return
    if len(rotation_public) != 32:
        raise SignerError(f"a rotation key is 32 bytes, got {len(rotation_public)}")
    if rotation_public == bytes(32):
        raise SignerError(
            "refusing an all-zero rotation key: it is a small-order point that would let anyone "
            "forge rotation signatures for these nodes (omit the rotation key instead)"
        )
    problem = _ROTATION_KEY_PROBLEMS.get(public_key_class(rotation_public))
    if problem is not None:
        raise SignerError(f"refusing rotation key {format_tlpub(rotation_public)}: it {problem}")


def sign_node_keys(
    backend: KeyBackend,
    node_keys: Sequence[bytes],
    *,
    rotation_public: bytes | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[bytes]:
    """The serialized, signed direct NKS for each node key, in order, made through the
    backend's batch path (an appliance confirms the whole batch once)."""
    check_rotation_key(rotation_public)
    for count, node_key in enumerate(node_keys, start=1):
        if len(node_key) != 32:
            raise SignerError(f"node key #{count} is {len(node_key)} bytes, expected 32")
    rotation = rotation_public or b""
    return sign_direct_nks_many(
        backend, [(node_key, rotation) for node_key in node_keys], on_progress
    )


def encode_line(blob: bytes, fmt: OutputFormat) -> str:
    return base64.b64encode(blob).decode("ascii") if fmt == "base64" else blob.hex()


def decode_line(line: str, fmt: OutputFormat) -> bytes:
    text = line.strip()
    try:
        return base64.b64decode(text, validate=True) if fmt == "base64" else bytes.fromhex(text)
    except ValueError:
        raise DecodeError(f"not a {fmt} node-key signature line: {text[:24]!r}") from None


def plan(
    node_keys: Sequence[bytes], signer: bytes, rotation: bytes | None, authority: Authority | None
) -> list[str]:
    """What a bulk signing will do, shown once before it starts."""
    first, last = format_node_public(node_keys[0]), format_node_public(node_keys[-1])
    lines = [f"will sign {len(node_keys)} node key(s) with {format_tlpub(signer)}"]
    if authority is not None:
        lines.append(f"the key is trusted by the authority at head {authority.head}")
    else:
        lines.append("the key's trust is NOT checked (--unchecked)")
    lines.append(f"first: {first}")
    if len(node_keys) > 1:
        lines.append(f"last:  {last}")
    if rotation:
        lines.append(f"rotation key for all: {format_tlpub(rotation)}")
    return lines


def progress_line(done: int, total: int, elapsed: float) -> str:
    """`signed 1200/5000 node keys, 850/s, about 4 s left`."""
    text = f"signed {done}/{total} node keys"
    if done and elapsed > 0:
        rate = done / elapsed
        text += f", {rate:,.0f}/s"
        if done < total:
            text += f", about {max(1, round((total - done) / rate))} s left"
        else:
            text += f", {elapsed:.1f} s"
    return text


def terminal_progress(
    total: int, stream: TextIO = sys.stderr, clock: Callable[[], float] = time.monotonic
) -> Callable[[int], None] | None:
    """A progress callback that rewrites one line on `stream` (count, rate, time left), or None
    when `stream` is not a terminal: scripts get no progress noise."""
    if not stream.isatty():
        return None
    start = clock()
    step = max(1, total // 200)

    def report(done: int) -> None:
        if done % step == 0 or done == total:
            end = "\n" if done == total else ""
            stream.write(f"\r{progress_line(done, total, clock() - start)}\x1b[K{end}")
            stream.flush()

    return report
