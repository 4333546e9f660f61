"""Bytes, hashes and verdicts against Tailscale's Go implementation, in both directions.

Randomized cases derive from one seed per test (printed on failure via the assertion message);
set TKA_INTEROP_SEED to replay and TKA_INTEROP_CASES to run more."""

from __future__ import annotations

import base64
import json
import os
import random
from pathlib import Path
from typing import Any

import cbor_items as ci
import pytest
import tka_gen
from nacl.signing import SigningKey
from tka_oracle import Oracle

from verifier.aum import AUM, MessageKind
from verifier.authority import Authority, new_state_ids
from verifier.builder import UpdateBuilder
from verifier.disablement import disablement_kdf
from verifier.errors import DecodeError, TKAError
from verifier.key import ed25519_key
from verifier.nks import NodeKeySignature, node_key_authorized
from verifier.peers import verify_peers
from verifier.signing import AUMSigner
from verifier.state import State
from verifier.storage import FilesystemStorage, MemoryStorage
from verifier.validate import static_validate

CASES = int(os.environ.get("TKA_INTEROP_CASES", "300"))


def _seed() -> int:
    return int(os.environ.get("TKA_INTEROP_SEED", str(random.SystemRandom().getrandbits(32))))


def _python_static_error(aum: AUM) -> str | None:
    try:
        static_validate(aum)
    except TKAError as err:
        return str(err)
    return None


def test_random_aums_encode_hash_and_validate_like_go(oracle: Oracle) -> None:
    seed = _seed()
    rng = random.Random(seed)
    for i in range(CASES):
        desc = tka_gen.rand_aum(rng)
        go = oracle.aum_encode(desc)
        data = bytes.fromhex(go["cbor"])
        ctx = f"seed={seed} case={i} cbor={go['cbor']}"
        ours = AUM.from_cbor(data)
        assert ours.to_cbor() == data, ctx
        assert ours.hash().hex() == go["hash"], ctx
        assert str(ours.hash()) == go["hash_text"], ctx
        assert ours.sig_hash().hex() == go["sighash"], ctx
        # Validation is judged on what the bytes say: Go's in-memory struct can hold a present
        # but empty field that omitempty never puts on the wire.
        decoded = oracle.aum_decode(data)
        assert _python_static_error(ours) == decoded["static_error"], ctx


def test_random_nks_encode_and_sighash_like_go(oracle: Oracle) -> None:
    seed = _seed()
    rng = random.Random(seed)
    for i in range(CASES):
        go = oracle.nks_encode(tka_gen.rand_nks(rng))
        data = bytes.fromhex(go["cbor"])
        ctx = f"seed={seed} case={i} cbor={go['cbor']}"
        ours = NodeKeySignature.from_cbor(data)
        assert ours.to_cbor() == data, ctx
        assert ours.sig_hash().hex() == go["sighash"], ctx


def _mutate(rng: random.Random, item: ci.Item) -> None:
    """Non-canonical but (mostly) legal re-spellings, plus the occasional illegal one."""
    for node, _depth in ci.walk(item):
        r = rng.random()
        if node.major in (0, 2, 3, 4, 5) and r < 0.3:
            arg = node.value if node.major == 0 else (
                len(node.data) if node.major in (2, 3) else
                len(node.items) if node.major == 4 else len(node.pairs)
            )
            node.head_width = ci.random_width(rng, arg)
        if node.major == 5 and r > 0.7:
            rng.shuffle(node.pairs)
        if node.major == 5 and 0.97 < r and node.pairs:
            key, _ = node.pairs[0]
            if key.major == 0:
                node.pairs[0] = (ci.tstr(str(key.value)), node.pairs[0][1])
        if node.major in (2, 3, 4, 5) and r < 0.01:
            node.indefinite = True
        if r > 0.995 and node.major == 5 and node.pairs:
            node.pairs.append(node.pairs[0])  # duplicate key


def _decode_verdict(data: bytes) -> tuple[bool, str | None]:
    try:
        aum = AUM.from_cbor(data)
    except DecodeError:
        return False, None
    return True, aum.to_cbor().hex()


