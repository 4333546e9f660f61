"""The appliance firmware's tailnet-lock rules (firmware_stub/core/authority.c, checks.c,
deeplink.c) against the Python verifier, through tests/firmware/authority_harness.c.

Every expectation is computed by the oracle (`verifier`: Authority.inform, verify_aum,
apply_verified, NodeKeySignature.sig_hash, validate_deeplink, public_key_class) on AUMs and
signatures made with real Ed25519 keys (PyNaCl); only the device's own policy (docs/appliance.md
docs/appliance.md §4-5: what it refuses to sign and why) is asserted directly.

The harness is built under ASan/UBSan in build/c, the tree `make test-c` uses (CMake, target
fw_authority_harness; already built there when `make test` gets here).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from verifier.aum import AUM, MessageKind
from verifier.authority import Authority
from verifier.deeplink import new_deeplink, validate_deeplink
from verifier.ed25519 import public_key_class
from verifier.errors import SignatureError, TKAError, ValidationError
from verifier.key import Key, Signature
from verifier.machine import apply_verified, genesis_state, verify_aum
from verifier.nks import NodeKeySignature, SigKind
from verifier.state import State
from verifier.storage.memory import MemoryStorage
from verifier.textforms import (
    format_aum_hash,
    format_node_public,
    format_tlpub,
    node_key_short,
)

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "c"
HARNESS = BUILD / "firmware_stub" / "fw_authority_harness"


# --- the device under test -------------------------------------------------------------------


@pytest.fixture(scope="session")
def harness_path() -> Path:
    subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(BUILD), "-DCMAKE_BUILD_TYPE=Debug",
         "-DTKA_SANITIZE=ON"],
        check=True, capture_output=True,
    )
    subprocess.run(
        ["cmake", "--build", str(BUILD), "--target", "fw_authority_harness", "-j2"],
        check=True, capture_output=True,
    )
    return HARNESS


class Device:
    def __init__(self, path: Path) -> None:
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
                   UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
        self.proc = subprocess.Popen(
            [str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def call(self, *words: str) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(" ".join(words) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the harness died on {words[0]} (exit {self.proc.poll()})"
        result: dict[str, object] = json.loads(line)
        return result

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0, "the harness failed (sanitizer report above?)"


@pytest.fixture
def device(harness_path: Path) -> Iterator[Device]:
    dev = Device(harness_path)
    yield dev
    dev.close()


def hexs(aums: Sequence[AUM]) -> str:
    return ",".join(a.to_cbor().hex() for a in aums)


# --- a tailnet with real keys ----------------------------------------------------------------


@dataclass
class Net:
    sks: list[SigningKey]
    authority: Authority
    genesis: AUM
    rng: random.Random
    states: dict[bytes, State] = field(default_factory=dict)  # of AUMs not yet fed

    def pk(self, i: int) -> bytes:
        return bytes(self.sks[i].verify_key)

    def sk_for(self, public: bytes) -> SigningKey:
        return next(s for s in self.sks if bytes(s.verify_key) == public)

    def sign(self, aum: AUM, signers: Sequence[bytes]) -> AUM:
        digest = aum.sig_hash()
        sigs = [Signature(pk, self.sk_for(pk).sign(digest).signature) for pk in signers]
        return aum.with_signatures([*aum.signatures, *sigs])

    def state_at(self, h: bytes) -> State:
        if bytes(h) in self.states:
            return self.states[bytes(h)]
        return self.authority.state_at(h)


def make_net(seed: int, n_keys: int = 5, trusted: Sequence[int] = (0, 1, 2),
             votes: Sequence[int] | None = None, n_dis: int = 2) -> Net:
    rng = random.Random(seed)
    sks = [SigningKey(rng.randbytes(32)) for _ in range(n_keys)]
    votes = votes or [rng.randint(1, 4) for _ in trusted]
    keys = tuple(
        Key(kind=1, votes=v, public=bytes(sks[i].verify_key),
            meta={"purpose": "pre-auth key"} if i == 1 else {})
        for i, v in zip(trusted, votes, strict=True)
    )
    state = State(
        disablement_values=tuple(rng.randbytes(32) for _ in range(n_dis)),
        keys=keys,
        state_id1=rng.getrandbits(64),
        state_id2=rng.getrandbits(64),
    )
    unsigned = AUM(kind=MessageKind.CHECKPOINT, state=state)
    genesis = unsigned.add_signature(
        Signature(bytes(sks[trusted[0]].verify_key),
                  sks[trusted[0]].sign(unsigned.sig_hash()).signature)
    )
    authority = Authority.bootstrap(MemoryStorage(), genesis)
    return Net(sks, authority, genesis, rng)


def enroll(device: Device, net: Net) -> dict[str, object]:
    got = device.call("enroll", net.genesis.to_cbor().hex())
    assert got["code"] == 0, got
    assert got["head"] == bytes(net.genesis.hash()).hex()
    return got


def device_state(device: Device) -> dict[str, object]:
    got = device.call("state")
    return {k: v for k, v in got.items() if k not in ("cmd", "code", "error", "message")}


def expect_state(got: dict[str, object], net: Net) -> None:
    auth = net.authority
    assert got["head"] == bytes(auth.head).hex()
    history = got["history"]
    assert isinstance(history, list) and history[-1] == got["head"]
    st = auth.state
    assert got["keys"] == [
        {"public": None if k.public is None else k.public.hex(), "kind": k.kind,
         "votes": k.votes,
         "meta_bytes": sum(len(a.encode()) + len(b.encode()) for a, b in k.meta.items())}
        for k in st.trusted_keys
    ]
    assert got["disablement"] == [v.hex() for v in st.disablement_values or ()]
    assert got["state_id1"] == str(st.state_id1) and got["state_id2"] == str(st.state_id2)


def on_chain(auth: Authority, new: set[bytes]) -> int:
    """How many of the `new` hashes are on the oracle's active chain (back from its head)."""
    wanted = set(new)
    h: bytes | None = bytes(auth.head)
    count = 0
    for _ in range(10_000):
        if h is None:
            break
        if h in wanted:
            count += 1
            wanted.discard(h)
        aum = auth.storage.aum(h)
        if aum is None:
            break
        h = aum.prev_aum_hash
    return count


def feed(device: Device, net: Net, batch: Sequence[AUM]) -> dict[str, object]:
    """Informs the oracle and the device of the same batch and compares the outcomes."""
    before = device_state(device)
    new = {bytes(a.hash()) for a in batch if net.authority.storage.aum(a.hash()) is None}
    try:
        net.authority.inform(list(batch))
        err: TKAError | None = None
    except TKAError as e:
        err = e
    got = device.call("update", hexs(batch))
    if err is None:
        assert got["code"] == 0, (got["message"], [a.kind for a in batch])
        expect_state(device_state(device), net)
        applied = on_chain(net.authority, new)
        assert got["applied"] == applied
        assert got["ignored"] == len(batch) - applied
    else:
        assert got["code"] != 0, f"the oracle refused ({err}) but the device accepted"
        if "computing state" in str(err):
            assert got["error"] == "stale_authority", got
        else:
            assert got["error"] == "invalid_message", got
            assert got["message"] == str(err)
        assert device_state(device) == before, "a refused update changed the device"
    for a in batch:
        net.states.pop(bytes(a.hash()), None)
    return got


