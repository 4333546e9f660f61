"""What a node does on every netmap (docs/control.md): follow control's wish to enable or disable
tailnet lock, and synchronise the local authority, which only ever advances by verified AUMs."""

from __future__ import annotations

import base64
import shutil
from typing import Any

from signer import verbose
from signer.control_client import ControlClient
from signer.node import NodeState
from verifier.aum import AUM
from verifier.authority import Authority
from verifier.errors import ControlError, SyncError, TKAError
from verifier.fields import Fields
from verifier.storage import FilesystemStorage


class SyncResult(Fields):
    __match_args__ = ("authority", "netmap", "disallowed")
    __slots__ = __match_args__
    authority: Authority | None
    netmap: dict[str, Any]
    disallowed: bool

    def __init__(
        self,
        authority: Authority | None,
        netmap: dict[str, Any],
        disallowed: bool = False,
    ) -> None:
        self.authority = authority
        self.netmap = netmap
        self.disallowed = disallowed


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
    if verbose.enabled():
        lock = "not enabled" if info is None else "disabled" if not enabled else (
            f"enabled, head {info.get('Head')}")
        verbose.log("netmap: %d peer(s); tailnet lock on the service: %s",
                    len(netmap.get("Peers") or []), lock)
    if not enabled:
        if node.tka_present() and info is not None and info.get("Disabled"):
            authority = Authority.open(FilesystemStorage(node.tka_dir))
            secret = client.bootstrap(str(authority.head)).get("DisablementSecret")
            if secret and authority.valid_disablement(base64.b64decode(secret)):
                verbose.log("sync: the service's disablement secret is valid: removing the "
                            "local authority %s", node.tka_dir)
                node.remove_tka()
                return SyncResult(None, netmap)
            # A wrong secret from control leaves lock enabled here (docs/format.md §9).
            verbose.log("sync: the service disabled tailnet lock without a valid disablement "
                        "secret: keeping the local authority")
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
            verbose.log("sync: the service's authority is on this node's deny-list "
                        "(local-disable): not bootstrapping")
            return SyncResult(None, netmap, disallowed=True)
        verbose.log("sync: bootstrapping the local authority %s from genesis AUM %s",
                    node.tka_dir, genesis.hash())
        authority = _bootstrap_locally(node, genesis)
    else:
        authority = Authority.open(FilesystemStorage(node.tka_dir))

    if str(authority.head) == info.get("Head"):
        verbose.log("sync: the local authority %s is at the service's head", node.tka_dir)
    else:
        # Only when the heads differ (most runs need neither).
        from verifier.compaction import compact
        from verifier.sync import SyncOffer, missing_aums, sync_offer

        head, ancestors = sync_offer(authority).to_text()
        verbose.log("sync: local head %s, service head %s: offering %d ancestor(s)", head,
                    info.get("Head"), len(ancestors))
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
            verbose.log("sync: received %d AUM(s), local head now %s; sending %d AUM(s)",
                        len(received), authority.head, len(to_send))
            client.sync_send(str(authority.head), [_b64(a.to_cbor()) for a in to_send], False)
        # As tailscaled does after every sync: forget what is old and no longer needed.
        compact(authority.storage, authority.head)
        authority = Authority.open(authority.storage)
        verbose.log("sync: the local authority %s is at head %s", node.tka_dir, authority.head)
    return SyncResult(authority, netmap)
