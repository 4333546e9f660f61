"""The authority over real storage (docs/format.md §6, §8): create, build, inform, forks, reopen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from verifier.aum import AUM, MessageKind
from verifier.authority import Authority, new_state_ids
from verifier.builder import CHECKPOINT_EVERY, UpdateBuilder
from verifier.disablement import disablement_kdf
from verifier.errors import SignatureError, StorageError, TKAError
from verifier.key import ed25519_key
from verifier.signing import AUMSigner
from verifier.state import State
from verifier.storage import FilesystemStorage, MemoryStorage, SQLiteStorage, Storage


def _signer(sk: SigningKey) -> AUMSigner:
    return AUMSigner.over_digest(bytes(sk.verify_key), lambda d: sk.sign(d).signature)


def _genesis_state(*keys: SigningKey, secret: bytes = b"s" * 32) -> State:
    id1, id2 = new_state_ids()
    return State(
        disablement_values=(disablement_kdf(secret),),
        keys=tuple(ed25519_key(bytes(k.verify_key)) for k in keys),
        state_id1=id1,
        state_id2=id2,
    )


@pytest.fixture(params=["memory", "filesystem", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "memory":
        return MemoryStorage()
    if request.param == "sqlite":
        return SQLiteStorage.open(str(tmp_path / "tka.db"))
    return FilesystemStorage(tmp_path / "tka")


def test_create_add_remove_and_reopen(storage: Storage) -> None:
    owner, other = SigningKey.generate(), SigningKey.generate()
    auth, genesis = Authority.create(storage, _genesis_state(owner), _signer(owner))
    assert auth.head == genesis.hash()
    builder = UpdateBuilder(auth, _signer(owner))
    builder.add_key(ed25519_key(bytes(other.verify_key), votes=2))
    updates = builder.finalize()
    auth.inform(updates)
    assert auth.key_trusted(bytes(other.verify_key))
    assert auth.head == updates[-1].hash()
    reopened = Authority.open(storage)
    assert reopened.head == auth.head
    assert reopened.state == auth.state
    builder = UpdateBuilder(reopened, _signer(other))
    builder.remove_key(bytes(owner.verify_key))
    reopened.inform(builder.finalize())
    assert not reopened.key_trusted(bytes(owner.verify_key))
    assert reopened.valid_disablement(b"s" * 32)
    assert not reopened.valid_disablement(b"t" * 32)


def test_untrusted_update_is_rejected_and_nothing_stored(
    storage: Storage,
) -> None:
    owner, stranger = SigningKey.generate(), SigningKey.generate()
    auth, _ = Authority.create(storage, _genesis_state(owner), _signer(owner))
    good = UpdateBuilder(auth, _signer(owner))
    good.add_key(ed25519_key(os.urandom(32)))
    first = good.finalize()
    bad = AUM(kind=MessageKind.NO_OP, prev_aum_hash=bytes(first[-1].hash()))
    bad = bad.add_signature(_signer(stranger).signature_for(bad))
    before = set(storage.all_aums())
    with pytest.raises(SignatureError, match="update 1 invalid: bad keyID"):
        auth.inform([*first, bad])
    assert set(storage.all_aums()) == before


def test_fork_choice_prefers_weight_then_remove_key(
    storage: Storage,
) -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    state = _genesis_state(a)
    state = State(
        disablement_values=state.disablement_values,
        keys=(ed25519_key(bytes(a.verify_key)), ed25519_key(bytes(b.verify_key), votes=3)),
        state_id1=state.state_id1,
        state_id2=state.state_id2,
    )
    auth, genesis = Authority.create(storage, state, _signer(a))
    parent = bytes(genesis.hash())
    light = AUM(kind=MessageKind.NO_OP, prev_aum_hash=parent)
    light = light.add_signature(_signer(a).signature_for(light))
    heavy = AUM(kind=MessageKind.NO_OP, prev_aum_hash=parent, key_id=b"x" * 32)
    heavy = heavy.add_signature(_signer(b).signature_for(heavy))
    auth.inform([light, heavy])
    assert auth.head == heavy.hash()
    remove = AUM(kind=MessageKind.REMOVE_KEY, prev_aum_hash=parent, key_id=bytes(a.verify_key))
    remove = remove.add_signature(_signer(b).signature_for(remove))
    auth.inform([remove])
    assert auth.head == remove.hash()  # equal weight to `heavy`, RemoveKey wins
    assert Authority.open(storage).head == remove.hash()


def test_builder_appends_a_checkpoint_on_cadence() -> None:
    storage = MemoryStorage()
    owner = SigningKey.generate()
    auth, _ = Authority.create(storage, _genesis_state(owner), _signer(owner))
    for _ in range(CHECKPOINT_EVERY - 1):
        builder = UpdateBuilder(auth, _signer(owner))
        builder.add_key(ed25519_key(os.urandom(32)))
        out = builder.finalize()
        assert [u.kind for u in out] == [MessageKind.ADD_KEY]
        auth.inform(out)
    builder = UpdateBuilder(auth, _signer(owner))
    builder.add_key(ed25519_key(os.urandom(32)))
    out = builder.finalize()
    assert [u.kind for u in out] == [MessageKind.ADD_KEY, MessageKind.CHECKPOINT]
    auth.inform(out)
    assert auth.head_aum.kind == MessageKind.CHECKPOINT
    assert auth.state.state_id1 == _first_state_id(storage)


def _first_state_id(storage: MemoryStorage) -> int:
    return Authority.open(storage).state.state_id1


def test_corrupt_file_is_reported_not_repaired(tmp_path: Path) -> None:
    owner = SigningKey.generate()
    storage = FilesystemStorage(tmp_path / "tka")
    auth, genesis = Authority.create(storage, _genesis_state(owner), _signer(owner))
    name = str(genesis.hash())
    path = tmp_path / "tka" / name[:2] / name
    original = path.read_bytes()
    path.write_bytes(original[:-5])
    with pytest.raises(StorageError, match="corrupt AUM file"):
        Authority.open(FilesystemStorage(tmp_path / "tka"))
    assert path.read_bytes() == original[:-5]
    path.write_bytes(original)
    assert Authority.open(FilesystemStorage(tmp_path / "tka")).head == auth.head


def test_bootstrap_refuses_a_non_empty_store() -> None:
    storage = MemoryStorage()
    owner = SigningKey.generate()
    _, genesis = Authority.create(storage, _genesis_state(owner), _signer(owner))
    with pytest.raises(TKAError, match="not empty"):
        Authority.bootstrap(storage, genesis)
