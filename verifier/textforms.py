"""Text forms of keys, hashes and secrets (docs/format.md §1).

Every parser raises `DecodeError` with one line naming the form it expected. Formatting is
lower-case hex unless the spec says otherwise (disablement secrets and recovery blobs are
upper-case). The base32 hash parser reproduces the reference's lenient decoder exactly,
because hashes typed by users or read from file names must be accepted or refused the same way.
"""

from __future__ import annotations

import base64
import binascii

from verifier.errors import DecodeError

NL_PUBLIC_PREFIX = "nlpub:"
NL_PUBLIC_CLI_PREFIX = "tlpub:"
NL_PRIVATE_PREFIX = "nlpriv:"
NODE_PUBLIC_PREFIX = "nodekey:"
NODE_PRIVATE_PREFIX = "privkey:"
NODE_PUBLIC_BINARY_PREFIX = b"np"
DISABLEMENT_SECRET_PREFIX = "disablement-secret:"  # noqa: S105 - a text-form prefix
DISABLEMENT_VALUE_PREFIX = "disablement:"

ED25519_PUBLIC_LEN = 32
ED25519_PRIVATE_LEN = 64
NODE_KEY_LEN = 32
NODE_KEY_BINARY_LEN = len(NODE_PUBLIC_BINARY_PREFIX) + NODE_KEY_LEN
HASH_LEN = 32
HASH_TEXT_LEN = 52

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_B32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_VALUE = {c: i for i, c in enumerate(_B32_ALPHABET)}


# --- hex keys ----------------------------------------------------------------------------------


def _parse_prefixed_hex(text: str, prefix: str, length: int, form: str) -> bytes:
    """Prefix, then exactly 2*length hex digits of either case (the reference's rule)."""
    if not isinstance(text, str):
        raise DecodeError(f"expected {form} as text, got {type(text).__name__}")
    if not text.startswith(prefix):
        raise DecodeError(f"expected {form} ({prefix}<{2 * length} hex digits>)")
    body = text[len(prefix) :]
    if len(body) != 2 * length:
        raise DecodeError(
            f"expected {form} ({prefix}<{2 * length} hex digits>): "
            f"got {len(body)} digits after the prefix"
        )
    if not all(c in _HEX_DIGITS for c in body):
        raise DecodeError(f"expected {form} ({prefix}<{2 * length} hex digits>): invalid hex")
    return bytes.fromhex(body)


def parse_nl_public(text: str) -> bytes:
    """`nlpub:<64 hex>` or `tlpub:<64 hex>` → the 32-byte Ed25519 public key."""
    if isinstance(text, str) and text.startswith(NL_PUBLIC_PREFIX):
        return _parse_prefixed_hex(text, NL_PUBLIC_PREFIX, ED25519_PUBLIC_LEN, "a tailnet-lock key")
    return _parse_prefixed_hex(text, NL_PUBLIC_CLI_PREFIX, ED25519_PUBLIC_LEN, "a tailnet-lock key")


def format_tlpub(public: bytes) -> str:
    """CLI form (`tlpub:`), also used for KeyIDs of any length."""
    return NL_PUBLIC_CLI_PREFIX + bytes(public).hex()


def format_nlpub(public: bytes) -> str:
    """Marshalled (JSON/prefs) form `nlpub:`."""
    return NL_PUBLIC_PREFIX + bytes(public).hex()


def parse_nl_private(text: str) -> bytes:
    """`nlpriv:<128 hex>` → 64 bytes (seed ‖ public)."""
    return _parse_prefixed_hex(
        text, NL_PRIVATE_PREFIX, ED25519_PRIVATE_LEN, "a tailnet-lock private key"
    )


def format_nl_private(private: bytes) -> str:
    if len(private) != ED25519_PRIVATE_LEN:
        raise DecodeError(f"a tailnet-lock private key is 64 bytes, got {len(private)}")
    return NL_PRIVATE_PREFIX + bytes(private).hex()


def parse_node_public(text: str) -> bytes:
    """`nodekey:<64 hex>` → the 32-byte WireGuard public key."""
    return _parse_prefixed_hex(text, NODE_PUBLIC_PREFIX, NODE_KEY_LEN, "a node key")