# --- random AUMs -----------------------------------------------------------------------------


def trusted_publics(state: State) -> list[bytes]:
    return [k.public for k in state.trusted_keys if k.public is not None]


def random_aum(net: Net, parent: bytes, pstate: State, head_state: State) -> AUM:
    rng = net.rng
    pubs = trusted_publics(pstate)
    untrusted = [net.pk(i) for i in range(len(net.sks)) if net.pk(i) not in pubs]
    choice = rng.random()
    aum: AUM
    if choice < 0.25 and untrusted:
        meta = {"purpose": "pre-auth key", "n": str(rng.randint(0, 99))} if rng.random() < 0.3 \
            else {}
        aum = AUM(kind=MessageKind.ADD_KEY, prev_aum_hash=parent,
                  key=Key(kind=1, votes=rng.randint(1, 4), public=rng.choice(untrusted),
                          meta=meta))
    elif choice < 0.4 and len(pubs) > 1:
        aum = AUM(kind=MessageKind.REMOVE_KEY, prev_aum_hash=parent, key_id=rng.choice(pubs))
    elif choice < 0.6:
        votes = rng.randint(1, 6) if rng.random() < 0.7 else None
        meta = {"note": "é" * rng.randint(1, 5)} if votes is None or rng.random() < 0.3 else None
        aum = AUM(kind=MessageKind.UPDATE_KEY, prev_aum_hash=parent, key_id=rng.choice(pubs),
                  votes=votes, meta=meta)
    elif choice < 0.75:
        keys = list(pstate.trusted_keys)
        if len(keys) > 1 and rng.random() < 0.5:
            keys.pop(rng.randrange(len(keys)))
        if rng.random() < 0.3:
            i = rng.randrange(len(keys))
            keys[i] = keys[i].replace(votes=rng.randint(1, 9))
        aum = AUM(kind=MessageKind.CHECKPOINT, prev_aum_hash=parent,
                  state=pstate.replace(last_aum_hash=None, keys=tuple(keys)))
    else:
        aum = AUM(kind=MessageKind.NO_OP, prev_aum_hash=parent)
    signers = rng.sample(pubs, rng.randint(1, min(3, len(pubs))))
    return net.sign(aum, signers)


INVALID_CLASSES = [
    "bad_signature", "untrusted_signer", "unsigned", "votes_zero", "votes_too_many",
    "add_with_key_id", "remove_without_id", "update_without_change", "checkpoint_parent",
    "checkpoint_no_disablement", "checkpoint_duplicate_key", "checkpoint_duplicate_value",
    "checkpoint_short_value", "short_key_id", "empty_parent", "add_existing", "remove_unknown",
    "update_unknown", "update_votes_5000", "checkpoint_state_id", "unknown_parent",
    "missing_parent", "key_kind", "meta_too_big", "checkpoint_with_key", "checkpoint_no_keys",
]


def invalid_aum(net: Net, cls: str, parent: bytes, pstate: State) -> AUM:
    rng = net.rng
    pubs = trusted_publics(pstate)
    net.sks.append(SigningKey(rng.randbytes(32)))  # a key nobody trusts
    outsider = net.pk(len(net.sks) - 1)
    signer = [rng.choice(pubs)]
    base = AUM(kind=MessageKind.NO_OP, prev_aum_hash=parent)
    cp_state = pstate.replace(last_aum_hash=None)

    def cp(**changes: object) -> AUM:
        return AUM(kind=MessageKind.CHECKPOINT, prev_aum_hash=parent,
                   state=cp_state.replace(**changes))

    def add(**changes: object) -> AUM:
        key = Key(kind=1, votes=1, public=outsider)
        return AUM(kind=MessageKind.ADD_KEY, prev_aum_hash=parent,
                   key=key.replace(**changes))  # type: ignore[arg-type]

    if cls == "bad_signature":
        good = net.sign(base, signer)
        sig = bytearray(good.signatures[0].signature or b"")
        sig[5] ^= 0x40
        return good.with_signatures([Signature(good.signatures[0].key_id, bytes(sig))])
    if cls == "untrusted_signer":
        return net.sign(base, [outsider])
    if cls == "unsigned":
        return base
    made = {
        "votes_zero": lambda: add(votes=0),
        "votes_too_many": lambda: add(votes=4097),
        "key_kind": lambda: add(kind=7),
        "meta_too_big": lambda: add(meta={"k": "v" * 600}),
        "add_with_key_id": lambda: add().replace(key_id=b"x"),
        "remove_without_id": lambda: AUM(kind=MessageKind.REMOVE_KEY, prev_aum_hash=parent),
        "update_without_change": lambda: AUM(kind=MessageKind.UPDATE_KEY, prev_aum_hash=parent,
                                             key_id=pubs[0]),
        "checkpoint_parent": lambda: cp(last_aum_hash=bytes(32)),
        "checkpoint_no_disablement": lambda: cp(disablement_values=()),
        "checkpoint_duplicate_key": lambda: cp(keys=(*cp_state.trusted_keys,
                                                     cp_state.trusted_keys[0])),
        "checkpoint_duplicate_value": lambda: cp(disablement_values=(
            *(cp_state.disablement_values or ()), (cp_state.disablement_values or (b"",))[0])),
        "checkpoint_short_value": lambda: cp(disablement_values=(b"\x01" * 31,)),
        "checkpoint_no_keys": lambda: cp(keys=()),
        "checkpoint_with_key": lambda: cp().replace(key=Key(kind=1, votes=1,
                                                                         public=outsider)),
        "checkpoint_state_id": lambda: cp(state_id1=cp_state.state_id1 ^ 1),
        "empty_parent": lambda: base.replace(prev_aum_hash=b""),
        "add_existing": lambda: AUM(kind=MessageKind.ADD_KEY, prev_aum_hash=parent,
                                    key=Key(kind=1, votes=1, public=pubs[0])),
        "remove_unknown": lambda: AUM(kind=MessageKind.REMOVE_KEY, prev_aum_hash=parent,
                                      key_id=outsider),
        "update_unknown": lambda: AUM(kind=MessageKind.UPDATE_KEY, prev_aum_hash=parent,
                                      key_id=outsider, votes=2),
        "update_votes_5000": lambda: AUM(kind=MessageKind.UPDATE_KEY, prev_aum_hash=parent,
                                         key_id=pubs[0], votes=5000),
        "unknown_parent": lambda: base.replace(prev_aum_hash=rng.randbytes(32)),
        "missing_parent": lambda: base.replace(prev_aum_hash=None),
    }
    if cls == "short_key_id":
        good = net.sign(base, signer)
        return good.with_signatures([Signature((good.signatures[0].key_id or b"")[:31],
                                               good.signatures[0].signature)])
    return net.sign(made[cls](), signer)


