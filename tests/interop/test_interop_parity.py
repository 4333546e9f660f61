"""Five classes of input where an independent check once found our verdicts or texts differing
from Tailscale's code; each is now compared with Go in both directions, reasons included.

1. A rotation over a credential whose `Pubkey` is not a node key (the reference parses it when
   it collects the rotation's previous keys).
2. An authority state holding a key that is not Ed25519 (the reference's key lookup stops
   there with an error).
3. Filesystem storage off the layout: an AUM file in the wrong directory, a negative PurgedUnix.
4. Reason texts of Inform and checkpoint validation: missing or wrong-length parents, duplicate
   keys and disablement values.
5. The builder's checkpoint once 50 AUMs have passed, even with no other update.

Byte strings cross as hex; "both directions" means each case is built on one side and judged on
the other, and the other way round."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import tka_gen
from nacl.signing import SigningKey
from test_interop_wire import _authority, _seed, _signer
from tka_oracle import Oracle

from verifier.aum import AUM, MessageKind
from verifier.authority import Authority
from verifier.builder import CHECKPOINT_EVERY, UpdateBuilder
from verifier.disablement import disablement_kdf
from verifier.errors import TKAError
from verifier.key import Key, Signature, ed25519_key
from verifier.nks import NodeKeySignature, node_key_authorized
from verifier.peers import verify_peers
from verifier.state import State
from verifier.storage import FilesystemStorage, MemoryStorage
from verifier.storage.base import StoredRecord
from verifier.textforms import format_aum_hash
from verifier.validate import static_validate


def _ours(state: State, node_key: bytes, nks: bytes) -> str | None:
    try:
        node_key_authorized(state, node_key, nks)
    except TKAError as err:
        return str(err)
    return None


def _bulk(state: State, node_key: bytes, nks: bytes) -> str | None:
    verdict = verify_peers(state, [(node_key, nks)])[0]
    return None if verdict.authorized else verdict.reason.split(": ", 1)[1]


def _go_nka(oracle: Oracle, handle: int, node_key: bytes, nks: bytes) -> str | None:
    result = oracle.call("nka", handle=handle, node_key=node_key.hex(), cbor=nks.hex())
    text: str | None = result["error_text"]
    return text


# -- 1 ----------------------------------------------------------------------------------------


def test_rotation_over_a_credential_with_a_malformed_pubkey(oracle: Oracle) -> None:
    rng = random.Random(_seed())
    trusted = rng.randbytes(32)
    wrapping = rng.randbytes(32)
    auth, genesis = _authority([SigningKey(trusted)])
    handle = oracle.bootstrap(genesis.to_cbor())["handle"]
    node = rng.randbytes(32)
    pubkeys = [
        b"np",                        # the prefix only
        rng.randbytes(10),            # no prefix
        b"xx" + rng.randbytes(32),    # the right length, the wrong prefix
        b"np" + rng.randbytes(40),    # the prefix, the wrong length
        b"np" + rng.randbytes(32),    # a well-formed node key: accepted
    ]
    seen_failure = False
    for pubkey in pubkeys:
        for rotations in (1, 2):
            credential = tka_gen.credential_nks(trusted, tka_gen.pub(wrapping))
            credential["pubkey"] = pubkey.hex()
            desc = credential
            for _ in range(rotations - 1):
                desc = tka_gen.rotation_nks(wrapping, rng.randbytes(32), desc)
            desc = tka_gen.rotation_nks(wrapping, node, desc)
            go_bytes = bytes.fromhex(oracle.nks_encode(desc)["cbor"])
            py_bytes = NodeKeySignature.from_cbor(go_bytes).to_cbor()
            assert py_bytes == go_bytes
            go_text = _go_nka(oracle, handle, node, py_bytes)
            ctx = f"pubkey={pubkey.hex()} rotations={rotations}"
            assert _ours(auth.state, node, go_bytes) == go_text, ctx
            assert _bulk(auth.state, node, go_bytes) == go_text, ctx
            if pubkey[:2] != b"np" or len(pubkey) != 34:
                assert go_text is not None and go_text.startswith("nested pubkey: "), ctx
                seen_failure = True
            else:
                assert go_text is None, ctx
    assert seen_failure
    oracle.close_authority(handle)


# -- 2 ----------------------------------------------------------------------------------------


def _foreign_key(rng: random.Random, kind: int) -> Key:
    return Key(kind=kind, votes=1, public=rng.randbytes(32))


def test_state_with_a_key_of_unknown_kind(oracle: Oracle) -> None:
    rng = random.Random(_seed())
    signer_seed = rng.randbytes(32)
    signer = SigningKey(signer_seed)
    for kind, before, built_by in ((2, True, "go"), (2, True, "python"), (0, True, "python"),
                                   (2, False, "go")):
        foreign = _foreign_key(rng, kind)
        mine = ed25519_key(bytes(signer.verify_key))
        keys = (foreign, mine) if before else (mine, foreign)
        state = State(disablement_values=(disablement_kdf(b"x"),), keys=keys,
                      state_id1=rng.getrandbits(64), state_id2=rng.getrandbits(64))
        if built_by == "go":
            key_descs = [{"kind": k.kind, "votes": k.votes, "public": (k.public or b"").hex(),
                          "meta": None} for k in keys]
            desc = tka_gen.aum_desc(
                MessageKind.CHECKPOINT, None,
                state=tka_gen.state_desc(key_descs, list(state.disablement_values or ()),
                                         state.state_id1, state.state_id2),
                sign_seeds=[signer_seed.hex()],
            )
            genesis = AUM.from_cbor(bytes.fromhex(oracle.aum_encode(desc)["cbor"]))
        else:
            genesis = _signer(signer).sign(AUM(kind=MessageKind.CHECKPOINT, state=state))
        # Stored without verification, as a directory written by other software would be.
        storage = MemoryStorage()
        storage.commit_verified_aums([genesis])
        storage.set_last_active_ancestor(genesis.hash())
        ours = Authority.open(storage)
        go = oracle.open([genesis.to_cbor()], lai=bytes(genesis.hash()))
        assert go["error_text"] is None
        ctx = f"kind={kind} foreign key first={before} built by {built_by}"

        node = rng.randbytes(32)
        nks = bytes.fromhex(oracle.nks_encode(tka_gen.direct_nks(signer_seed, node, None))["cbor"])
        go_text = _go_nka(oracle, go["handle"], node, nks)
        assert _ours(ours.state, node, nks) == go_text, ctx
        assert _bulk(ours.state, node, nks) == go_text, ctx
        if before:
            assert go_text == f"key: unknown key kind: {'Key?<2>' if kind == 2 else 'invalid'}"
        else:
            assert go_text is None

        # An update signed by the Ed25519 key: Inform looks its signer up the same way.
        update = _signer(signer).sign(
            AUM(kind=MessageKind.NO_OP, prev_aum_hash=bytes(genesis.hash()))
        )
        go_inform = oracle.inform(go["handle"], [update.to_cbor()])["error_text"]
        try:
            ours.inform([update])
            ours_inform = None
        except TKAError as err:
            ours_inform = str(err)
        assert ours_inform == go_inform, ctx
        oracle.close_authority(go["handle"])


# -- 3 ----------------------------------------------------------------------------------------


def _chain(rng: random.Random, n: int) -> tuple[Authority, list[AUM]]:
    key = SigningKey(rng.randbytes(32))
    auth, genesis = _authority([key])
    aums = [genesis]
    for _ in range(n):
        builder = UpdateBuilder(auth, _signer(key))
        builder.set_key_meta(bytes(key.verify_key), {"n": str(rng.random())})
        updates = builder.finalize()
        auth.inform(updates)
        aums.extend(updates)
    return auth, aums


def _go_open_dir(oracle: Oracle, directory: Path) -> str | None:
    go = oracle.open([], directory=str(directory))
    if go["error_text"] is None:
        oracle.close_authority(go["handle"])
        return str(go["head"])
    return None


def _ours_open_dir(directory: Path) -> tuple[str | None, str | None]:
    try:
        return Authority.open(FilesystemStorage(directory)).head.hex(), None
    except TKAError as err:
        return None, str(err)


def test_filesystem_file_in_the_wrong_directory_is_corrupt_for_both(
    oracle: Oracle, tmp_path: Path
) -> None:
    rng = random.Random(_seed())
    _, aums = _chain(rng, 4)
    for writer in ("go", "python"):
        directory = tmp_path / writer
        if writer == "go":
            oracle.call("fs_write", aums=[a.to_cbor().hex() for a in aums], dir=str(directory),
                        lai=bytes(aums[0].hash()).hex())
        else:
            store = FilesystemStorage(directory)
            store.commit_verified_aums(aums)
            store.set_last_active_ancestor(aums[0].hash())
        assert _go_open_dir(oracle, directory) is not None
        name = format_aum_hash(aums[2].hash())
        wrong = "ZZ" if not name.startswith("ZZ") else "YY"
        (directory / wrong).mkdir()
        shutil.move(directory / name[:2] / name, directory / wrong / name)
        head, err = _ours_open_dir(directory)
        assert _go_open_dir(oracle, directory) is None, writer  # Go refuses to open it
        assert head is None and err is not None, writer
        assert f"{wrong}/{name}" in err and "corrupt authority directory" in err
        assert "\n" not in err


def test_negative_purged_time_keeps_the_aum_live_for_both(
    oracle: Oracle, tmp_path: Path
) -> None:
    rng = random.Random(_seed())
    auth, aums = _chain(rng, 3)
    directory = tmp_path / "negative"
    store = FilesystemStorage(directory)
    store.commit_verified_aums(aums)
    store.set_last_active_ancestor(aums[0].hash())
    head = aums[-1]
    name = format_aum_hash(head.hash())
    record = StoredRecord(aum=head, created_unix=1_700_000_000, purged_unix=-5)
    (directory / name[:2] / name).write_bytes(record.to_cbor())
    ours, err = _ours_open_dir(directory)
    assert err is None
    assert ours == _go_open_dir(oracle, directory) == auth.head.hex()
    # A positive time purges it, for both.
    record = StoredRecord(aum=head, created_unix=1_700_000_000, purged_unix=5)
    (directory / name[:2] / name).write_bytes(record.to_cbor())
    ours, err = _ours_open_dir(directory)
    assert ours == _go_open_dir(oracle, directory) == aums[-2].hash().hex()


# -- 4 ----------------------------------------------------------------------------------------


def test_inform_reason_texts_for_bad_parents(oracle: Oracle) -> None:
    rng = random.Random(_seed())
    key = SigningKey(rng.randbytes(32))
    cases = {
        "no parent": lambda head: None,
        "empty parent": lambda head: b"",
        "longer, naming the head": lambda head: head + rng.randbytes(8),
        "shorter, a prefix of the head": lambda head: head[:16],
        "unknown": lambda head: rng.randbytes(32),
    }
    for what, parent_of in cases.items():
        auth, genesis = _authority([key])
        go = oracle.bootstrap(genesis.to_cbor())
        update = AUM(kind=MessageKind.NO_OP, prev_aum_hash=parent_of(bytes(genesis.hash())))
        update = _signer(key).sign(update)
        go_text = oracle.inform(go["handle"], [update.to_cbor()])["error_text"]
        try:
            auth.inform([update])
            ours = None
        except TKAError as err:
            ours = str(err)
        assert go_text is not None, what
        if "computing state" in go_text:
            # Storage's "not found" is worded by each store; the step that failed is the same.
            assert ours is not None and ours.startswith("update 0 computing state: "), what
        else:
            assert ours == go_text, what
        oracle.close_authority(go["handle"])


def test_checkpoint_duplicate_reasons_name_the_same_indices(oracle: Oracle) -> None:
    rng = random.Random(_seed())
    k = [ed25519_key(rng.randbytes(32)) for _ in range(5)]
    d = [rng.randbytes(32) for _ in range(5)]
    states = [
        State(disablement_values=tuple(d), keys=(k[0], k[1], k[2], k[3], k[0])),
        State(disablement_values=tuple(d), keys=(k[0], k[1], k[1], k[2], k[0])),
        State(disablement_values=(d[0], d[1], d[2], d[3], d[0]), keys=tuple(k)),
        State(disablement_values=(d[0], d[1][:7], d[2], d[0]), keys=tuple(k)),
        State(disablement_values=tuple(d),
              keys=(k[0], k[0], ed25519_key(rng.randbytes(32), votes=0))),
    ]
    for state in states:
        aum = AUM(kind=MessageKind.CHECKPOINT, prev_aum_hash=rng.randbytes(32), state=state)
        aum = aum.add_signature(Signature(key_id=rng.randbytes(32), signature=rng.randbytes(64)))
        go = oracle.aum_decode(aum.to_cbor())["static_error"]
        try:
            static_validate(aum)
            ours = None
        except TKAError as err:
            ours = str(err)
        assert go is not None and ours == go


# -- 5 ----------------------------------------------------------------------------------------


def test_builder_checkpoint_with_nothing_queued(oracle: Oracle) -> None:
    rng = random.Random(_seed())
    seed = rng.randbytes(32)
    key = SigningKey(seed)
    for extra in (CHECKPOINT_EVERY - 1, CHECKPOINT_EVERY):
        auth, genesis = _authority([key])
        go = oracle.bootstrap(genesis.to_cbor())
        updates = [genesis]
        for _ in range(extra):
            update = _signer(key).sign(
                AUM(kind=MessageKind.NO_OP, prev_aum_hash=bytes(updates[-1].hash()))
            )
            updates.append(update)
        auth.inform(updates[1:])
        assert oracle.inform(go["handle"], [u.to_cbor() for u in updates[1:]])["error_text"] is None
        ours = [a.to_cbor().hex() for a in UpdateBuilder(auth, _signer(key)).finalize()]
        theirs = oracle.call("builder", handle=go["handle"], seed=seed.hex(), ops=[])
        assert theirs["error_text"] is None
        assert ours == (theirs["aums"] or []), f"{extra} AUMs since the genesis checkpoint"
        assert (len(ours) == 1) == (extra >= CHECKPOINT_EVERY)
        oracle.close_authority(go["handle"])