def test_non_canonical_inputs_accepted_and_rehashed_like_go(oracle: Oracle) -> None:
    seed = _seed()
    rng = random.Random(seed)
    for i in range(CASES):
        canonical = bytes.fromhex(oracle.aum_encode(tka_gen.rand_aum(rng))["cbor"])
        item = ci.parse(canonical)
        _mutate(rng, item)
        data = ci.encode(item)
        go = oracle.aum_decode(data)
        ok, ours = _decode_verdict(data)
        ctx = f"seed={seed} case={i} input={data.hex()} go={go.get('decode_error')}"
        assert ok == (go["decode_error"] is None), ctx
        if ok:
            assert ours == go["canonical"], ctx


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("a20101"),  # truncated
        bytes.fromhex("a2010102f6ff"),  # trailing byte
        bytes.fromhex("c1a20101" "02f6"),  # tag
        bytes.fromhex("bf0101" "02f6ff"),  # indefinite map
        bytes.fromhex("a3010102f60101"),  # duplicate key
        bytes.fromhex("a3010102f66131" "01"),  # text key "1" is unknown, ignored
        bytes.fromhex("a3613103613103" "02f6"),  # duplicate unknown text keys
        bytes.fromhex("a201f902f6"),  # float for kind
        bytes.fromhex("a2011901000" "2f6".replace(" ", "")),  # kind 256 overflows uint8
        bytes.fromhex("a2010102f6"),  # valid
        bytes.fromhex("a2011801" "02f6"),  # non-shortest kind
        bytes.fromhex("a202f60101"),  # unsorted
        bytes.fromhex("a201f602f6"),  # null kind → 0
        bytes.fromhex("a3010102f607a1" "61" "6b" "62" "ff" "fe"),  # invalid UTF-8 in meta
    ],
)
def test_decoder_strictness_matches_go(oracle: Oracle, data: bytes) -> None:
    go = oracle.aum_decode(data)
    ok, ours = _decode_verdict(data)
    assert ok == (go["decode_error"] is None), go.get("decode_error")
    if ok:
        assert ours == go["canonical"]


def test_nesting_limit_matches_go(oracle: Oracle) -> None:
    for depth in (14, 15, 16, 17):
        inner = ci.cmap([])
        for _ in range(depth - 1):
            inner = ci.array([inner])
        data = ci.encode(ci.cmap([(ci.uint(1), ci.uint(1)), (ci.uint(99), inner)]))
        go = oracle.aum_decode(data)
        ok, _ = _decode_verdict(data)
        assert ok == (go["decode_error"] is None), f"depth {depth}: {go.get('decode_error')}"


def test_disablement_kdf_matches_go(oracle: Oracle) -> None:
    rng = random.Random(_seed())
    for secret in [b"", b"\x00" * 32, rng.randbytes(32), rng.randbytes(7)]:
        assert disablement_kdf(secret).hex() == oracle.call("kdf", secret=secret.hex())["value"]


# --- authorities: chains, fork choice, storage, node-key verdicts -------------------------------


def _signer(sk: SigningKey) -> AUMSigner:
    return AUMSigner.over_digest(bytes(sk.verify_key), lambda d: sk.sign(d).signature)


def _authority(keys: list[SigningKey], storage: Any = None) -> tuple[Authority, AUM]:
    id1, id2 = new_state_ids()
    state = State(
        disablement_values=(disablement_kdf(b"secret"),),
        keys=tuple(ed25519_key(bytes(k.verify_key), votes=i + 1) for i, k in enumerate(keys)),
        state_id1=id1,
        state_id2=id2,
    )
    return Authority.create(storage or MemoryStorage(), state, _signer(keys[0]))