def random_batch(net: Net, history: Sequence[str], invalid: str | None) -> list[AUM]:
    rng = net.rng
    batch: list[AUM] = []
    head = bytes(net.authority.head)
    parents = [head]  # candidates, newest last
    for h in history[-6:-1]:
        parents.insert(0, bytes.fromhex(h))
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        parent = parents[-1] if r < 0.6 else rng.choice(parents)
        pstate = net.state_at(parent)
        aum = random_aum(net, parent, pstate, net.authority.state)
        try:
            verify_aum(pstate, aum)
            net.states[bytes(aum.hash())] = apply_verified(pstate, aum)
            parents.append(bytes(aum.hash()))
        except TKAError:
            pass  # a random change the rules refuse: fed anyway, the whole batch is refused
        batch.append(aum)
    if invalid is not None:
        parent = rng.choice(parents)
        bad = invalid_aum(net, invalid, parent, net.state_at(parent))
        batch.insert(rng.randint(0, len(batch)), bad)
    return batch


# --- authority tracking ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(24))
def test_random_chains_and_forks_track_the_oracle(device: Device, seed: int) -> None:
    net = make_net(1000 + seed)
    enroll(device, net)
    classes = list(INVALID_CLASSES)
    net.rng.shuffle(classes)
    for step in range(12):
        history = device_state(device)["history"]
        assert isinstance(history, list)
        invalid = classes[step] if net.rng.random() < 0.35 else None
        feed(device, net, random_batch(net, history, invalid))
        rt = device.call("roundtrip")
        assert rt["code"] == 0 and rt["same"] is True


@pytest.mark.parametrize("cls", INVALID_CLASSES)
def test_every_invalid_class_is_refused_with_the_oracles_text(device: Device, cls: str) -> None:
    net = make_net(77, trusted=(0, 1))
    enroll(device, net)
    head = bytes(net.authority.head)
    good = net.sign(AUM(kind=MessageKind.NO_OP, prev_aum_hash=head), [net.pk(0)])
    feed(device, net, [good])
    parent = bytes(good.hash())
    bad = invalid_aum(net, cls, parent, net.authority.state)
    follow = net.sign(AUM(kind=MessageKind.NO_OP, prev_aum_hash=parent), [net.pk(1)])
    # The bad AUM in the middle of otherwise valid ones: all or nothing.
    got = feed(device, net, [follow, bad])
    assert got["code"] != 0
    with pytest.raises(TKAError):
        net.authority.inform([bad])


def test_remove_last_key_is_refused(device: Device) -> None:
    net = make_net(5, trusted=(0,))
    enroll(device, net)
    aum = net.sign(AUM(kind=MessageKind.REMOVE_KEY, prev_aum_hash=bytes(net.authority.head),
                       key_id=net.pk(0)), [net.pk(0)])
    got = feed(device, net, [aum])
    assert "cannot remove the last key in the state" in str(got["message"])


def _child(net: Net, parent: bytes, signers: Sequence[int], kind: int = MessageKind.NO_OP,
           **fields: object) -> AUM:
    aum = AUM(kind=kind, prev_aum_hash=parent, **fields)  # type: ignore[arg-type]
    return net.sign(aum, [net.pk(i) for i in signers])


@pytest.mark.parametrize("together", [False, True])
def test_fork_choice_by_weight_then_remove_key_then_hash(device: Device, together: bool) -> None:
    net = make_net(9, trusted=(0, 1, 2), votes=(1, 2, 2))
    enroll(device, net)
    head = bytes(net.authority.head)
    light = _child(net, head, [0])                        # weight 1
    triple = _child(net, head, [0, 0, 0])                 # weight 1: a signer counts once
    heavy = _child(net, head, [1])                        # weight 2
    heavier = _child(net, head, [0, 1, 1])                # weight 3
    for batch in ([light, triple, heavy],) if together else ([light], [triple], [heavy]):
        feed(device, net, batch)
    assert bytes(net.authority.head) == bytes(heavy.hash())
    feed(device, net, [heavier])
    assert bytes(net.authority.head) == bytes(heavier.hash())
    # Equal weight: RemoveKey beats any other kind, whatever the hashes.
    base = bytes(net.authority.head)
    remove = _child(net, base, [1], MessageKind.REMOVE_KEY, key_id=net.pk(0))
    others = [_child(net, base, [2], MessageKind.UPDATE_KEY, key_id=net.pk(0), votes=v)
              for v in (3, 4, 5)]
    feed(device, net, [*others, remove] if together else others)
    if not together:
        feed(device, net, [remove])
    assert bytes(net.authority.head) == bytes(remove.hash())
    # Equal weight, same kind: the lowest hash.
    base = bytes(net.authority.head)
    siblings = [_child(net, base, [1], MessageKind.UPDATE_KEY, key_id=net.pk(2), votes=v)
                for v in (1, 2, 3, 4)]
    feed(device, net, siblings)
    assert bytes(net.authority.head) == min(bytes(s.hash()) for s in siblings)
    # A later, heavier sibling of an AUM deep in the history moves the head back there.
    history = device_state(device)["history"]
    assert isinstance(history, list)
    fork_at = bytes.fromhex(history[1])
    late = _child(net, fork_at, [0, 1, 2])
    got = feed(device, net, [late])
    assert got["applied"] == 1 and bytes(net.authority.head) == bytes(late.hash())


def test_children_of_a_losing_branch_in_the_same_update(device: Device) -> None:
    net = make_net(10, trusted=(0, 1), votes=(1, 3))
    enroll(device, net)
    head = bytes(net.authority.head)
    winner = _child(net, head, [1])
    loser = _child(net, head, [0])
    loser_child = _child(net, bytes(loser.hash()), [0])
    got = feed(device, net, [loser, loser_child, winner])
    assert got["applied"] == 1 and got["ignored"] == 2
    # An invalid AUM on the losing branch still refuses the whole update, as in the reference.
    net2 = make_net(10, trusted=(0, 1), votes=(1, 3))
    device.call("reset")
    enroll(device, net2)
    bad = invalid_aum(net2, "bad_signature", bytes(loser.hash()), net2.authority.state)
    got = feed(device, net2, [loser, bad, winner])
    assert got["code"] != 0


