"""An authority given as a directory, opened read-only: a real node's `tka-profiles/<id>`
directory (tailscaled's state directory holds one per profile), a copy of it, or the `tka/`
directory of a node of ours.

Every AUM is read into memory and the authority is opened there, so nothing a command does
afterwards (a sync, a fork-choice simulation, building updates to sign) can write to the
directory: it stays byte-identical. Whatever is wrong with it is one StorageError that says
what to point at instead.
"""

from __future__ import annotations

from pathlib import Path

from signer.echo import clip_input
from verifier.authority import Authority
from verifier.errors import StorageError
from verifier.storage import FilesystemStorage, MemoryStorage

WHAT = "a tailnet-lock authority directory (a node's tka-profiles/<id>, or a copy of it)"


def open_authority_dir(directory: Path) -> Authority:
    """The authority stored in `directory`, in memory; the directory is only read."""
    name = clip_input(str(directory))
    if not directory.exists():
        raise StorageError(f"no such directory: {name}; --authority takes {WHAT}")
    if not directory.is_dir():
        raise StorageError(f"{name} is not a directory; --authority takes {WHAT}")
    profiles = directory / "tka-profiles"
    if profiles.is_dir():  # a whole tailscaled state directory: name the profile instead
        choices = sorted(p.name for p in profiles.iterdir() if p.is_dir())
        hint = f" ({', '.join(clip_input(c) for c in choices[:3])})" if choices else ""
        raise StorageError(
            f"{name} is a tailscaled state directory; pass its tka-profiles/<id> directory{hint}"
        )
    disk = FilesystemStorage(directory)  # exists and is a directory: nothing is created
    memory = MemoryStorage()
    try:
        hashes = disk.all_aums()
        if not hashes:
            raise StorageError(f"{name} holds no AUMs; --authority takes {WHAT}")
        memory.commit_verified_aums(aum for h in hashes if (aum := disk.aum(h)) is not None)
        ancestor = disk.last_active_ancestor()
        if ancestor is not None:
            memory.set_last_active_ancestor(ancestor)
        return Authority.open(memory)
    except StorageError as err:
        text = str(err)
        if name in text:
            raise
        raise StorageError(f"the authority in {name} is corrupt: {text}") from None
    except OSError as err:
        raise StorageError(f"cannot read {name}: {err.strerror}") from None