def _random_updates(
    rng: random.Random, auth: Authority, signers: list[SigningKey], n: int
) -> list[AUM]:
    out: list[AUM] = []
    for _ in range(n):
        trusted = [s for s in signers if auth.key_trusted(bytes(s.verify_key))]
        signer = rng.choice(trusted)
        b = UpdateBuilder(auth, _signer(signer))
        r = rng.random()
        if r < 0.4:
            new = SigningKey(rng.randbytes(32))
            signers.append(new)
            b.add_key(ed25519_key(bytes(new.verify_key), votes=rng.randint(1, 5)))
        elif r < 0.6 and len(trusted) > 1:
            # Not the signer's own key: a cadence checkpoint after it would be signed by a key
            # the state no longer trusts (the reference's builder has the same property).
            others = [t for t in trusted if t is not signer]
            b.remove_key(bytes(rng.choice(others).verify_key))
        elif r < 0.8:
            b.set_key_vote(bytes(rng.choice(trusted).verify_key), rng.randint(1, 9))
        else:
            b.set_key_meta(bytes(rng.choice(trusted).verify_key), {"n": str(rng.random())})
        updates = b.finalize()
        auth.inform(updates)
        out.extend(updates)
    return out


def test_random_chains_reach_the_same_head_and_state(oracle: Oracle) -> None:
    seed = _seed()
    rng = random.Random(seed)
    for n in (1, 7, 60, rng.randint(1, 500), 500):
        signers = [SigningKey(rng.randbytes(32))]
        auth, genesis = _authority(signers)
        try:
            updates = _random_updates(rng, auth, signers, n)
        except TKAError as err:
            raise AssertionError(f"seed={seed} n={n}: {err}") from err
        go = oracle.bootstrap(genesis.to_cbor())
        assert go["error_text"] is None
        res = oracle.inform(go["handle"], [u.to_cbor() for u in updates])
        assert res["error_text"] is None, f"seed={seed} n={n}"
        assert res["head"] == auth.head.hex(), f"seed={seed} n={n}"
        go_state = oracle.state(go["handle"])["state"]
        ours = auth.state
        assert [(k["public"], k["votes"], k["meta"] or {}) for k in go_state["keys"]] == [
            ((k.public or b"").hex(), k.votes, dict(k.meta)) for k in ours.trusted_keys
        ], f"seed={seed} n={n}"
        assert go_state["disablement"] == [v.hex() for v in ours.disablement_values or ()]
        assert (go_state["id1"], go_state["id2"]) == (ours.state_id1, ours.state_id2)
        oracle.close_authority(go["handle"])


def test_fork_choice_on_random_trees_matches_go(oracle: Oracle) -> None:
    seed = _seed()
    rng = random.Random(seed)
    for trial in range(8):
        signers = [SigningKey(rng.randbytes(32)) for _ in range(3)]
        auth, genesis = _authority(signers)
        all_aums = [genesis]
        frontier = [genesis]
        for _ in range(rng.randint(3, 15)):
            parent = rng.choice(frontier)
            state = auth.state_at(parent.hash())
            kind = rng.choice([MessageKind.NO_OP, MessageKind.NO_OP, MessageKind.REMOVE_KEY])
            aum = AUM(kind=kind, prev_aum_hash=bytes(parent.hash()))
            if kind == MessageKind.REMOVE_KEY:
                if len(state.trusted_keys) < 2:
                    continue
                aum = AUM(
                    kind=kind,
                    prev_aum_hash=bytes(parent.hash()),
                    key_id=rng.choice(state.trusted_keys).public,
                )
            else:
                aum = AUM(kind=kind, prev_aum_hash=bytes(parent.hash()), key_id=rng.randbytes(4))
            trusted = [s for s in signers if state.get_key(bytes(s.verify_key))]
            for s in rng.sample(trusted, rng.randint(1, len(trusted))):
                aum = aum.add_signature(_signer(s).signature_for(aum))
            auth.inform([aum])
            all_aums.append(aum)
            frontier.append(aum)
        go = oracle.open([a.to_cbor() for a in all_aums], lai=bytes(genesis.hash()))
        assert go["error_text"] is None
        assert go["head"] == auth.head.hex(), f"seed={seed} trial={trial}"
        assert go["head"] == Authority.open(auth.storage).head.hex()
        oracle.close_authority(go["handle"])