@pytest.mark.parametrize("wins", [True, False])
def test_revocation_checkpoint(device: Device, wins: bool) -> None:
    net = make_net(11, trusted=(0, 1, 2), votes=(2, 2, 1))
    enroll(device, net)
    fork_at = bytes(net.authority.head)
    # The compromised key 2 adds itself a friend (cosigned by key 1 when the recovery is to
    # lose: weight 3 against the recovery's 2) and re-weights itself.
    a1 = _child(net, fork_at, [2] if wins else [2, 1], MessageKind.ADD_KEY,
                key=Key(kind=1, votes=1, public=net.pk(3)))
    a2 = _child(net, bytes(a1.hash()), [2], MessageKind.UPDATE_KEY, key_id=net.pk(2), votes=4)
    feed(device, net, [a1, a2])
    # Recovery: the head state without key 2, forking from before its AUMs, signed by key 0.
    state = net.authority.state
    kept = tuple(k for k in state.trusted_keys if k.public != net.pk(2))
    rec = AUM(kind=MessageKind.CHECKPOINT, prev_aum_hash=fork_at,
              state=state.replace(last_aum_hash=None, keys=kept))
    rec = net.sign(rec, [net.pk(0)])
    got = feed(device, net, [rec])
    on = bytes(net.authority.head) == bytes(rec.hash())
    assert on is wins and got["applied"] == (1 if wins else 0)
    publics = {k.public for k in net.authority.state.trusted_keys}
    assert (net.pk(2) in publics) is not wins  # revoked only when the recovery wins


def test_unknown_parent_is_stale(device: Device) -> None:
    net = make_net(12)
    enroll(device, net)
    orphan = _child(net, os.urandom(32), [0])
    got = feed(device, net, [orphan])
    assert got["error"] == "stale_authority"
    # A parent that comes later in the same update is not known yet either.
    a = _child(net, bytes(net.authority.head), [0])
    b = _child(net, bytes(a.hash()), [0])
    got = device.call("update", hexs([b, a]))
    assert got["error"] == "stale_authority"


def test_known_aums_are_ignored_and_empty_updates_refused(device: Device) -> None:
    net = make_net(13)
    enroll(device, net)
    a = _child(net, bytes(net.authority.head), [0])
    feed(device, net, [a])
    got = feed(device, net, [net.genesis, a, a])
    assert got["applied"] == 0 and got["ignored"] == 3
    got = device.call("update", "-")
    with pytest.raises(ValidationError) as err:
        net.authority.inform([])
    assert got["code"] != 0 and got["message"] == str(err.value)


def test_non_canonical_aums_are_refused(device: Device) -> None:
    net = make_net(14)
    enroll(device, net)
    a = _child(net, bytes(net.authority.head), [0])
    data = bytearray(a.to_cbor())
    data[1:3] = b"\x01\x18\x03"[:2]  # "01 03" -> "01 18": kind in a long head, truncated
    got = device.call("update", data.hex())
    assert got["error"] == "invalid_message" and "canonical" in str(got["message"])


def test_history_is_bounded_by_entries_and_arena(device: Device) -> None:
    # Small states: the newest 64 entries.
    net = make_net(15)
    enroll(device, net)
    chain: list[AUM] = []
    parent = bytes(net.authority.head)
    for _ in range(70):
        chain.append(_child(net, parent, [0]))
        parent = bytes(chain[-1].hash())
    feed(device, net, chain[:40])
    feed(device, net, chain[40:])
    history = device_state(device)["history"]
    assert history == [bytes(a.hash()).hex() for a in chain[-64:]]
    # A fork from a forgotten AUM is stale; from a remembered one it is judged.
    old = _child(net, bytes(chain[3].hash()), [0, 1, 2])
    assert device.call("update", hexs([old]))["error"] == "stale_authority"
    recent = _child(net, bytes(chain[10].hash()), [0, 1, 2])
    feed(device, net, [recent])
    # Large states: the arena holds fewer.
    big = make_net(16, n_keys=300, trusted=tuple(range(300)), votes=[1] * 300)
    device.call("reset")
    enroll(device, big)
    parent = bytes(big.authority.head)
    nops = []
    for _ in range(12):
        nops.append(_child(big, parent, [0]))
        parent = bytes(nops[-1].hash())
    feed(device, big, nops)
    history = device_state(device)["history"]
    assert isinstance(history, list)
    assert 1 < len(history) < 13
    assert history == [bytes(a.hash()).hex() for a in nops[-len(history):]]
    rt = device.call("roundtrip")
    assert rt["same"] is True and isinstance(rt["len"], int) and rt["len"] <= int(str(rt["max"]))


def test_device_limits_the_reference_does_not_have(device: Device) -> None:
    """Documented deviations (docs/appliance.md §4.1): what the device cannot hold it refuses."""
    net = make_net(17)
    enroll(device, net)
    long_key = AUM(kind=MessageKind.ADD_KEY, prev_aum_hash=bytes(net.authority.head),
                   key=Key(kind=1, votes=1, public=b"\x07" * 65))
    long_key = net.sign(long_key, [net.pk(0)])
    net.authority.inform([long_key])  # the reference trusts a 65-byte key
    got = device.call("update", hexs([long_key]))
    assert got["error"] == "invalid_message" and "65-byte public key" in str(got["message"])


def test_serialization_round_trip_and_corruption(device: Device) -> None:
    empty = device.call("roundtrip")
    assert empty["same"] is True and empty["enrolled"] is False
    net = make_net(18)
    enroll(device, net)
    feed(device, net, [_child(net, bytes(net.authority.head), [0, 1])])
    rt = device.call("roundtrip")
    assert rt["same"] is True and rt["head"] == bytes(net.authority.head).hex()
    blob = bytes.fromhex(str(rt["blob"]))
    arena = 12 + 49 * len(rt["history"])  # type: ignore[arg-type]
    bad_offset = blob[:53] + b"\xff\xff\xff\x7f" + blob[57:]
    bad_state = blob[:arena] + b"\xff\xff" + blob[arena + 2:]
    for bad in (blob[:-1], blob + b"\x00", b"XKAA" + blob[4:], blob[:4] + b"\x02" + blob[5:],
                bad_offset, bad_state, b""):
        got = device.call("load", bad.hex())
        assert got["error"] == "storage" and got["enrolled"] is False
    got = device.call("load", blob.hex())
    assert got["code"] == 0 and got["head"] == bytes(net.authority.head).hex()


def test_enrollment_checks_and_screen(device: Device) -> None:
    net = make_net(19, trusted=(0, 1), votes=(2, 3), n_dis=3)
    st = net.genesis.state
    assert st is not None
    unsigned = net.genesis.with_signatures([])
    outsider = net.sign(unsigned, [net.pk(4)])
    bad_sig = net.genesis.with_signatures(
        [Signature(net.pk(0), bytes(64))])
    not_cp = net.sign(AUM(kind=MessageKind.NO_OP), [net.pk(0)])
    for aum in (unsigned, outsider, bad_sig, not_cp):
        got = device.call("enroll", aum.to_cbor().hex())
        assert got["error"] == "invalid_message" and got["enrolled"] is False
        try:
            Authority.bootstrap(MemoryStorage(), aum)
        except TKAError as e:
            assert got["message"] == str(e)
        else:  # pragma: no cover
            pytest.fail("the oracle bootstraps what the device refused")
    got = enroll(device, net)
    assert got["hash"] == bytes(net.genesis.hash()).hex()
    assert got["sighash"] == net.genesis.sig_hash().hex()
    screen = "\n".join(str(x) for x in got["screen"])  # type: ignore[union-attr]
    assert format_aum_hash(net.genesis.hash()) in screen
    for k in st.trusted_keys:
        assert f"{format_tlpub(k.public or b'')} votes {k.votes}" in screen
    assert "Disablement values: 3" in screen
    assert f"StateID1: {st.state_id1}" in screen and f"StateID2: {st.state_id2}" in screen


