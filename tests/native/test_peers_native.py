"""The C bulk node-key verifier (tka_verify_peers) against the one-peer-at-a-time rule.

Every verdict and every reason must equal `node_key_authorized`'s; these tests also check
that the C path really judged the canonical inputs (so agreement is not the fallback agreeing
with itself), and that its BLAKE2s and canonical reader are right on their own.
"""

from __future__ import annotations

import hashlib
import random

import nks_corpus
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from verifier._native import ffi, lib

from verifier.nks import NodeKeySignature
from verifier.peers import verify_peers, verify_peers_reference
from verifier.state import State


def _blake2s(data: bytes) -> bytes:
    out = ffi.new("uint8_t[32]")
    lib.tka_blake2s(data, len(data), out)
    return bytes(out)


def _canonical(data: bytes) -> bool:
    return bool(lib.tka_nks_is_canonical(data, len(data)))


def test_blake2s_matches_hashlib_at_every_block_boundary() -> None:
    rng = random.Random(7)
    for length in [*range(0, 200), 255, 256, 257, 1000, 4096, 65537]:
        data = rng.randbytes(length)
        assert _blake2s(data) == hashlib.blake2s(data).digest(), length


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_verdicts_and_reasons_equal_the_single_peer_rule(
    trusted: SigningKey, state: State, seed: int
) -> None:
    peers = nks_corpus.mixed_peers(trusted, 1500, seed)
    expected = verify_peers_reference(state, peers)
    for threads in (1, 2):
        got = verify_peers(state, peers, threads=threads)
        for i, (want, have) in enumerate(zip(expected, got, strict=True)):
            assert have == want, f"seed={seed} peer={i} threads={threads}: {peers[i][1].hex()}"
    judged = sum(_canonical(nks) for _, nks in peers)
    assert judged > 0.7 * len(peers), "the C path should judge most of this corpus itself"
    reasons = {v.reason.split(":")[0] + ":" + v.reason.split(":")[-1] for v in expected}
    assert len(reasons) >= 10, f"corpus too narrow: {sorted(reasons)}"
    assert any(v.authorized for v in expected) and not all(v.authorized for v in expected)


def test_many_peers_split_across_threads_agree(trusted: SigningKey, state: State) -> None:
    rng = random.Random(11)
    maker = nks_corpus.ChainMaker(trusted, rng)
    peers = [maker.chain(rng.choice([1, 1, 2])) for _ in range(9000)]
    encoded = [(node, nks.to_cbor()) for node, nks in peers]
    # Break a few in every chunk so each thread's batch has to bisect.
    for i in range(0, len(encoded), 997):
        node, data = encoded[i]
        encoded[i] = (node, data[:-1] + bytes([data[-1] ^ 1]))
    expected = verify_peers_reference(state, encoded)
    assert verify_peers(state, encoded, threads=0) == expected
    assert verify_peers(state, encoded, threads=3) == expected
    assert sum(not v.authorized for v in expected) == len(range(0, len(encoded), 997))


def test_odd_inputs_fall_back_to_the_full_decoder(trusted: SigningKey, state: State) -> None:
    rng = random.Random(5)
    node, nks = nks_corpus.ChainMaker(trusted, rng).chain(2)
    data = nks.to_cbor()
    peers = [
        (node, data),
        (node[:31], data),  # a node key of the wrong length
        (node, b""),
        (node, b"\xa1\x61\x31\x01"),  # text key "1": lenient decoder, not canonical
        (node, bytes([0xB8, data[0] & 0x1F]) + data[1:]),  # non-shortest map head
        (node, data + b"\x00"),  # trailing byte
    ]
    assert verify_peers(state, peers) == verify_peers_reference(state, peers)
    assert verify_peers(state, peers)[0].authorized
    assert verify_peers(state, peers)[4].authorized  # the reference accepts long heads


def test_a_state_with_no_keys_trusts_nobody(trusted: SigningKey) -> None:
    rng = random.Random(9)
    node, nks = nks_corpus.ChainMaker(trusted, rng).chain(1)
    empty = State(keys=())
    assert verify_peers(empty, [(node, nks.to_cbor())]) == verify_peers_reference(
        empty, [(node, nks.to_cbor())]
    )


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_whatever_the_reader_accepts_round_trips_exactly(
    trusted: SigningKey, data: st.DataObject
) -> None:
    seed = data.draw(st.integers(0, 2**32))
    rng = random.Random(seed)
    _, nks = nks_corpus.ChainMaker(trusted, rng).chain(rng.choice([1, 2, 4]))
    encoded = nks_corpus.byte_damage(nks.to_cbor(), rng)
    if rng.random() < 0.5:
        encoded = nks_corpus.byte_damage(encoded, rng)
    if _canonical(encoded):
        assert NodeKeySignature.from_cbor(encoded).to_cbor() == encoded


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_get_the_reference_verdict(state: State, blob: bytes) -> None:
    peers = [(bytes(32), blob)]
    assert verify_peers(state, peers) == verify_peers_reference(state, peers)


def test_windows_within_a_thread_keep_each_peer_its_own_verdict(
    trusted: SigningKey, state: State
) -> None:
    # One thread works through 40,000 peers in windows of 16,384; put failures on both sides
    # of each window edge so a verdict landing in the wrong window would show.
    rng = random.Random(13)
    maker = nks_corpus.ChainMaker(trusted, rng)
    samples = [maker.chain(levels) for levels in (1, 2, 3)]
    peers = [(node, nks.to_cbor()) for node, nks in samples] * 13334
    bad = {0, 16383, 16384, 16385, 32767, 32768, len(peers) - 1}
    for i in bad:
        node, data = peers[i]
        peers[i] = (node, data[:-1] + bytes([data[-1] ^ 0x80]))
    verdicts = verify_peers(state, peers, threads=1)
    assert {i for i, v in enumerate(verdicts) if not v.authorized} == bad
    expected = verify_peers_reference(state, [peers[i] for i in sorted(bad)])
    assert [verdicts[i] for i in sorted(bad)] == expected


def test_a_negative_thread_count_is_a_usage_error(state: State) -> None:
    with pytest.raises(ValueError, match="threads"):
        verify_peers(state, [(bytes(32), b"\xa1\x01\x01")], threads=-1)