def test_filesystem_storage_written_by_go_opens_in_python_and_back(
    oracle: Oracle, tmp_path: Path
) -> None:
    rng = random.Random(_seed())
    signers = [SigningKey(rng.randbytes(32))]
    auth, genesis = _authority(signers)
    updates = _random_updates(rng, auth, signers, 12)
    aums = [genesis, *updates]
    go_dir = tmp_path / "from-go"
    oracle.call("fs_write", aums=[a.to_cbor().hex() for a in aums], dir=str(go_dir),
                lai=bytes(genesis.hash()).hex())
    ours = Authority.open(FilesystemStorage(go_dir))
    assert ours.head == auth.head and ours.state == auth.state

    py_dir = tmp_path / "from-python"
    store = FilesystemStorage(py_dir)
    store.commit_verified_aums(aums)
    store.set_last_active_ancestor(genesis.hash())
    read = oracle.call("fs_read", dir=str(py_dir))
    assert read["error_text"] is None, read
    go = oracle.open([], directory=str(py_dir))
    assert go["error_text"] is None and go["head"] == auth.head.hex()
    oracle.close_authority(go["handle"])


def _verdict(state: State, node_key: bytes, nks: bytes) -> str | None:
    try:
        node_key_authorized(state, node_key, nks)
    except TKAError as err:
        return str(err)
    return None


def test_signatures_by_a_removed_key_stop_authorizing(oracle: Oracle) -> None:
    rng = random.Random(_seed())
    seed_b = rng.randbytes(32)
    a, b = SigningKey(rng.randbytes(32)), SigningKey(seed_b)
    auth, genesis = _authority([a, b])
    handle = oracle.bootstrap(genesis.to_cbor())["handle"]
    node = rng.randbytes(32)
    desc = tka_gen.direct_nks(seed_b, node, None)
    nks = bytes.fromhex(oracle.nks_encode(desc)["cbor"])
    assert _verdict(auth.state, node, nks) is None
    before = oracle.call("nka", handle=handle, node_key=node.hex(), cbor=nks.hex())
    assert before["error_text"] is None
    builder = UpdateBuilder(auth, _signer(a))
    builder.remove_key(bytes(b.verify_key))
    updates = builder.finalize()
    auth.inform(updates)
    oracle.inform(handle, [u.to_cbor() for u in updates])
    go = oracle.call("nka", handle=handle, node_key=node.hex(), cbor=nks.hex())["error_text"]
    ours = _verdict(auth.state, node, nks)
    assert go is not None and ours is not None
    assert "key not found" in go and "key not found" in ours
    oracle.close_authority(handle)


def test_node_key_verdicts_match_go(oracle: Oracle) -> None:
    seed = _seed()
    rng = random.Random(seed)
    trusted_seed = rng.randbytes(32)
    other_seed = rng.randbytes(32)
    auth, genesis = _authority([SigningKey(trusted_seed), SigningKey(other_seed)])
    go = oracle.bootstrap(genesis.to_cbor())
    handle = go["handle"]
    peers: list[tuple[bytes, bytes]] = []
    go_verdicts: list[bool] = []
    for i in range(CASES):
        desc = tka_gen.rand_nks(rng)
        # Point most chains at a trusted key so verification runs to the end.
        inner = desc
        while inner.get("nested"):
            inner = inner["nested"]
        if rng.random() < 0.8:
            inner["key_id"] = tka_gen.pub(trusted_seed).hex()
            inner["sign_seed"] = trusted_seed.hex()
        data = bytes.fromhex(oracle.nks_encode(desc)["cbor"])
        if rng.random() < 0.1:
            flip = rng.randrange(len(data))
            data = data[:flip] + bytes([data[flip] ^ (1 << rng.randrange(8))]) + data[flip + 1:]
        pubkey = bytes.fromhex(desc["pubkey"])[2:] if desc.get("pubkey") else rng.randbytes(32)
        node_key = pubkey if len(pubkey) == 32 and rng.random() < 0.9 else rng.randbytes(32)
        go_res = oracle.call("nka", handle=handle, node_key=node_key.hex(), cbor=data.hex())
        ours = _verdict(auth.state, node_key, data)
        ctx = f"seed={seed} case={i} nks={data.hex()} go={go_res['error_text']} ours={ours}"
        assert (ours is None) == (go_res["error_text"] is None), ctx
        peers.append((node_key, data))
        go_verdicts.append(go_res["error_text"] is None)
    oracle.close_authority(handle)
    # The same cases through the C bulk path, in one call.
    bulk = verify_peers(auth.state, peers)
    for i, (verdict, go_ok) in enumerate(zip(bulk, go_verdicts, strict=True)):
        assert verdict.authorized == go_ok, f"seed={seed} case={i} bulk={verdict.reason}"
    assert any(go_verdicts) and not all(go_verdicts), f"seed={seed}: one-sided cases"