# --- node-key signatures ---------------------------------------------------------------------


def nks_direct(net: Net, signer: int, node: bytes, rotation: bytes | None) -> NodeKeySignature:
    return NodeKeySignature(kind=SigKind.DIRECT, pubkey=b"np" + node, key_id=net.pk(signer),
                            wrapping_pubkey=rotation or b"")


def check_nks(device: Device, net: Net, signer: int, nks: NodeKeySignature | bytes,
              head: bytes | None = None, link: str | None = None) -> dict[str, object]:
    data = nks if isinstance(nks, bytes) else nks.to_cbor()
    return device.call("check_nks", net.pk(signer).hex(), data.hex(),
                       (head or bytes(net.authority.head)).hex(),
                       link.encode().hex() if link is not None else "-")


def test_check_nks_accepts_and_shows(device: Device) -> None:
    net = make_net(20)
    enroll(device, net)
    node = os.urandom(32)
    rot = bytes(SigningKey.generate().verify_key)
    nks = nks_direct(net, 1, node, rot)
    got = check_nks(device, net, 1, nks)
    assert got["code"] == 0, got
    assert got["sighash"] == nks.sig_hash().hex()
    screen = "\n".join(str(x) for x in got["screen"])  # type: ignore[union-attr]
    assert format_node_public(node) in screen
    assert node_key_short(node) in screen
    assert format_tlpub(rot) in screen
    assert format_tlpub(net.pk(1)) in screen
    assert format_aum_hash(net.authority.head) in screen
    no_rot = nks_direct(net, 1, node, None)
    got = check_nks(device, net, 1, no_rot)
    assert got["code"] == 0 and "Rotation key: none" in str(got["screen"])
    cred = NodeKeySignature(kind=SigKind.CREDENTIAL, key_id=net.pk(0), wrapping_pubkey=rot)
    got = check_nks(device, net, 0, cred)
    assert got["code"] == 0 and got["sighash"] == cred.sig_hash().hex()
    assert "can add nodes" in str(got["screen"]) and format_tlpub(rot) in str(got["screen"])


def _torsion_keys() -> dict[str, bytes]:
    import sys
    sys.path.insert(0, str(ROOT / "tests" / "native"))
    import ed25519_testkit as tk

    real = tk.decode_lenient(bytes(SigningKey.generate().verify_key))
    assert real is not None
    mixed = tk.encode(tk.add(real, tk.torsion_points()[1]))
    noncanonical = ((tk.P + 3).to_bytes(32, "little"))
    not_point = next(bytes([i]) + bytes(31) for i in range(2, 255)
                     if tk.decode_lenient(bytes([i]) + bytes(31)) is None)
    return {
        "zero": bytes(32),
        "small_order": tk.low_order_encodings()[4],
        "mixed_order": mixed,
        "noncanonical": noncanonical,
        "not_point": not_point,
    }


def test_check_nks_refusals(device: Device) -> None:
    net = make_net(21, trusted=(0, 1, 2))
    enroll(device, net)
    node = os.urandom(32)
    rot = bytes(SigningKey.generate().verify_key)
    good = nks_direct(net, 1, node, rot)

    def refused(got: dict[str, object], error: str, text: str) -> None:
        assert got["error"] == error, got
        assert text in str(got["message"]), got

    # Stale head, untrusted key.
    refused(check_nks(device, net, 1, good, head=os.urandom(32)), "stale_authority",
            format_aum_hash(net.authority.head))
    untrusted = nks_direct(net, 4, node, rot)
    refused(check_nks(device, net, 4, untrusted), "policy_refused", "not trusted at the head")
    # Bad rotation and wrapping keys, each class as the classifier names it.
    for name, key in _torsion_keys().items():
        expect = "zero" if name == "zero" else name
        assert expect == "zero" or public_key_class(key) == name
        got = check_nks(device, net, 1, nks_direct(net, 1, node, key))
        refused(got, "policy_refused", "anyone could forge")
        cred = NodeKeySignature(kind=SigKind.CREDENTIAL, key_id=net.pk(1), wrapping_pubkey=key)
        refused(check_nks(device, net, 1, cred), "policy_refused", "wrapping key")
    refused(check_nks(device, net, 1, nks_direct(net, 1, node, rot[:31])), "invalid_message",
            "bad rotation key length: 31")
    # Structure.
    rotation = NodeKeySignature(kind=SigKind.ROTATION, pubkey=b"np" + node, nested=good)
    refused(check_nks(device, net, 1, rotation), "invalid_message", "not rotation")
    nested = good.replace(nested=good)
    refused(check_nks(device, net, 1, nested), "invalid_message", "cannot nest")
    signed = good.replace(signature=net.sks[1].sign(good.sig_hash()).signature)
    refused(check_nks(device, net, 1, signed), "invalid_message", "already signed")
    refused(check_nks(device, net, 2, good), "invalid_message", "not the signing key")
    refused(check_nks(device, net, 1, good.replace(key_id=b"")), "invalid_message",
            "no keyID")
    refused(check_nks(device, net, 1, good.replace(pubkey=b"")), "invalid_message",
            "must name a node key")
    refused(check_nks(device, net, 1, good.replace(pubkey=b"xx" + node)),
            "invalid_message", "not a node key")
    refused(check_nks(device, net, 1, good.replace(kind=7)), "invalid_message",
            "not Sig?<7>")
    cred = NodeKeySignature(kind=SigKind.CREDENTIAL, key_id=net.pk(1))
    refused(check_nks(device, net, 1, cred), "invalid_message", "needs a wrapping key")
    cred = NodeKeySignature(kind=SigKind.CREDENTIAL, pubkey=b"np" + node, key_id=net.pk(1),
                            wrapping_pubkey=rot)
    refused(check_nks(device, net, 1, cred), "invalid_message", "names no node key")
    refused(check_nks(device, net, 1, b"\xa1\x01\x18\x01"), "invalid_message", "canonical")
    # After the key is removed at the head, it is no longer trusted.
    rm = _child(net, bytes(net.authority.head), [0], MessageKind.REMOVE_KEY, key_id=net.pk(1))
    feed(device, net, [rm])
    refused(check_nks(device, net, 1, good), "policy_refused", "not trusted at the head")


