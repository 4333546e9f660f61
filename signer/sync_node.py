"""What a node does on every netmap (spec §13.4): follow control's wish to enable or disable
tailnet lock, and synchronise the local authority, which only ever advances by verified AUMs."""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass
from typing import Any

from signer.control_client import ControlClient
from signer.node import NodeState
from verifier.aum import AUM
from verifier.authority import Authority
from verifier.compaction import compact
from verifier.errors import ControlError, SyncError, TKAError
from verifier.storage import FilesystemStorage
from verifier.sync import SyncOffer, missing_aums, sync_offer


@dataclass
class SyncResult:
    authority: Authority | None
    netmap: dict[str, Any]
    disallowed: bool = False


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _bootstrap_locally(node: NodeState, genesis: AUM) -> Authority:
    """Bootstrap into a scratch directory, then rename: never a half-made authority."""
    scratch = node.root / "tka.bootstrap"
    if scratch.exists():
        shutil.rmtree(scratch)
    try:
        Authority.bootstrap(FilesystemStorage(scratch), genesis)
        scratch.rename(node.tka_dir)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch)
    return Authority.open(FilesystemStorage(node.tka_dir))


def sync(node: NodeState, client: ControlClient) -> SyncResult:
    """One netmap round. Call with the node's lock held.

    The first round of a session binds the client to the node's credential (and pinned CA),
    which every request to the service carries from then on (docs/control.md)."""
    if client.credential is None:
        client.bind(node.session_credential(), node.control_ca())
    netmap = client.netmap()
    info = netmap.get("TKAInfo")
    enabled = info is not None and not info.get("Disabled")
    if not enabled:
        if node.tka_present() and info is not None and info.get("Disabled"):
            authority = Authority.open(FilesystemStorage(node.tka_dir))
            secret = client.bootstrap(str(authority.head)).get("DisablementSecret")
            if secret and authority.valid_disablement(base64.b64decode(secret)):
                node.remove_tka()
                return SyncResult(None, netmap)
            # A wrong secret from control leaves lock enabled here (spec §9).
            return SyncResult(authority, netmap)
        if node.tka_present():
            return SyncResult(Authority.open(FilesystemStorage(node.tka_dir)), netmap)
        return SyncResult(None, netmap)

    assert info is not None  # enabled implies TKAInfo
    if not node.tka_present():
        genesis_b64 = client.bootstrap("").get("GenesisAUM")
        if not genesis_b64:
            raise ControlError("control enabled tailnet lock but sent no genesis AUM")
        genesis = AUM.from_cbor(base64.b64decode(genesis_b64))
        if genesis.state is not None and node.is_disallowed(
            genesis.state.state_id1, genesis.state.state_id2
        ):
            return SyncResult(None, netmap, disallowed=True)
        authority = _bootstrap_locally(node, genesis)
    else:
        authority = Authority.open(FilesystemStorage(node.tka_dir))

    if str(authority.head) != info.get("Head"):
        head, ancestors = sync_offer(authority).to_text()
        reply = client.sync_offer(head, ancestors)
        if reply["Head"] != str(authority.head):
            try:
                to_send = missing_aums(
                    authority, SyncOffer.from_text(reply["Head"], reply["Ancestors"])
                )
            except (SyncError, TKAError):
                to_send = []  # control is ahead or elsewhere; it gets ours next round
            received = [AUM.from_cbor(base64.b64decode(a)) for a in reply.get("MissingAUMs") or []]
            if received:
                authority.inform(received)
            client.sync_send(str(authority.head), [_b64(a.to_cbor()) for a in to_send], False)
        # As tailscaled does after every sync: forget what is old and no longer needed.
        compact(authority.storage, authority.head)
        authority = Authority.open(authority.storage)
    return SyncResult(authority, netmap)
