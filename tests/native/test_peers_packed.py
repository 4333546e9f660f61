"""The packed entry point (PackedPeers, verify_peers_packed, tka_verify_peers_packed) and the
native peers-file line reader (PeerLineScanner, tka_read_peer_lines).

Verdicts and reasons must equal the list API's and the one-peer-at-a-time rule's on mixed
corpora, however the packed input was built; what C says about each NKS (its outer kind, its
shallowest forgeable wrapping key) must equal what the Python decoder finds; the line reader
must read exactly what the general rule reads, or leave the line to it.
"""

from __future__ import annotations

import base64
import random
from array import array

import nks_corpus
import pytest
from nacl.signing import SigningKey
from verifier._native import lib

from verifier.ed25519 import OFFSET_TYPECODE, public_key_class
from verifier.key import Key, KeyKind
from verifier.nks import NodeKeySignature, SigKind
from verifier.peers import (
    PackedPeers,
    PeerLineScanner,
    WeakWrappingKey,
    verify_peers,
    verify_peers_packed,
    verify_peers_reference,
    weak_wrapping_key_of,
)
from verifier.state import State

P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P


def _sqrt(a: int) -> int | None:
    a %= P
    x = pow(a, (P + 3) // 8, P)
    if (x * x - a) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    return x if (x * x - a) % P == 0 else None


def small_order_encodings() -> list[bytes]:
    """Every 32-byte encoding of a point of order 1, 2, 4 or 8, derived here from the curve:
    y = 1, -1 (orders 1, 2), 0 (order 4) and y^2 = (-1 +- sqrt(1 + d)) / d (order 8: doubling
    gives y = 0 when x^2 = -y^2), each with both sign bits and, below 2^255, y + p."""
    ys = {0, 1, P - 1}
    root = _sqrt(1 + D)
    assert root is not None
    for sign in (1, -1):
        y = _sqrt((-1 + sign * root) * pow(D, -1, P))
        if y is not None:
            ys |= {y, P - y}
    assert len(ys) == 5
    encodings = []
    for y in ys:
        for raw in (y, y + P):
            if raw < 2**255:
                encodings += [raw.to_bytes(32, "little"), (raw | 1 << 255).to_bytes(32, "little")]
    return encodings


def _packed_by_append(pairs: list[tuple[bytes, bytes]]) -> PackedPeers:
    packed = PackedPeers()
    for node_key, nks in pairs:
        packed.append(node_key, nks)
    return packed


def _packed_by_extend(pairs: list[tuple[bytes, bytes]]) -> PackedPeers:
    packed = PackedPeers()
    for start in range(0, len(pairs), 97):
        batch = pairs[start : start + 97]
        packed.extend([k for k, _ in batch], [n for _, n in batch])
    return packed


def _packed_by_buffers(pairs: list[tuple[bytes, bytes]]) -> PackedPeers:
    packed = PackedPeers()
    for start in range(0, len(pairs), 101):
        batch = pairs[start : start + 101]
        base = packed.nks_len()
        ends = array(OFFSET_TYPECODE)
        for _, nks in batch:
            base += len(nks)
            ends.append(base)
        packed.extend_buffers(b"".join(k for k, _ in batch), b"".join(n for _, n in batch),
                              ends.tobytes())
    return packed


BUILDERS = {"append": _packed_by_append, "extend": _packed_by_extend,
            "from_pairs": PackedPeers.from_pairs, "buffers": _packed_by_buffers}


@pytest.mark.parametrize("seed", [21, 22])
@pytest.mark.parametrize("build", sorted(BUILDERS))
def test_packed_verdicts_equal_the_list_api_and_the_single_peer_rule(
    trusted: SigningKey, state: State, seed: int, build: str
) -> None:
    peers = nks_corpus.mixed_peers(trusted, 1200, seed)
    expected = verify_peers_reference(state, peers)
    assert verify_peers(state, peers, threads=2) == expected
    packed = BUILDERS[build](peers)
    assert len(packed) == len(peers)
    assert list(packed) == peers
    for threads in (1, 2):
        verdicts = verify_peers_packed(state, packed, threads=threads, describe=threads == 2)
        assert len(verdicts) == len(peers)
        for i, want in enumerate(expected):
            assert verdicts[i] == want, f"peer {i} threads={threads}: {peers[i][1].hex()}"
        assert verdicts.to_list() == expected
        assert list(verdicts.unauthorized()) == [
            (i, v) for i, v in enumerate(expected) if not v.authorized]
    assert any(v.authorized for v in expected) and not all(v.authorized for v in expected)


def test_odd_node_keys_and_states_c_cannot_judge_take_the_reference_path(
    trusted: SigningKey, state: State
) -> None:
    peers = nks_corpus.mixed_peers(trusted, 300, 5)
    peers[3] = (peers[3][0][:31], peers[3][1])
    peers[7] = (peers[7][0] + b"\x00", peers[7][1])
    peers[8] = (b"", peers[8][1])
    for packed in (PackedPeers.from_pairs(peers), _packed_by_append(peers),
                   _packed_by_extend(peers)):
        assert [packed.node_key(i) for i in (3, 7, 8)] == [peers[i][0] for i in (3, 7, 8)]
        assert verify_peers_packed(state, packed).to_list() == verify_peers_reference(state, peers)
    # A state holding a key that is not a 32-byte Ed25519 key: the whole call is the reference.
    odd = state.replace(keys=(*state.keys, Key(kind=KeyKind.ED25519, votes=1,
                                                           public=b"\x01" * 31)))
    packed = PackedPeers.from_pairs(peers)
    described = verify_peers_packed(odd, packed, describe=True)
    assert described.to_list() == verify_peers_reference(odd, peers)
    assert not any(described.read_by_c(i) for i in range(len(peers)))
    assert [described.weak_wrapping_key(i) for i in range(len(peers))] == [
        _python_weak(nks) for _, nks in peers]


def test_the_list_api_judges_a_window_at_a_time_with_the_same_verdicts(
    trusted: SigningKey, state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    import verifier.peers as peers_module

    peers = nks_corpus.mixed_peers(trusted, 700, 9)
    peers[0] = (peers[0][0][:31], peers[0][1])  # odd node keys at and around window edges
    peers[127] = (b"", peers[127][1])
    peers[128] = (peers[128][0] + b"\x00", peers[128][1])
    expected = verify_peers_reference(state, peers)
    monkeypatch.setattr(peers_module, "LIST_WINDOW", 128)
    for threads in (1, 2):
        assert verify_peers(state, peers, threads=threads) == expected
        assert verify_peers(state, iter(peers), threads=threads) == expected
    assert verify_peers(state, peers[:128]) == expected[:128]


def test_an_empty_packing_and_bad_arguments() -> None:
    state = State(keys=())
    assert len(verify_peers_packed(state, PackedPeers())) == 0
    assert verify_peers_packed(state, PackedPeers()).to_list() == []
    with pytest.raises(ValueError, match="threads"):
        verify_peers_packed(state, PackedPeers(), threads=-1)
    with pytest.raises(ValueError, match="fit together"):
        PackedPeers().extend_buffers(bytes(32), b"ab", array(OFFSET_TYPECODE, [1]).tobytes())
    with pytest.raises(ValueError, match="fit together"):  # offsets that go backwards
        PackedPeers().extend_buffers(bytes(96), b"abcd", array(OFFSET_TYPECODE,
                                                               [3, 1, 4]).tobytes())
    with pytest.raises(ValueError, match="describe"):
        verify_peers_packed(state, PackedPeers.from_pairs([(bytes(32), b"x")])).outer_kind(0)


def test_the_buffers_are_locked_while_judged(trusted: SigningKey, state: State) -> None:
    """C reads the caller's bytearrays in place; no one may resize them under it."""
    peers = nks_corpus.mixed_peers(trusted, 50, 9)
    packed = _packed_by_append(peers)
    with memoryview(packed._nks):  # what verify_peers_packed holds during the call
        with pytest.raises(BufferError):
            packed.append(*peers[0])


def _python_weak(nks: bytes) -> WeakWrappingKey | None:
    try:
        return weak_wrapping_key_of(NodeKeySignature.from_cbor(nks))
    except Exception:
        return None


def _weak_chain(maker: nks_corpus.ChainMaker, levels: int, depth: int, key: bytes) -> bytes:
    """A chain whose level `depth` carries `key` as its wrapping key (signatures need not
    verify: only the description is under test)."""
    _, nks = maker.chain(levels)
    chain = [nks]
    while chain[-1].nested is not None:
        chain.append(chain[-1].nested)
    chain[depth] = chain[depth].replace(wrapping_pubkey=key)
    inner: NodeKeySignature | None = None
    for level in reversed(chain):
        inner = level.replace(nested=inner)
    assert inner is not None
    return inner.to_cbor()


def test_c_describes_each_nks_as_the_python_decoder_does(trusted: SigningKey,
                                                         state: State) -> None:
    rng = random.Random(3)
    maker = nks_corpus.ChainMaker(trusted, rng)
    weak = small_order_encodings()
    assert len(weak) == 14
    assert all(public_key_class(k) == "small_order" for k in weak)
    near = [bytes([k[0] ^ 1]) + k[1:] for k in weak] + [rng.randbytes(32) for _ in range(40)]
    peers = nks_corpus.mixed_peers(trusted, 800, 7)
    for key in weak + near:
        levels = rng.choice([1, 2, 3, 5])
        peers.append((maker.node_key(), _weak_chain(maker, levels, rng.randrange(levels), key)))
    verdicts = verify_peers_packed(state, PackedPeers.from_pairs(peers), describe=True)
    flagged = 0
    for i, (_, nks) in enumerate(peers):
        want = _python_weak(nks)
        assert verdicts.weak_wrapping_key(i) == want, nks.hex()
        flagged += want is not None
        try:
            kind: int | None = NodeKeySignature.from_cbor(nks).kind
        except Exception:
            kind = None
        assert verdicts.outer_kind(i) == kind
        assert verdicts.read_by_c(i) == bool(lib.tka_nks_is_canonical(nks, len(nks)))
    assert flagged >= len(weak)  # every small-order encoding, wherever it sits
    assert set(verdicts.weak_candidates()) >= {
        i for i, (_, nks) in enumerate(peers) if _python_weak(nks) is not None}
    rotations = set(verdicts.kind_candidates(SigKind.ROTATION))
    assert {i for i in range(len(peers)) if verdicts.outer_kind(i) == SigKind.ROTATION} <= rotations


def test_a_zero_wrapping_key_is_told_apart_from_other_small_order_keys(
    trusted: SigningKey, state: State
) -> None:
    maker = nks_corpus.ChainMaker(trusted, random.Random(4))
    peers = [(maker.node_key(), _weak_chain(maker, 3, 2, bytes(32))),
             (maker.node_key(), _weak_chain(maker, 1, 0, small_order_encodings()[5]))]
    verdicts = verify_peers_packed(state, PackedPeers.from_pairs(peers), describe=True)
    assert verdicts.weak_wrapping_key(0) == WeakWrappingKey(2, SigKind.DIRECT, True)
    second = verdicts.weak_wrapping_key(1)
    assert second is not None and second.depth == 0 and not second.all_zero


# -- the line reader ----------------------------------------------------------------------------


def _general_rule(line: str) -> tuple[str, bytes, bytes] | str | None:
    """What `tka audit` makes of one line by its general rule (signer.audit._peer_line)."""
    from signer.audit import _peer_line
    from verifier.errors import DecodeError

    try:
        return _peer_line(line, 1, "f")
    except DecodeError as err:
        return f"error: {err}"


def _lines(rng: random.Random) -> list[str]:
    key = "nodekey:" + rng.randbytes(32).hex()
    blob = rng.randbytes(rng.choice([1, 2, 3, 4, 40, 101]))
    b64 = base64.b64encode(blob).decode()
    hexed = blob.hex()
    odd_bits = b64[:-2] + "R=" if b64.endswith("==") else b64  # non-zero unused bits
    return [
        f"{key} {b64} # host-{rng.randrange(100)}.example",
        f"{key} {b64}",
        f"{key}\t{hexed}\t#\tname with  spaces\t",
        f"  {key}   {hexed.upper()}   #",
        f"{key} {b64}#glued",
        f"{key} {odd_bits} # non-canonical base64",
        f"{key.upper()} {b64}",
        f"{key} {b64} extra # three words",
        f"{key}",
        f"{key} # no signature",
        f"{key}#{b64}",
        f"{key[:-1]} {b64}",
        f"{key} {b64[:-1]}",
        f"{key} {b64}=",
        f"{key} ====",
        f"{key} {hexed}0",
        "   ",
        "",
        "# a comment",
        "\t# another",
        f"{key} {b64} # a#b#c",
    ]


def test_the_native_line_reader_reads_what_the_general_rule_reads_or_leaves_it() -> None:
    rng = random.Random(8)
    for round_ in range(30):
        lines = [line for _ in range(3) for line in _lines(rng)]
        rng.shuffle(lines)
        block = ("\n".join(lines) + ("\n" if round_ % 2 else "")).encode()
        scanner = PeerLineScanner()
        if round_ % 3 == 0:
            scanner.CAPACITY = 300  # type: ignore[misc]  # forces scans that stop when full
        peers, names = PackedPeers(), bytearray()
        name_ends, numbers = array(OFFSET_TYPECODE, [0]), array(OFFSET_TYPECODE)
        at, line = 0, 0
        read: dict[int, tuple[str, bytes, bytes]] = {}
        left: list[int] = []
        while at < len(block):
            before = len(peers)
            at, consumed = scanner.scan(block, at, line, peers, names, name_ends, numbers)
            line += consumed
            for k in range(before, len(peers)):
                read[numbers[k]] = (names[name_ends[k] : name_ends[k + 1]].decode(),
                                    peers.node_key(k), peers.nks(k))
            if at < len(block) and not scanner.full:
                end = block.find(b"\n", at) + 1 or len(block)
                line += 1
                left.append(line)
                at = end
        lines = block.decode().splitlines()
        assert line == len(lines)
        for number, text in enumerate(lines, start=1):
            rule = _general_rule(text)
            if number in read:
                assert read[number] == rule, text
            elif number not in left:  # skipped in C: it must be a blank or comment line
                assert rule is None, text
            else:  # left to the rule: never a usual line
                assert rule is None or isinstance(rule, str) or not text.endswith(".example")
        # The usual lines are the C reader's.
        assert any(text.endswith(".example") and n in read for n, text in enumerate(lines, 1))