def test_check_nks_deeplinks(device: Device) -> None:
    net = make_net(22)
    enroll(device, net)
    sid = net.authority.state.state_id1
    node = os.urandom(32)
    rot = bytes(SigningKey.generate().verify_key)
    nks = nks_direct(net, 1, node, rot)
    nk, tp = format_node_public(node), format_tlpub(rot)
    link = new_deeplink(sid, nk, tp, "büro-laptop\x1b[2J", "linux", "ann@example.com")
    got = check_nks(device, net, 1, nks, link=link)
    assert got["code"] == 0, got
    screen = [str(x) for x in got["screen"]]  # type: ignore[union-attr]
    assert "  Device: büro-laptop\\x1b[2J" in screen  # escaped, never raw
    assert "  OS: linux" in screen and "  Login: ann@example.com" in screen
    # A link for another authority, another node, another rotation key, or a damaged one.
    other = new_deeplink(sid ^ 1, nk, tp, "x", "linux", "y")
    got = check_nks(device, net, 1, nks, link=other)
    assert got["error"] == "invalid_message" and "hmac authentication failed" in str(
        got["message"])
    other_node = new_deeplink(sid, format_node_public(os.urandom(32)), tp, "x", "l", "y")
    assert "another node key" in str(check_nks(device, net, 1, nks, link=other_node)["message"])
    other_rot = new_deeplink(sid, nk, format_tlpub(net.pk(0)), "x", "l", "y")
    assert "another rotation key" in str(check_nks(device, net, 1, nks, link=other_rot)["message"])
    no_rot = nks_direct(net, 1, node, None)
    assert "another rotation key" in str(check_nks(device, net, 1, no_rot, link=link)["message"])
    cred = NodeKeySignature(kind=SigKind.CREDENTIAL, key_id=net.pk(1), wrapping_pubkey=rot)
    assert "credential" in str(check_nks(device, net, 1, cred, link=link)["message"])
    assert check_nks(device, net, 1, nks, link=link[:-1])["error"] == "invalid_message"


def _deeplink(device: Device, sid: int, url: str | bytes) -> dict[str, object]:
    raw = url.encode() if isinstance(url, str) else url
    return device.call("deeplink", str(sid), raw.hex() if raw else "-")


def _conservative(url: bytes) -> bool:
    """Links the device refuses although the Python oracle may accept them (deeplink.h):
    non-printable bytes, ";" or malformed %-escapes in the query, used values that are not
    UTF-8, and an hm with whitespace (bytes.fromhex skips it, Go's hex decoder does not)."""
    if any(b < 0x21 or b > 0x7E for b in url):
        return True
    rest = url.decode("ascii").split("#", 1)[0]
    if "?" not in rest:
        return False
    query = rest.split("?", 1)[1]
    if ";" in query or re.search(r"%(?![0-9A-Fa-f]{2})", query):
        return True
    seen: set[str] = set()
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        name = urllib.parse.unquote_plus(name)
        if name not in ("nk", "tp", "dn", "os", "em", "hm") or name in seen:
            continue
        seen.add(name)
        raw = urllib.parse.unquote_to_bytes(value.replace("+", " "))
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return True
        if name == "hm" and any(c in raw for c in b" \t\n\r\x0b\x0c"):
            return True
    return False


def test_deeplink_validation_matches_the_oracle(device: Device) -> None:
    rng = random.Random(23)
    sid = rng.getrandbits(64)
    fields = ("nodekey:" + os.urandom(32).hex(), "tlpub:" + os.urandom(32).hex(),
              "Ann's laptop (ü) & co", "macOS 15", "ann+tag@example.com")
    url = new_deeplink(sid, *fields)
    got = _deeplink(device, sid, url)
    assert got["valid"] is True
    assert [bytes.fromhex(str(got[k])).decode() for k in ("nk", "tp", "dn", "os", "em")] == list(
        fields)
    # Hand-made variants the reference accepts or refuses, each compared with the oracle.
    mac = url.split("hm=")[1].split("&")[0]
    variants = [
        url.replace("tailscale://", "TailScale://"),
        url.replace("sign-device", "sign-device:80"),
        url.replace("/v1/", "/v1"),
        url.replace("/v1/", "/v2/"),
        url.replace("/v1/", "/v1/x"),
        url.replace("/v1/", "//v1/"),
        url + "#fragment",
        url.replace("?", "#?"),
        url + "&nk=nodekey:" + "00" * 32,
        url.replace("&os=macOS+15", ""),
        url.replace("dn=", "dn=x"),
        url.replace(mac, mac.upper()),
        url.replace(mac, mac[:-2]),
        url.replace(mac, mac + "00"),
        url.replace(mac, "zz" + mac[2:]),
        url.replace("hm=" + mac, "hm="),
        url.replace("em=", "xx="),
        "https://sign-device/v1/?" + url.split("?")[1],
        "tailscale:sign-device/v1/?" + url.split("?")[1],
        url.replace("nk=", "n%6B="),
        url + "&&&",
        url.replace("&", "&&"),
    ]
    for v in variants:
        want = validate_deeplink(v, sid)
        got = _deeplink(device, sid, v)
        assert got["valid"] is want.valid, (v, got, want)
        if not want.valid:
            assert got["error"] == want.error, v
    # Random damage: where the oracle decides, the device agrees (stricter only as documented).
    raw = url.encode()
    for _ in range(400):
        b = bytearray(raw)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            op = rng.random()
            if op < 0.4:
                b[i] = rng.choice(b"%&=+;#?/:aA0 \x00\xff")
            elif op < 0.7:
                del b[i]
            else:
                b.insert(i, rng.randrange(256))
        want_valid = False
        try:
            want_valid = validate_deeplink(b.decode("utf-8"), sid).valid
        except UnicodeDecodeError:
            pass
        got = _deeplink(device, sid, bytes(b))
        if _conservative(bytes(b)):
            assert got["valid"] is False
        else:
            assert got["valid"] is want_valid, bytes(b)


def test_check_batch(device: Device) -> None:
    net = make_net(24)
    enroll(device, net)
    device.call("policy", "1", "3")
    nodes = [os.urandom(32) for _ in range(4)]
    rot = bytes(SigningKey.generate().verify_key)
    items = [nks_direct(net, 0, n, rot if i % 2 else None) for i, n in enumerate(nodes)]
    head = bytes(net.authority.head).hex()
    key = net.pk(0).hex()
    got = device.call("check_batch", key, head, ",".join(i.to_cbor().hex() for i in items[:3]))
    assert got["code"] == 0, got
    sighashes = [i.sig_hash() for i in items[:3]]
    assert got["sighashes"] == [s.hex() for s in sighashes]
    assert got["sighash"] == hashlib.blake2s(b"".join(sighashes)).hexdigest()
    screen = "\n".join(str(x) for x in got["screen"])  # type: ignore[union-attr]
    assert "3 nodes" in screen and got["sighash"] in screen
    for n in (nodes[0], nodes[2]):
        assert format_node_public(n) in screen and node_key_short(n) in screen
    over = device.call("check_batch", key, head, ",".join(i.to_cbor().hex() for i in items))
    assert over["error"] == "policy_refused" and "max_batch" in str(over["message"])
    device.call("policy", "1", "10")
    cred = NodeKeySignature(kind=SigKind.CREDENTIAL, key_id=net.pk(0), wrapping_pubkey=rot)
    mixed = device.call("check_batch", key, head, items[0].to_cbor().hex() + ","
                        + cred.to_cbor().hex())
    assert mixed["error"] == "policy_refused" and "item 1" in str(mixed["message"])
    zero = nks_direct(net, 0, nodes[1], bytes(32))
    got = device.call("check_batch", key, head, items[0].to_cbor().hex() + ","
                      + zero.to_cbor().hex())
    assert got["error"] == "policy_refused" and "item 1" in str(got["message"])
    assert device.call("check_batch", key, head, "-")["error"] == "invalid_message"
    stale = device.call("check_batch", key, os.urandom(32).hex(), items[0].to_cbor().hex())
    assert stale["error"] == "stale_authority"