def test_sync_offers_and_missing_aums_match_go(oracle: Oracle) -> None:
    from verifier.sync import SyncOffer, legacy_sync_offer, missing_aums, sync_offer

    seed = _seed()
    rng = random.Random(seed)
    signers = [SigningKey(rng.randbytes(32))]
    auth, genesis = _authority(signers)
    updates = _random_updates(rng, auth, signers, 130)  # crosses two checkpoints
    chain = [genesis.to_cbor(), *(u.to_cbor() for u in updates)]
    go = oracle.open(chain, lai=bytes(genesis.hash()))
    handle = go["handle"]
    go_offer = oracle.call("sync_offer", handle=handle)
    assert go_offer["error_text"] is None
    ours = sync_offer(auth)
    assert ours.to_text() == (go_offer["head"], go_offer["ancestors"]), f"seed={seed}"
    for cut in (0, 1, 5, 60, 129):
        # A peer that stopped `cut` AUMs before our head, offering in both forms.
        peer_storage = MemoryStorage()
        peer = Authority.bootstrap(peer_storage, genesis)
        if len(updates) - cut > 0:
            peer.inform(updates[: len(updates) - cut])
        for offer in (sync_offer(peer), legacy_sync_offer(peer)):
            head, ancestors = offer.to_text()
            expected = oracle.call("missing_aums", handle=handle, head=head, ancestors=ancestors)
            assert expected["error_text"] is None
            missing = missing_aums(auth, SyncOffer.from_text(head, ancestors))
            got = [a.to_cbor().hex() for a in missing]
            assert got == expected["aums"], f"seed={seed} cut={cut}"
    oracle.close_authority(handle)


def test_compaction_keeps_and_purges_what_go_does(oracle: Oracle) -> None:
    import time

    from verifier.compaction import compact

    seed = _seed()
    rng = random.Random(seed)
    for trial, (length, min_chain) in enumerate([(30, 5), (120, 24), (160, 10), (8, 24)]):
        signers = [SigningKey(rng.randbytes(32))]
        auth, genesis = _authority(signers)
        chain = [genesis, *_random_updates(rng, auth, signers, length)]
        side: list[AUM] = []
        for _ in range(rng.randint(0, 4)):  # forks that lose (no-ops off older AUMs)
            parent = rng.choice(chain[:-1])
            state = auth.state_at(parent.hash())
            signer = next(s for s in signers if state.get_key(bytes(s.verify_key)))
            aum = AUM(kind=MessageKind.NO_OP, prev_aum_hash=bytes(parent.hash()))
            aum = aum.add_signature(_signer(signer).signature_for(aum))
            side.append(aum)
        if side:
            auth.inform(side)
        everything = [*chain, *side]
        go = oracle.open([a.to_cbor() for a in everything], lai=bytes(genesis.hash()))
        handle = go["handle"]
        assert go["head"] == auth.head.hex()
        go_res = oracle.call("compact", handle=handle, min_chain=min_chain, min_age_ns=1)
        ctx = f"seed={seed} trial={trial}"
        storage = MemoryStorage()
        storage.commit_verified_aums(everything)
        storage.set_last_active_ancestor(genesis.hash())
        if go_res["error_text"] is not None:
            with pytest.raises(TKAError):
                compact(storage, auth.head, min_chain, 1e-9, now=time.time() + 1)
            continue
        start = compact(storage, auth.head, min_chain, 1e-9, now=time.time() + 1)
        assert start.hex() == go_res["lai"], ctx
        assert sorted(h.hex() for h in storage.all_aums()) == sorted(go_res["aums"]), ctx
        assert Authority.open(storage).head == auth.head, ctx
        oracle.close_authority(handle)