def format_node_public(public: bytes) -> str:
    if len(public) != NODE_KEY_LEN:
        raise DecodeError(f"a node key is 32 bytes, got {len(public)}")
    return NODE_PUBLIC_PREFIX + bytes(public).hex()


def parse_node_private(text: str) -> bytes:
    return _parse_prefixed_hex(text, NODE_PRIVATE_PREFIX, NODE_KEY_LEN, "a node private key")


def format_node_private(private: bytes) -> str:
    if len(private) != NODE_KEY_LEN:
        raise DecodeError(f"a node private key is 32 bytes, got {len(private)}")
    return NODE_PRIVATE_PREFIX + bytes(private).hex()


# --- binary node key (inside NKS) ----------------------------------------------------------------


def node_key_binary(public: bytes) -> bytes:
    """32-byte node key → the 34-byte `np`‖key form carried in NKS `Pubkey`."""
    if len(public) != NODE_KEY_LEN:
        raise DecodeError(f"a node key is 32 bytes, got {len(public)}")
    return NODE_PUBLIC_BINARY_PREFIX + bytes(public)


def parse_node_key_binary(data: bytes) -> bytes:
    """34-byte `np`‖key → 32-byte node key. Messages follow the reference's wording."""
    if not bytes(data).startswith(NODE_PUBLIC_BINARY_PREFIX):
        raise DecodeError("missing/incorrect type prefix np")
    if len(data) != NODE_KEY_BINARY_LEN:
        raise DecodeError(
            f"incorrect len for NodePublic ({len(data)} != {NODE_KEY_BINARY_LEN})"
        )
    return bytes(data[len(NODE_PUBLIC_BINARY_PREFIX) :])


def node_key_short(public: bytes) -> str:
    """Debug form: `[` + first 5 chars of std base64 + `]`; the zero key renders as ``."""
    if len(public) != NODE_KEY_LEN:
        raise DecodeError(f"a node key is 32 bytes, got {len(public)}")
    if public == bytes(NODE_KEY_LEN):
        return ""
    return "[" + base64.b64encode(bytes(public[:4])).decode("ascii")[:5] + "]"


# --- AUM hashes (base32) -----------------------------------------------------------------------


def format_aum_hash(digest: bytes) -> str:
    """Upper-case RFC 4648 base32 without padding (52 characters for 32 bytes)."""
    return base64.b32encode(bytes(digest)).decode("ascii").rstrip("=")


def _b32_decode_lenient(src: bytes, out_len: int) -> bytes:
    """Decode unpadded base32 the way Go's `Encoding.Decode` with NoPadding does.

    `\\r` and `\\n` are dropped first; the input is then read in groups of 8 symbols. A final
    partial group of 2, 4, 5 or 7 symbols yields 1, 2, 3 or 4 bytes and the unused low bits are
    not checked; a final group of 1, 3 or 6 symbols silently yields nothing. The byte 0xFF is
    Go's "no padding" marker and is treated as padding at a group position >= 2 within the last
    8 bytes. Bytes not written keep their zero value (the reference decodes into a zeroed array).
    """
    data = bytes(b for b in src if b not in (0x0D, 0x0A))
    out = bytearray(out_len)
    produced = 0
    pos = 0
    while pos < len(data):
        group: list[int] = []
        ended = False
        while len(group) < 8:
            if pos >= len(data):
                ended = True
                break
            c = data[pos]
            pos += 1
            remaining = len(data) - pos
            if c == 0xFF and len(group) >= 2 and remaining < 8:
                # Go treats byte(NoPadding) as a pad character; padding must then run to the end
                # of the group, and 1/3/6 symbols before it are invalid.
                if remaining + len(group) < 7:
                    raise DecodeError("invalid base32 AUM hash: bad padding")
                for k in range(7 - len(group)):
                    if remaining > k and data[pos + k] != 0xFF:
                        raise DecodeError("invalid base32 AUM hash: bad padding")
                if len(group) in (1, 3, 6):
                    raise DecodeError("invalid base32 AUM hash: bad padding")
                ended = True
                break
            value = _B32_VALUE.get(chr(c)) if c < 0x80 else None
            if value is None:
                raise DecodeError(
                    f"invalid base32 AUM hash: illegal character at offset {pos - 1} "
                    "(expected A-Z or 2-7)"
                )
            group.append(value)
        n = len(group)
        if n in (1, 3, 6):
            chunk = b""
            take = 0
        else:
            take = {0: 0, 2: 1, 4: 2, 5: 3, 7: 4, 8: 5}[n]
            acc = 0
            for v in group:
                acc = (acc << 5) | v
            acc <<= 5 * (8 - n)
            chunk = acc.to_bytes(5, "big")[:take]
        if produced + take > out_len:
            raise DecodeError("invalid base32 AUM hash: too long")
        out[produced : produced + take] = chunk
        produced += 5 if take else 0
        if ended:
            break
    return bytes(out)