# --- AUMs to sign ----------------------------------------------------------------------------


def check_aum(device: Device, net: Net, signer: int, aum: AUM) -> dict[str, object]:
    return device.call("check_aum", net.pk(signer).hex(), aum.to_cbor().hex())


def oracle_check(state: State, aum: AUM, genesis: bool = False) -> None:
    """What the device checks of an AUM it is about to sign: aumVerify (the AUM will carry our
    signature, so "unsigned" does not apply), then applyVerifiedAUM."""
    try:
        verify_aum(state, aum, genesis=genesis)
    except SignatureError as err:
        if str(err) != "unsigned AUM":
            raise
        if (aum.kind == MessageKind.REMOVE_KEY and len(state.trusted_keys) == 1
                and state.trusted_keys[0].public == aum.key_id):
            raise ValidationError("cannot remove the last key in the state") from None
    if genesis:
        genesis_state(aum)
    else:
        apply_verified(state, aum)


@pytest.mark.parametrize("cls", [c for c in INVALID_CLASSES
                                 if c not in ("unsigned", "unknown_parent", "missing_parent")])
def test_check_aum_refuses_invalid_aums_with_the_oracles_text(device: Device, cls: str) -> None:
    net = make_net(30, trusted=(0, 1, 2))
    enroll(device, net)
    head = bytes(net.authority.head)
    bad = invalid_aum(net, cls, head, net.authority.state)
    if cls == "untrusted_signer":
        bad = bad  # carries a signature by an untrusted key: refused by aumVerify
    with pytest.raises(TKAError) as err:
        oracle_check(net.authority.state, bad)
    # The device is asked by a trusted key that has not signed yet.
    signer = next(i for i in (2, 1, 0) if all(s.key_id != net.pk(i) for s in bad.signatures))
    got = check_aum(device, net, signer, bad)
    assert got["error"] == "invalid_message", got
    assert got["message"] == str(err.value)


def test_check_aum_parents_kinds_and_screens(device: Device) -> None:
    net = make_net(31, trusted=(0, 1, 2), votes=(1, 2, 3))
    enroll(device, net)
    head = bytes(net.authority.head)
    st = net.authority.state
    add = AUM(kind=MessageKind.ADD_KEY, prev_aum_hash=head,
              key=Key(kind=1, votes=2, public=net.pk(3), meta={"purpose": "pre-auth key",
                                                                 "x\x1by": "\u202eevil"}))
    got = check_aum(device, net, 0, add)
    assert got["code"] == 0, got
    assert got["sighash"] == add.sig_hash().hex() and got["is_genesis"] is False
    screen = [str(x) for x in got["screen"]]  # type: ignore[union-attr]
    text = "\n".join(screen)
    assert "add-key" in text and format_aum_hash(head) in text
    assert f"Add key {format_tlpub(net.pk(3))}" in text and "votes 2" in text
    assert "    purpose = pre-auth key" in screen
    assert "    x\\x1by = \\u{202e}evil" in screen  # host text escaped
    # RemoveKey, UpdateKey: the key and the change.
    rm = AUM(kind=MessageKind.REMOVE_KEY, prev_aum_hash=head, key_id=net.pk(1))
    text = "\n".join(str(x) for x in check_aum(device, net, 0, rm)["screen"])  # type: ignore
    assert f"Remove key {format_tlpub(net.pk(1))} (votes 2)" in text
    up = AUM(kind=MessageKind.UPDATE_KEY, prev_aum_hash=head, key_id=net.pk(2), votes=7,
             meta={"a": "b"})
    text = "\n".join(str(x) for x in check_aum(device, net, 0, up)["screen"])  # type: ignore
    assert f"Update key {format_tlpub(net.pk(2))}" in text and "votes 3 -> 7" in text
    assert "    a = b" in text
    # A checkpoint re-weighting, removing and adding keys, with the signatures present.
    keys = [st.trusted_keys[0].replace(votes=4), st.trusted_keys[2],
            Key(kind=1, votes=1, public=net.pk(4))]
    cp = AUM(kind=MessageKind.CHECKPOINT, prev_aum_hash=head,
             state=st.replace(last_aum_hash=None, keys=tuple(keys)))
    cp_signed = net.sign(cp, [net.pk(1)])
    got = check_aum(device, net, 0, cp_signed)
    assert got["code"] == 0 and got["second_confirmation"] is False
    text = "\n".join(str(x) for x in got["screen"])  # type: ignore[union-attr]
    assert f"re-weight {format_tlpub(net.pk(0))} votes 1 -> 4" in text
    assert f"remove {format_tlpub(net.pk(1))} (votes 2)" in text
    assert f"add {format_tlpub(net.pk(4))} votes 1" in text
    assert f"by {format_tlpub(net.pk(1))} (votes 2)" in text and "present: 1" in text
    # Dropping a disablement value asks twice.
    dis = st.disablement_values or ()
    drop = AUM(kind=MessageKind.CHECKPOINT, prev_aum_hash=head,
               state=st.replace(last_aum_hash=None, disablement_values=dis[:1]))
    got = check_aum(device, net, 0, drop)
    assert got["code"] == 0 and got["second_confirmation"] is True
    assert "dropped 1" in str(got["screen"])
    # Kinds the device does not sign, parents it does not know or that are not its head.
    for kind in (0, 9):
        got = check_aum(device, net, 0, AUM(kind=kind, prev_aum_hash=head))
        assert got["error"] == "policy_refused", got
    assert check_aum(device, net, 0, AUM(kind=MessageKind.NO_OP, prev_aum_hash=head))["code"] == 0
    orphan = AUM(kind=MessageKind.NO_OP, prev_aum_hash=os.urandom(32))
    assert check_aum(device, net, 0, orphan)["error"] == "stale_authority"
    step = _child(net, head, [0])
    feed(device, net, [step])
    old_parent = AUM(kind=MessageKind.REMOVE_KEY, prev_aum_hash=head, key_id=net.pk(1))
    assert check_aum(device, net, 0, old_parent)["error"] == "stale_authority"
    # ...but a checkpoint may fork from an older AUM (a revocation), compared with the head.
    rec = AUM(kind=MessageKind.CHECKPOINT, prev_aum_hash=head,
              state=net.authority.state.replace(last_aum_hash=None,
                                                keys=net.authority.state.trusted_keys[:2]))
    got = check_aum(device, net, 0, rec)
    assert got["code"] == 0 and "Forks from an older AUM" in str(got["screen"])
    assert f"remove {format_tlpub(net.pk(2))}" in str(got["screen"])
    # The signer must be trusted at the parent and not have signed already.
    fresh = AUM(kind=MessageKind.NO_OP, prev_aum_hash=bytes(step.hash()))
    got = check_aum(device, net, 4, fresh)
    assert got["error"] == "policy_refused" and "not trusted" in str(got["message"])
    signed = net.sign(AUM(kind=MessageKind.NO_OP, prev_aum_hash=bytes(step.hash())), [net.pk(0)])
    got = check_aum(device, net, 0, signed)
    assert got["error"] == "policy_refused" and "already carries" in str(got["message"])