def test_deeplinks_match_go(oracle: Oracle) -> None:
    from verifier.deeplink import new_deeplink, validate_deeplink

    rng = random.Random(_seed())
    auth, genesis = _authority([SigningKey(rng.randbytes(32))])
    handle = oracle.bootstrap(genesis.to_cbor())["handle"]
    id1 = auth.state.state_id1
    cases = [
        ("nodekey:" + rng.randbytes(32).hex(), "tlpub:" + rng.randbytes(32).hex(),
         "my laptop+1", "macOS 15/ü", "a.b+c@example.com"),
        ("nodekey:" + "00" * 32, "tlpub:" + "11" * 32, "d&n=x", "linux", "é ~_.-"),
    ]
    for nk, tp, dn, os_name, em in cases:
        ours = new_deeplink(id1, nk, tp, dn, os_name, em)
        go = oracle.call("deeplink_new", handle=handle,
                         deeplink={"nk": nk, "tp": tp, "dn": dn, "os": os_name, "em": em})
        assert go["error_text"] is None and ours == go["url"]
        tampered = ours.replace("hm=", "hm=00")
        no_os = ours.replace("os=", "xx=")
        for url in (ours, tampered, no_os, ours.replace("/v1/", "/v1"), "http://sign-device/v1/",
                    ours.replace("hm=", "hm=zz")):
            res = oracle.call("deeplink_validate", handle=handle, text=url)
            mine = validate_deeplink(url, id1)
            assert mine.valid == res["valid"], url
            if mine.valid:
                assert (mine.node_key, mine.tlpub, mine.device_name, mine.os_name, mine.email) == (
                    res["nk"], res["tp"], res["dn"], res["os"], res["em"])
    oracle.close_authority(handle)


def test_tka_audit_of_a_go_written_directory_agrees_with_go(
    oracle: Oracle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An auditor's path end to end: Go writes the authority directory (a key added, another
    removed) and encodes the signatures; `tka audit` reads both; every verdict equals Go's."""
    from signer.cli import main

    seed = _seed()
    rng = random.Random(seed)
    seeds = [rng.randbytes(32) for _ in range(3)]
    keys = [SigningKey(s) for s in seeds]
    auth, genesis = _authority(keys[:2])
    builder = UpdateBuilder(auth, _signer(keys[0]))
    builder.add_key(ed25519_key(bytes(keys[2].verify_key)))
    builder.remove_key(bytes(keys[1].verify_key))
    updates = builder.finalize()
    auth.inform(updates)
    go_dir = tmp_path / "tka"
    aums = [genesis, *updates]
    oracle.call("fs_write", aums=[a.to_cbor().hex() for a in aums], dir=str(go_dir),
                lai=bytes(genesis.hash()).hex())
    go = oracle.open([], directory=str(go_dir))
    handle = go["handle"]
    lines, go_ok = [], []
    for i in range(60):
        node = rng.randbytes(32)
        signer_seed = seeds[i % 3]  # keys[1] was removed
        desc = tka_gen.direct_nks(signer_seed, node, None)
        if i % 4 == 3:
            rotation_seed = rng.randbytes(32)
            desc = tka_gen.direct_nks(signer_seed, rng.randbytes(32), tka_gen.pub(rotation_seed))
            desc = tka_gen.rotation_nks(rotation_seed, node, desc)
        data = bytes.fromhex(oracle.nks_encode(desc)["cbor"])
        if i % 7 == 0:
            data = data[:-1] + bytes([data[-1] ^ 4])
        verdict = oracle.call("nka", handle=handle, node_key=node.hex(), cbor=data.hex())
        go_ok.append(verdict["error_text"] is None)
        lines.append(f"nodekey:{node.hex()} {base64.b64encode(data).decode()}")
    oracle.close_authority(handle)
    peers = tmp_path / "peers.txt"
    peers.write_text("\n".join(lines) + "\n")
    code = main(["audit", "--authority", str(go_dir), "--peers", str(peers), "--json"])
    doc = json.loads(capsys.readouterr().out)
    ours = [p["Authorized"] for p in doc["Peers"]]
    assert ours == go_ok, f"seed={seed}"
    assert code == (0 if all(go_ok) else 1)
    assert any(go_ok) and not all(go_ok), f"seed={seed}: one-sided cases"