def parse_aum_hash(text: str | bytes) -> bytes:
    """Parse a 52-character base32 AUM hash with the reference's exact leniency (docs/format.md
    §1)."""
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    # The length rule applies to the raw text, newlines included (len*5/8 must be 32).
    if len(raw) * 5 // 8 != HASH_LEN:
        raise DecodeError(
            f"expected an AUM hash (52 base32 characters A-Z 2-7), got {len(raw)} characters"
        )
    return _b32_decode_lenient(raw, HASH_LEN)


# --- disablement -------------------------------------------------------------------------------


def format_disablement_secret(secret: bytes) -> str:
    """Printed once at init: `disablement-secret:` + UPPER-case hex."""
    return DISABLEMENT_SECRET_PREFIX + bytes(secret).hex().upper()


def format_disablement_value(value: bytes) -> str:
    """`disablement:` + lower-case hex (output of `lock disablement-kdf`)."""
    return DISABLEMENT_VALUE_PREFIX + bytes(value).hex()


def _hex_body(body: str, form: str) -> bytes:
    if len(body) % 2 or not all(c in _HEX_DIGITS for c in body):
        raise DecodeError(f"expected {form}: the part after the prefix is not valid hex")
    return bytes.fromhex(body)


def parse_disablement_secret(text: str) -> bytes:
    """Argument of `lock disable`: `disablement-secret:<hex>` or `disablement:<hex>`."""
    for prefix in (DISABLEMENT_SECRET_PREFIX, DISABLEMENT_VALUE_PREFIX):
        if text.startswith(prefix):
            return _hex_body(text[len(prefix) :], "a disablement secret (disablement-secret:<hex>)")
    raise DecodeError("expected a disablement secret (disablement-secret:<hex>)")


def parse_disablement_value_arg(text: str) -> bytes:
    """`lock init` extra value: `disablement:<hex>` or (quirk) `disablement-secret:<hex>`,
    both used verbatim as a disablement value (no KDF)."""
    for prefix in (DISABLEMENT_VALUE_PREFIX, DISABLEMENT_SECRET_PREFIX):
        if text.startswith(prefix):
            return _hex_body(text[len(prefix) :], "a disablement value (disablement:<hex>)")
    raise DecodeError("expected a disablement value (disablement:<hex>)")


def parse_bare_hex(text: str, what: str) -> bytes:
    """Bare hex of either case (e.g. `lock disablement-kdf <hex>`, recovery blobs)."""
    try:
        return binascii.unhexlify(text.strip().encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise DecodeError(f"expected {what} as hex digits") from None


# --- --fork-from -------------------------------------------------------------------------------


def parse_fork_from(text: str) -> bytes:
    """`--fork-from`: 64 hex characters (either case) or a 52-character base32 AUM hash."""
    if len(text) == 2 * HASH_LEN:
        if not all(c in _HEX_DIGITS for c in text):
            raise DecodeError("invalid fork-from hash: expected 64 hex or 52 base32 characters")
        return bytes.fromhex(text)
    try:
        return parse_aum_hash(text)
    except DecodeError as err:
        raise DecodeError(f"invalid fork-from hash: {err}") from None


# --- base64 fields in JSON documents ------------------------------------------------------------


def decode_base64_field(value: object, what: str) -> bytes:
    """Strict standard base64 (as Go's encoding/json writes []byte) from a JSON value."""
    if not isinstance(value, str):
        raise DecodeError(f"{what}: expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"{what}: not valid base64") from None