def test_check_aum_genesis(device: Device) -> None:
    net = make_net(32, trusted=(0, 1))
    unsigned = net.genesis.with_signatures([])
    got = check_aum(device, net, 1, unsigned)  # not enrolled: a genesis is still fine
    assert got["code"] == 0 and got["is_genesis"] is True
    assert got["sighash"] == unsigned.sig_hash().hex()
    assert check_aum(device, net, 3, unsigned)["error"] == "policy_refused"
    assert check_aum(device, net, 0, AUM(kind=MessageKind.NO_OP))["error"] == "invalid_message"
    st = net.genesis.state
    assert st is not None
    broken = AUM(kind=MessageKind.CHECKPOINT, state=st.replace(disablement_values=()))
    with pytest.raises(TKAError) as err:
        oracle_check(st, broken, genesis=True)
    got = check_aum(device, net, 0, broken)
    assert got["error"] == "invalid_message" and got["message"] == str(err.value)
    orphan = AUM(kind=MessageKind.NO_OP, prev_aum_hash=os.urandom(32))
    assert check_aum(device, net, 0, orphan)["error"] == "bad_state"


def test_cosigner_threshold(device: Device) -> None:
    net = make_net(33, n_keys=6, trusted=(0, 1, 2, 3), votes=(1, 1, 1, 1))
    enroll(device, net)
    device.call("policy", "3", "100")
    head = bytes(net.authority.head)
    add = AUM(kind=MessageKind.ADD_KEY, prev_aum_hash=head,
              key=Key(kind=1, votes=1, public=net.pk(4)))

    def asks(signers: Sequence[int], sigs: Sequence[Signature] = ()) -> dict[str, object]:
        aum = net.sign(add, [net.pk(i) for i in signers])
        aum = aum.with_signatures([*aum.signatures, *sigs])
        return check_aum(device, net, 0, aum)

    assert asks([])["error"] == "policy_refused"
    assert asks([1])["error"] == "policy_refused"
    dup = asks([1, 1])
    assert dup["error"] == "policy_refused" and "carries 1 by other" in str(dup["message"])
    assert asks([1, 2])["code"] == 0
    assert asks([1, 2, 3])["code"] == 0
    # An invalid or untrusted cosignature refuses the AUM with the reference's text.
    good = net.sign(add, [net.pk(1)])
    forged = Signature(net.pk(2), bytes(64))
    with pytest.raises(TKAError) as err:
        oracle_check(net.authority.state, good.with_signatures([*good.signatures, forged]))
    got = asks([1], [forged])
    assert got["error"] == "invalid_message" and got["message"] == str(err.value)
    outsider = Signature(net.pk(5), net.sks[5].sign(add.sig_hash()).signature)
    got = asks([1, 2], [outsider])
    assert got["error"] == "invalid_message" and "key not found" in str(got["message"])
    # Changes that do not touch the keys need no cosigners; checkpoints that do, do.
    assert check_aum(device, net, 0, AUM(kind=MessageKind.NO_OP, prev_aum_hash=head))["code"] == 0
    st = net.authority.state
    same = AUM(kind=MessageKind.CHECKPOINT, prev_aum_hash=head, state=st.replace(
        last_aum_hash=None))
    assert check_aum(device, net, 0, same)["code"] == 0
    reweigh = AUM(kind=MessageKind.CHECKPOINT, prev_aum_hash=head, state=st.replace(
        last_aum_hash=None, keys=(st.trusted_keys[0].replace(votes=9),
                                  *st.trusted_keys[1:])))
    assert check_aum(device, net, 0, reweigh)["error"] == "policy_refused"
    for kind_aum in (AUM(kind=MessageKind.REMOVE_KEY, prev_aum_hash=head, key_id=net.pk(3)),
                     AUM(kind=MessageKind.UPDATE_KEY, prev_aum_hash=head, key_id=net.pk(3),
                         votes=2)):
        assert check_aum(device, net, 0, kind_aum)["error"] == "policy_refused"
        assert check_aum(device, net, 0, net.sign(kind_aum, [net.pk(1), net.pk(2)]))["code"] == 0


def test_signed_aums_chain_in_a_session(device: Device) -> None:
    net = make_net(34, trusted=(0, 1))
    enroll(device, net)
    head = bytes(net.authority.head)
    first = AUM(kind=MessageKind.ADD_KEY, prev_aum_hash=head,
                key=Key(kind=1, votes=1, public=net.pk(2)))
    assert check_aum(device, net, 0, first)["code"] == 0
    sig = net.sks[0].sign(first.sig_hash()).signature
    noted = device.call("note", first.to_cbor().hex(), net.pk(0).hex(), sig.hex())
    assert noted["code"] == 0 and noted["tentative"] == 1
    signed_first = first.add_signature(Signature(net.pk(0), sig))
    # The next AUM builds on the signed one (whose hash includes our signature); the new key
    # is trusted there already.
    second = AUM(kind=MessageKind.UPDATE_KEY, prev_aum_hash=bytes(signed_first.hash()),
                 key_id=net.pk(2), votes=3)
    got = check_aum(device, net, 0, second)
    assert got["code"] == 0, got
    assert "signed on this device" in str(got["screen"])
    got = check_aum(device, net, 2, AUM(kind=MessageKind.NO_OP,
                                        prev_aum_hash=bytes(signed_first.hash())))
    assert got["code"] == 0  # key 2 is trusted in the tentative state
    # Feeding the authority drops the tentative AUMs; so does drop.
    feed(device, net, [signed_first])
    assert device_state(device)["tentative"] == 0
    assert check_aum(device, net, 0, second)["code"] == 0  # now on top of the real head
    device.call("note", second.to_cbor().hex(), net.pk(0).hex(),
                net.sks[0].sign(second.sig_hash()).signature.hex())
    assert device.call("drop")["tentative"] == 0
