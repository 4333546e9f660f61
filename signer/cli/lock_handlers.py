"""What each lifecycle command does (docs/control.md, docs/cli.md); argument parsing is in
lock_commands.

Every command that needs the authority first runs one netmap round (`signer.sync_node.sync`)
under the node's lock, so it sees current state and the local authority only advances through
verified AUMs. Signing always goes through a key backend wrapped in `VerifiedBackend`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from signer import verbose
from signer.cli import UsageError
from signer.cli.lock_commands import (
    CommandError,
    confirm,
    program_name,
    read_secret_argument,
    read_text_file,
)
from signer.control_client import ControlClient, ControlUnreachable, open_transport
from signer.echo import clip_input, safe_text
from signer.node import NodeConfig, NodeState, default_control_path, default_state_dir
from signer.render import LockStatus, PeerView, log_human, log_json, status_human, status_json
from signer.sync_node import SyncResult, sync
from verifier.aum import AUM, MessageKind
from verifier.authority import Authority, new_state_ids
from verifier.chain import MAX_SCAN_ITERATIONS
from verifier.disablement import disablement_kdf, new_disablement_secret
from verifier.errors import (
    ControlError,
    DecodeError,
    NotTrustedError,
    SignerError,
    StorageError,
    TKAError,
)
from verifier.fields import Fields
from verifier.key import Key, ed25519_key
from verifier.machine import verify_aum
from verifier.netmap_filter import filter_netmap
from verifier.nks import NodeKeySignature, SigKind
from verifier.state import State
from verifier.storage import MemoryStorage
from verifier.storage.atomic import atomic_create, atomic_write
from verifier.textforms import (
    format_aum_hash,
    format_disablement_secret,
    format_disablement_value,
    format_nlpub,
    format_node_public,
    format_tlpub,
    node_key_binary,
    parse_bare_hex,
    parse_disablement_secret,
    parse_disablement_value_arg,
    parse_nl_public,
    parse_node_public,
)

if TYPE_CHECKING:
    from signer.backends.base import KeyBackend

# What only some commands need is imported where they need it (`from signer.signing import
# aum_signer` in the functions that sign, …): `tka status` must start fast (issue 14 item 4).

NOT_ENABLED = "tailnet lock is not enabled"
MISSING_KEYS = "missing argument, expected one or more tailnet lock keys"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- sessions -------------------------------------------------------------------------------------


STATE_ENV = "TKA_STATE"
CONTROL_ENV = "TKA_CONTROL"


def _node(args: argparse.Namespace) -> NodeState:
    """--state, else $TKA_STATE, else the data directory's node."""
    if args.state:
        root, source = Path(args.state), "--state"
    elif os.environ.get(STATE_ENV):
        root, source = Path(os.environ[STATE_ENV]), f"${STATE_ENV}"
    else:
        root, source = default_state_dir(), "the default"
    verbose.log("state directory %s (%s)", root, source)
    return NodeState(root)


def _control(args: argparse.Namespace) -> str:
    """--control (else $TKA_CONTROL): an http(s) URL, or the path of the embedded service's
    database (default: the data directory's)."""
    if args.control:
        control, source = str(args.control), "--control"
    elif os.environ.get(CONTROL_ENV):
        control, source = os.environ[CONTROL_ENV], f"${CONTROL_ENV}"
    else:
        control, source = str(default_control_path()), "the default"
    is_url = bool(_URL_SCHEME.match(control))
    verbose.log("coordination service %s (%s): %s", verbose.address(clip_input(control)), source,
                "over HTTP" if is_url else "the embedded service in this SQLite file")
    if is_url:
        _check_service_url(control)  # else "ftp://x" would name a database file ./ftp:/x
    return control


_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _check_service_url(url: str) -> None:
    """One usage line now for a URL that could never work, rather than a failure to connect."""
    bad = f"--control {clip_input(url)}"
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{bad}: use http://HOST:PORT, https://HOST:PORT or a database file")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise UsageError(f"{bad}: a URL has no spaces or control characters")
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError as err:
        raise UsageError(f"{bad} is not a valid URL: {clip_input(err)}") from None
    if not parts.hostname:
        raise UsageError(f"{bad}: the URL names no host")


class Session(Fields):
    __match_args__ = ("args", "node", "client", "synced")
    __slots__ = __match_args__
    args: argparse.Namespace
    node: NodeState
    client: ControlClient
    synced: SyncResult

    def __init__(
        self,
        args: argparse.Namespace,
        node: NodeState,
        client: ControlClient,
        synced: SyncResult,
    ) -> None:
        self.args = args
        self.node = node
        self.client = client
        self.synced = synced

    @property
    def authority(self) -> Authority | None:
        return self.synced.authority

    def require_authority(self) -> Authority:
        if self.synced.authority is None:
            raise CommandError(NOT_ENABLED)
        return self.synced.authority

    @property
    def lock_public(self) -> bytes | None:
        return self.node.config().lock_public

    def resync(self) -> None:
        self.synced = sync(self.node, self.client)

    def key_uris(self) -> list[str]:
        """`--key` (repeatable), else the node's recorded lock key."""
        uris: list[str] = list(self.args.key or [])
        if not uris:
            recorded = self.node.config().lock_key
            if not recorded:
                raise CommandError("this node has no lock key; pass --key URI")
            uris = [recorded]
        return uris

    def _open(self, uri: str) -> KeyBackend:
        from signer.backends import open_backend

        verbose.log("opening the lock key %s", verbose.key_uri(uri))
        backend = open_backend(uri)
        try:
            if self.synced.authority is not None:
                backend.track(self.synced.authority)
        except BaseException:
            backend.close()
            raise
        return backend

    @contextlib.contextmanager
    def backend(self) -> Iterator[KeyBackend]:
        """The one key that signs node keys (a node-key signature has one signer)."""
        uris = self.key_uris()
        if len(uris) > 1:
            raise UsageError("this command signs with one key: give --key once")
        with self._open(uris[0]) as backend:
            yield backend

    @contextlib.contextmanager
    def backends(self) -> Iterator[list[KeyBackend]]:
        """Every key that signs the AUMs of this command, in the order given: each AUM carries
        all their signatures (put an appliance that requires cosigners last)."""
        with contextlib.ExitStack() as stack:
            opened = []
            for uri in self.key_uris():
                opened.append(stack.enter_context(self._open(uri)))
            yield opened


@contextlib.contextmanager
def session(args: argparse.Namespace) -> Iterator[Session]:
    node = _node(args)
    node.require()
    # Only registration creates an embedded service's database: a mistyped --control is an
    # error here, not a new empty tailnet.
    transport = open_transport(_control(args), create=False)
    try:
        client = ControlClient(transport, node.node_key_text())
        with node.locked():
            yield Session(args, node, client, sync(node, client))
    finally:
        transport.close()


def _require_trusted(authority: Authority, public: bytes) -> None:
    if not authority.key_trusted(public):
        raise NotTrustedError("this node does not have a trusted tailnet lock key")


# -- argument parsing -----------------------------------------------------------------------------


def parse_key_arg(text: str, index: int) -> Key:
    """`tlpub:<hex>[?votes]` or `nlpub:…` (docs/cli.md)."""
    body, _, votes_text = text.partition("?")
    try:
        public = parse_nl_public(body)
    except DecodeError as err:
        raise UsageError(f"parsing key {index}: {err}") from None
    votes = 1
    if votes_text:
        votes = _atoi(votes_text, f"parsing key {index} votes") % (1 << 64)  # uint(int) wraps
    return ed25519_key(public, votes=votes)


_ATOI = r"[+-]?[0-9]+"  # compiled on first use (re's cache), not at start-up


def _atoi(text: str, what: str) -> int:
    """Go's strconv.Atoi, which the reference parses votes with: an optional sign and ASCII
    digits only (Python's int() would also take "٣", " 3" and "1_0"), within int64."""
    quoted = json.dumps(text[:40], ensure_ascii=False)  # Go's %q, cut to fit a line
    if not re.fullmatch(_ATOI, text):
        raise UsageError(f"{what}: strconv.Atoi: parsing {quoted}: invalid syntax")
    value = int(text)
    if not -(1 << 63) <= value < (1 << 63):
        raise UsageError(f"{what}: strconv.Atoi: parsing {quoted}: value out of range")
    return value


def _keys(args: list[str]) -> list[Key]:
    if not args:
        raise UsageError(MISSING_KEYS)
    return [parse_key_arg(a, i) for i, a in enumerate(args, start=1)]


# -- node registration ----------------------------------------------------------------------------


def cmd_node_register(args: argparse.Namespace) -> int:
    """Register a node, safe to interrupt at any point: every file is made whole or not at all
    (node key, lock key, credential, all 0600), the service takes a repeated registration with
    the same node key and credential as the same one, and running the command again with the
    same --name finishes what a killed or disconnected run started (docs/control.md)."""
    node = _node(args)
    if node.registered():
        raise CommandError(f"{node.root} already holds a registered node")
    auth_text = None if args.auth_key is None else read_secret_argument(args.auth_key, "auth key")
    control = _control(args)  # a malformed --control is refused before anything is made
    resuming = node.config_path.is_file()
    created_root = not node.root.exists()
    node.make_root()
    existed = {p for p in _registration_files(node) if os.path.lexists(p)}
    try:
        with node.locked():
            public, signature, enrolment = _prepare_registration(args, node, auth_text)
            if args.control_ca:
                _pin_control_ca(node, Path(args.control_ca))
            transport = open_transport(control)
            try:
                client = ControlClient(transport, node.node_key_text(), node.credential())
                client.bind(node.credential(), node.control_ca())
                reply = client.register(
                    args.name, format_nlpub(public), signature, enrolment,
                    as_owner=enrolment is None,
                )
            finally:
                transport.close()
            node.save_config(
                node.config().replace(node_id=int(reply["NodeID"]), stable_id=reply["StableID"])
            )
    except ControlUnreachable as err:
        raise CommandError(
            f"{err}; the registration may or may not have reached it: run the same command "
            "again to finish it"
        ) from None
    except (ControlError, TKAError, UsageError, CommandError):
        if not resuming:  # refused before anything was registered: leave nothing behind
            _forget_unregistered(node, created_root, existed)
        raise
    print(
        f"registered node {args.name} ({node.node_key_text()}) "
        f"with lock key {format_tlpub(public)}"
    )
    return 0


def _prepare_registration(
    args: argparse.Namespace, node: NodeState, auth_text: str | None
) -> tuple[bytes, str | None, str | None]:
    """Make (or, resuming, check and reuse) the node's local state; returns the lock public
    key, the pre-approval signature a wrapped auth key yields, and the enrolment key."""
    from signer.backends import open_backend
    from verifier import authkey

    if node.config_path.is_file():
        config = node.config()
        if config.name != args.name:
            raise CommandError(
                f"{node.root} holds an unfinished registration as {config.name!r}; finish it "
                f"with --name {config.name} (or remove {node.root} to start over)"
            )
        if args.lock_key is not None and config.lock_key not in (None, args.lock_key):
            raise CommandError(
                f"{node.root} holds an unfinished registration with lock key {config.lock_key}; "
                "finish it with the same --lock-key"
            )
    else:
        node.ensure_node_key()
        node.save_config(NodeConfig(name=args.name))
        config = node.config()
    node.ensure_node_key()
    lock_uri = config.lock_key or args.lock_key
    if lock_uri is None:
        public = _file_lock_key(node)
        lock_uri = f"file:{node.file_lock_key_path}"
    elif config.lock_public is not None:
        public = config.lock_public
    else:
        with open_backend(lock_uri) as backend:
            public = backend.public_key()
    if config.lock_key != lock_uri or config.lock_public != public:
        node.save_config(config.replace(lock_key=lock_uri, lock_public=public))
    node.ensure_credential()
    signature = None
    enrolment = auth_text
    if auth_text is not None:
        signature = _signature_from_auth_key(auth_text, node.node_public())
        wrapped = authkey.unwrap(auth_text)
        enrolment = auth_text if wrapped is None else wrapped.auth_key
    return public, signature, enrolment


def _file_lock_key(node: NodeState) -> bytes:
    """The state directory's file lock key: the one a killed run made, else a new one."""
    from signer.backends import open_backend
    from signer.backends.file import write_new_key_file

    if node.file_lock_key_path.exists():
        with open_backend(f"file:{node.file_lock_key_path}") as backend:
            return backend.public_key()
    return write_new_key_file(node.file_lock_key_path)


def _pin_control_ca(node: NodeState, source: Path) -> None:
    try:
        pem = source.read_bytes()
    except OSError as err:
        raise CommandError(f"cannot read {source}: {err.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise CommandError(f"{source} holds no PEM certificate")
    atomic_write(node.control_ca_path, pem, 0o644)


def _registration_files(node: NodeState) -> tuple[Path, ...]:
    return (
        node.config_path, node.node_key_path, node.file_lock_key_path, node.credential_path,
        node.control_ca_path,
    )


def _forget_unregistered(node: NodeState, created_root: bool, existed: set[Path]) -> None:
    """Remove what this refused registration made, and nothing that was there before."""
    if created_root:
        shutil.rmtree(node.root, ignore_errors=True)
        return
    for path in _registration_files(node):
        if path not in existed:
            path.unlink(missing_ok=True)


def _signature_from_auth_key(text: str, node_key: bytes) -> str | None:
    """A wrapped auth key (docs/format.md §9) becomes a rotation NKS over the credential."""

    import nacl.signing

    from verifier import authkey

    wrapped = authkey.unwrap(text)
    if wrapped is None:
        return None
    signing = nacl.signing.SigningKey(wrapped.wrapping_private[:32])
    if bytes(signing.verify_key) != wrapped.wrapping_private[32:]:
        raise DecodeError("wrapped auth key: private key halves do not match")
    unsigned = NodeKeySignature(
        kind=SigKind.ROTATION, pubkey=node_key_binary(node_key), nested=wrapped.credential
    )
    signed = unsigned.replace(signature=signing.sign(unsigned.sig_hash()).signature)
    return _b64(signed.to_cbor())


# -- init ---------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from signer.signing import aum_signer

    keys: list[Key] = []
    values: list[bytes] = []
    for i, arg in enumerate(args.args, start=1):
        if arg.startswith(("disablement:", "disablement-secret:")):
            try:
                values.append(parse_disablement_value_arg(arg))
            except DecodeError as err:
                raise UsageError(f"parsing disablement {i}: {err}") from None
        else:
            keys.append(parse_key_arg(arg, i))
    if args.gen_disablements < 0:
        raise UsageError("--gen-disablements must not be negative")
    with session(args) as s:
        if s.authority is not None:
            raise CommandError("tailnet lock is already enabled")
        own = s.lock_public
        if own is None or not any(k.public == own for k in keys):
            raise CommandError(
                "the tailnet lock key of the current node must be one of the trusted keys "
                "during initialization"
            )
        print("You are initializing tailnet lock with the following trusted signing keys:")
        for key in keys:
            print(f" - {format_tlpub(key.public or b'')} (25519 key)")
        print()
        n = args.gen_disablements
        if not args.confirm:
            print(f"{n} disablement secrets will be generated.")
            if args.gen_disablement_for_support:
                print(
                    "A disablement secret will be generated and transmitted to Tailscale support."
                )
            print()
            print("If this is correct, please re-run this command with the --confirm flag:")
            support = "--gen-disablement-for-support " if args.gen_disablement_for_support else ""
            print(
                f"\t{program_name()} init --confirm --gen-disablements {n} {support}"
                + " ".join(args.args)
            )
            return 0
        secrets_out = [new_disablement_secret() for _ in range(n)]
        support_secret = new_disablement_secret() if args.gen_disablement_for_support else None
        all_values = values + [disablement_kdf(x) for x in secrets_out]
        if support_secret is not None:
            all_values.append(disablement_kdf(support_secret))
        id1, id2 = new_state_ids()
        state = State(disablement_values=tuple(all_values), keys=tuple(keys),
                      state_id1=id1, state_id2=id2)
        with s.backend() as backend:
            genesis_authority, genesis = Authority.create(
                MemoryStorage(), state, aum_signer(backend)
            )
            # The secrets reach the person (or their file) before the service hears of the new
            # authority: a kill or a full disk after the commit would leave secrets nobody has.
            _hand_over_secrets(args.secrets_out, secrets_out)
            try:
                _enable(s, backend, genesis_authority, genesis, support_secret)
            except (TKAError, KeyboardInterrupt) as err:
                reason = "interrupted" if isinstance(err, KeyboardInterrupt) else str(err)
                raise CommandError(
                    f"enabling tailnet lock failed: {reason}; the disablement secrets given "
                    "above are void unless `tka status` says lock is enabled"
                ) from None
        if support_secret is not None:
            print(
                "A disablement secret for Tailscale support has been generated and transmitted "
                "to Tailscale."
            )
        print("Initialization complete.")
        s.resync()
    return 0


def _enable(
    s: Session,
    backend: KeyBackend,
    authority: Authority,
    genesis: AUM,
    support_secret: bytes | None,
) -> None:
    """Init's exchange with the service (docs/control.md): send the genesis, sign every existing
    node under it (an appliance enrolls the genesis it has just signed, then confirms the
    whole batch once), and commit."""
    from signer.nks_signing import sign_direct_nks_many

    backend.track(authority)
    need = s.client.init_begin(_b64(genesis.to_cbor()))["NeedSignatures"]
    blobs = sign_direct_nks_many(
        backend,
        [
            (parse_node_public(item["NodePublic"]), base64.b64decode(item["RotationPubkey"] or ""))
            for item in need
        ],
    )
    signatures = {str(item["NodeID"]): _b64(blob) for item, blob in zip(need, blobs, strict=True)}
    s.client.init_finish(
        signatures, _b64(support_secret) if support_secret is not None else None
    )


def _hand_over_secrets(path: str | None, secrets: list[bytes]) -> None:
    """Print the disablement secrets, or write them to a new 0600 file, durably; raises before
    anything is enabled if that fails."""
    lines = [format_disablement_secret(x) for x in secrets]
    if path is not None:
        try:
            atomic_create(Path(path), "".join(f"{line}\n" for line in lines).encode())
        except StorageError as err:
            raise CommandError(f"{err}; tailnet lock was not enabled") from None
        print(f"{len(lines)} disablement secrets have been written to {path} (mode 0600). "
              "Keep them safe, they WILL NOT be shown again.")
        return
    try:
        print(
            f"{len(lines)} disablement secrets have been generated and are printed below. "
            "Take note of them now, they WILL NOT be shown again."
        )
        for line in lines:
            print(f"\t{line}")
        sys.stdout.flush()
        with contextlib.suppress(OSError, ValueError):
            os.fsync(sys.stdout.fileno())  # a file or pipe target: make it durable
    except OSError as err:
        raise CommandError(
            f"cannot print the disablement secrets ({err.strerror}); tailnet lock was not "
            "enabled"
        ) from None


# -- status and log -------------------------------------------------------------------------------


def _peer_view(doc: dict[str, object], sig: NodeKeySignature | None) -> PeerView:
    return PeerView(
        stable_id=str(doc["StableID"]),
        dns_name=str(doc["Name"]),
        tailscale_ips=tuple(str(a) for a in doc.get("Addresses") or []),  # type: ignore[attr-defined]
        node_key=parse_node_public(str(doc["NodeKey"])),
        signature=sig,
        lock_key=parse_nl_public(str(doc["NLKey"])) if doc.get("NLKey") else None,
    )


def _authorized_signatures(
    authority: Authority, docs: list[dict[str, object]]
) -> list[NodeKeySignature | None]:
    """Each node's signature if tailscaled would keep the node (its signature authorizes its
    key and no newer rotation replaced it), else None: the whole netmap in one bulk call, as a
    node filters its peers on every netmap (verifier.netmap_filter)."""
    peers: list[tuple[bytes, bytes | None]] = []
    for doc in docs:
        raw = doc.get("KeySignature")
        sig = base64.b64decode(str(raw)) if raw else None
        peers.append((parse_node_public(str(doc["NodeKey"])), sig))
    return [
        NodeKeySignature.from_cbor(sig) if verdict.visible and sig else None
        for (_, sig), verdict in zip(peers, filter_netmap(authority, peers), strict=True)
    ]


def cmd_status(args: argparse.Namespace) -> int:
    from signer.cli.lock_commands import json_version

    if args.args:
        raise UsageError("status takes no arguments; usage: tka status [--json]")
    version = json_version(args.json)
    with session(args) as s:
        authority = s.authority
        node_key = s.node.node_public()
        st = LockStatus(enabled=False, public_key=s.lock_public, node_key=node_key)
        if authority is not None:
            netmap = s.synced.netmap
            # The node itself is checked on its own, as tailscaled does: only peers take part
            # in the rotation rule.
            own = _authorized_signatures(authority, [netmap["Self"]])[0]
            peer_sigs = _authorized_signatures(authority, netmap["Peers"])
            visible: list[PeerView] = []
            filtered: list[PeerView] = []
            for peer, sig in zip(netmap["Peers"], peer_sigs, strict=True):
                (visible if sig is not None else filtered).append(_peer_view(peer, sig))
            st = LockStatus(
                enabled=True,
                public_key=s.lock_public,
                node_key=node_key,
                head=bytes(authority.head),
                node_key_signed=own is not None,
                node_key_signature=own,
                trusted_keys=authority.keys(),
                visible_peers=tuple(visible),
                filtered_peers=tuple(filtered),
                state_id=authority.state.state_id1,
            )
    sys.stdout.write(status_json(st) if version else status_human(st))
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    from signer.cli.lock_commands import json_version

    version = json_version(args.json)
    if args.limit < 0:
        raise UsageError("--limit must not be negative")
    with session(args) as s:
        if s.authority is None:
            raise CommandError("Tailnet Lock is not enabled")
        if args.graph is not None:
            from signer.graph import show_graph

            return show_graph(s.authority, args.graph, args.json)
        entries: list[tuple[bytes, AUM]] = []
        cursor: AUM | None = s.authority.head_aum
        while cursor is not None and len(entries) < args.limit:
            entries.append((bytes(cursor.hash()), cursor))
            if cursor.prev_aum_hash is None:
                break
            cursor = s.authority.storage.aum(cursor.prev_aum_hash)
    color = sys.stdout.isatty() and "NO_COLOR" not in __import__("os").environ
    sys.stdout.write(log_json(entries) if version else log_human(entries, color=color))
    return 0


# -- changing the authority -----------------------------------------------------------------------


# How often a change is rebuilt on a head that moved under it before the command gives up,
# and the longest pause (seconds, times the attempt number, at random below it) before
# rebuilding, so that writers racing each other spread out instead of colliding again.
MAX_REBUILDS = 20
REBUILD_BACKOFF = 0.05


def _submitted(s: Session, updates: list[AUM]) -> bool:
    """Modify flow (docs/control.md): send the new AUMs on top of our head, sync again, and say
    whether they are on the service's active chain now. A concurrent writer may have reached
    the service first (its update and ours then compete for the same parent, and ours can
    lose fork choice): an exit 0 must mean the change is in effect."""
    authority = s.require_authority()
    last = updates[-1].hash()
    s.client.sync_send(str(authority.head), [_b64(u.to_cbor()) for u in updates], True)
    s.resync()
    return _on_active_chain(s.require_authority(), bytes(last))


def _on_active_chain(authority: Authority, h: bytes) -> bool:
    cursor: AUM | None = authority.head_aum
    oldest = bytes(authority.oldest_ancestor.hash())
    for _ in range(MAX_SCAN_ITERATIONS):
        if cursor is None:
            return False
        here = bytes(cursor.hash())
        if here == h:
            return True
        if here == oldest or cursor.parent is None:
            return False
        cursor = authority.storage.aum(cursor.parent)
    return False


def _modify(s: Session, add: list[Key], remove: list[bytes], plan: list[str], action: str) -> None:
    """Build, sign and submit the change on the current head; when another update got there
    first, sync, rebuild what is still to do on the new head and sign again (saying so)."""
    from signer.signing import aum_signer
    from verifier.builder import UpdateBuilder

    # Ask before any key is touched: an appliance would otherwise show its screen first.
    confirm(s.args, plan, action)
    with s.backends() as backends:
        for attempt in range(1, MAX_REBUILDS + 1):
            authority = s.require_authority()
            for backend in backends:
                _require_trusted(authority, backend.public_key())
            todo_add, todo_remove = add, remove
            if attempt > 1:
                # What the competing updates already did is done.
                todo_add = [k for k in add if not authority.key_trusted(k.public or b"")]
                todo_remove = [k for k in remove if authority.key_trusted(k)]
                if not todo_add and not todo_remove:
                    return
            builder = UpdateBuilder(authority, *(aum_signer(b) for b in backends))
            for key in todo_add:
                builder.add_key(key)
            for key_id in todo_remove:
                builder.remove_key(key_id)
            updates = builder.finalize()
            if not updates or _submitted(s, updates):
                return
            if attempt < MAX_REBUILDS:
                print(
                    "tka: another update reached the service first; signing the change again "
                    f"on its new head ({attempt + 1} of {MAX_REBUILDS})",
                    file=sys.stderr,
                )
                import secrets  # here, not at start-up: it loads `random`

                time.sleep(secrets.SystemRandom().uniform(0, REBUILD_BACKOFF * attempt))
                s.resync()
                for backend in backends:
                    backend.track(s.require_authority())
    raise CommandError(
        f"the change lost {MAX_REBUILDS} races against concurrent updates and is not in effect; "
        "try again"
    )


def cmd_add(args: argparse.Namespace) -> int:
    keys = _keys(args.keys)
    with session(args) as s:
        s.require_authority()
        plan = [f"will trust {format_tlpub(k.public or b'')} ({k.votes} votes)" for k in keys]
        _modify(s, keys, [], plan, "add these signing keys")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from signer.nks_signing import sign_direct_nks

    keys = _keys(args.keys)
    with session(args) as s:
        authority = s.require_authority()
        if len(authority.keys()) == 1:
            raise CommandError(
                "cannot remove the last trusted signing key; use 'tka disable' to disable "
                "tailnet lock instead, or add another signing key before removing one"
            )
        key_ids = [k.public or b"" for k in keys]
        plan = [f"will stop trusting {format_tlpub(k)}" for k in key_ids]
        resigned = 0
        if args.re_sign:
            if s.lock_public in key_ids:
                raise CommandError(
                    "cannot remove local trusted signing key while resigning; run command on a "
                    "different node or with --re-sign=false"
                )
            with s.backend() as backend:
                _require_trusted(authority, backend.public_key())
                for key_id in key_ids:
                    reply = s.client.affected_signatures(_b64(key_id))
                    for i, raw_b64 in enumerate(reply["Signatures"]):
                        raw = base64.b64decode(raw_b64)
                        old = NodeKeySignature.from_cbor(raw)
                        if old.authorizing_key_id() != key_id:
                            raise CommandError(
                                f"got signature with keyID {old.authorizing_key_id().hex()} "
                                f"from request for {key_id.hex()}"
                            )
                        node_key = old.node_key()
                        try:
                            authority.node_key_authorized(node_key, raw)
                        except TKAError as err:
                            raise CommandError(f"signature {i} is not valid: {err}") from None
                        new = sign_direct_nks(backend, node_key, old.wrapping_public() or b"")
                        s.client.submit_signature(_b64(new))
                        resigned += 1
        else:
            plan.append("nodes signed only by these keys will be locked out (--re-sign=false)")
        _modify(s, [], key_ids, plan, "remove these signing keys")
    if resigned:
        print(f"re-signed {resigned} node key(s) before removing the key(s)", file=sys.stderr)
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from verifier import authkey

    words = [_read_file_arg(a) for a in args.args]
    if args.deeplink is not None:
        if words:
            raise UsageError("usage: tka sign --deeplink <tailscale://sign-device/v1/?…>")
        return _sign_deeplink(args, _read_file_arg(args.deeplink))
    if words and words[0].startswith(authkey.AUTHKEY_PREFIX):
        if len(words) != 1:
            raise UsageError("usage: tka sign <tailscale pre-auth key>")
        return _sign_auth_key(args, words[0])
    if getattr(args, "mode", None) is not None:
        raise UsageError("--mode applies to pre-approved auth keys signed with --authority")
    node_key, rotation = parse_sign_words(words)
    with session(args) as s:
        _sign_node_key(s, node_key, rotation, None, [])
    return 0


def parse_sign_words(words: list[str]) -> tuple[bytes, bytes]:
    """`<node-key> [<rotation-key>]`: the node key and the rotation key (b"" if none)."""
    from signer.bulk import check_rotation_key

    if not 1 <= len(words) <= 2:
        raise UsageError("usage: tka sign <node-key> [<rotation-key>]")
    try:
        node_key = parse_node_public(words[0])
    except DecodeError as err:
        raise UsageError(f"decoding node-key: {err}") from None
    rotation = b""
    if len(words) == 2:
        try:
            rotation = parse_nl_public(words[1])
        except DecodeError as err:
            raise UsageError(f"decoding rotation-key: {err}") from None
        try:
            check_rotation_key(rotation)
        except SignerError as err:
            raise UsageError(f"decoding rotation-key: {err}") from None
    return node_key, rotation


def _sign_deeplink(args: argparse.Namespace, link: str) -> int:
    """Sign what a signing deeplink (docs/format.md §9) names: its node key, with its tailnet-lock
    key as the rotation key, after checking its MAC with the authority's StateID1."""
    from signer.bulk import check_rotation_key
    from verifier.deeplink import validate_deeplink

    with session(args) as s:
        authority = s.require_authority()
        checked = validate_deeplink(link, authority.state.state_id1)
        if not checked.valid:
            raise CommandError(f"the signing deeplink is not valid: {checked.error}")
        try:
            node_key = parse_node_public(checked.node_key)
            rotation = parse_nl_public(checked.tlpub)
        except DecodeError as err:
            raise CommandError(f"the signing deeplink names a malformed key: {err}") from None
        try:
            check_rotation_key(rotation)
        except SignerError as err:
            raise CommandError(f"the signing deeplink's tailnet-lock key: {err}") from None
        shown = [
            f"device: {safe_text(checked.device_name)} ({safe_text(checked.os_name)}), "
            f"login {safe_text(checked.email)}"
        ]
        _sign_node_key(s, node_key, rotation, link, shown)
    return 0


def _sign_node_key(
    s: Session, node_key: bytes, rotation: bytes, deeplink: str | None, extra_plan: list[str]
) -> None:
    from signer.nks_signing import sign_direct_nks

    authority = s.require_authority()
    with s.backend() as backend:
        if not authority.key_trusted(backend.public_key()):
            # One line instead of the reference's four-line banner (docs/cli.md).
            raise NotTrustedError(
                "this node does not have a trusted tailnet lock key; signing is not "
                "available here, try again on a signing device"
            )
        signer_key = format_tlpub(backend.public_key())
        plan = [f"will sign {format_node_public(node_key)} with {signer_key}", *extra_plan]
        if rotation:
            plan.append(f"rotation key: {format_tlpub(rotation)}")
        confirm(s.args, plan, "sign this node key")
        nks = sign_direct_nks(backend, node_key, rotation, deeplink)
    s.client.submit_signature(_b64(nks))


def _read_file_arg(arg: str) -> str:
    return read_text_file(arg[len("file:") :]).strip() if arg.startswith("file:") else arg


def _sign_auth_key(args: argparse.Namespace, auth_key: str) -> int:
    """docs/format.md §9: a fresh credential key C, trusted by an AddKey we sign; C signs a
    credential for a fresh wrapping key W; C's private half is discarded."""
    from verifier import authkey

    if authkey.SEPARATOR in auth_key:
        raise CommandError("provided key was already wrapped")
    if args.mode == "direct":
        return _sign_auth_key_direct(args, auth_key)
    from signer.signing import revocable_auth_key

    with session(args) as s:
        s.require_authority()
        credential_key, wrapped = revocable_auth_key(auth_key, s.node.config().stable_id)
        c_public = credential_key.public or b""
        try:
            _modify(
                s,
                [credential_key],
                [],
                [f"will trust a new pre-auth credential key {format_tlpub(c_public)}"],
                "add the pre-auth credential key",
            )
        except TKAError as err:
            raise CommandError(f"add key failed: {err}") from None
    print(wrapped)
    return 0


def _sign_auth_key_direct(args: argparse.Namespace, auth_key: str) -> int:
    """`--mode direct`: the lock key signs the credential itself; nothing is added to the
    authority (docs/tailscale.md weighs the two modes)."""
    from signer.cli.authority_handlers import direct_credential_plan
    from signer.signing import wrap_auth_key

    with session(args) as s:
        authority = s.require_authority()
        with s.backend() as backend:
            _require_trusted(authority, backend.public_key())
            confirm(args, direct_credential_plan(backend), "sign the credential")
            wrapped = wrap_auth_key(backend, auth_key)
    print(wrapped)
    return 0


# -- disabling ------------------------------------------------------------------------------------


def _secret_arg(args: argparse.Namespace) -> bytes:
    if len(args.args) > 1:
        raise UsageError("usage: tka disable <disablement-secret>")
    text = read_secret_argument(args.args[0] if args.args else None, "disablement secret")
    try:
        return parse_disablement_secret(text)
    except DecodeError as err:
        raise UsageError(f"{err}; usage: tka disable <disablement-secret>") from None


def cmd_disable(args: argparse.Namespace) -> int:
    secret = _secret_arg(args)
    with session(args) as s:
        authority = s.require_authority()
        if not authority.valid_disablement(secret):
            raise CommandError("incorrect disablement secret")
        confirm(args, ["will disable tailnet lock for the whole tailnet"], "disable tailnet lock")
        s.client.disable(str(authority.head), _b64(secret))
        s.resync()
    return 0


def cmd_disablement_kdf(args: argparse.Namespace) -> int:
    if len(args.args) != 1:
        raise UsageError("usage: tka disablement-kdf <hex-encoded-disablement-secret>")
    text = read_secret_argument(args.args[0], "disablement secret (hex)")
    try:
        secret = parse_bare_hex(text, "disablement secret")
    except DecodeError as err:
        raise UsageError(str(err)) from None
    print(format_disablement_value(disablement_kdf(secret)))
    return 0


def cmd_local_disable(args: argparse.Namespace) -> int:
    with session(args) as s:
        if s.authority is None:
            raise CommandError("tailnet-lock is not active")
        confirm(args, ["will stop enforcing tailnet lock on this node only"], "local-disable")
        s.node.disallow(*s.authority.state_ids())
        s.node.remove_tka()
    return 0


# -- revocation -----------------------------------------------------------------------------------


def _check_recovery(authority: Authority, aum: AUM) -> list[str]:
    """Before co-signing: the blob must be a recovery checkpoint on our chain whose existing
    signatures verify at its parent. The reference co-signs any AUM; we refuse to sign blind."""
    if aum.kind != MessageKind.CHECKPOINT or aum.state is None or aum.prev_aum_hash is None:
        raise CommandError(f"not a recovery AUM: a {aum.kind_name} message")
    try:
        verify_aum(authority.state_at(aum.prev_aum_hash), aum)
    except TKAError as err:
        raise CommandError(f"recovery AUM does not verify: {err}") from None
    kept = {k.public for k in aum.state.trusted_keys}
    removed = [k.public or b"" for k in authority.keys() if k.public not in kept]
    return [f"recovery forks from {format_aum_hash(aum.prev_aum_hash)}"] + [
        f"will revoke {format_tlpub(k)}" for k in removed
    ]


def _check_cosigners(authority: Authority, aum: AUM, key_ids: list[bytes]) -> None:
    """Before any key signs: each must be trusted where the recovery forks (only there does its
    signature count) and must not have signed it already."""
    assert aum.prev_aum_hash is not None  # _check_recovery made sure
    parent = authority.state_at(aum.prev_aum_hash)
    for key_id in key_ids:
        if parent.get_key(key_id) is None:
            raise NotTrustedError(
                f"{format_tlpub(key_id)} is not trusted at "
                f"{format_aum_hash(aum.prev_aum_hash)}, where the recovery forks: its "
                "co-signature would not count"
            )
        if any(sig.key_id == key_id for sig in aum.signatures):
            raise CommandError("this node has already signed this recovery AUM")


def _check_recovery_won(authority: Authority, recovery: AUM) -> None:
    """A stored recovery AUM only helps if fork choice prefers it; say so when it did not."""
    assert recovery.state is not None
    kept = {k.public for k in recovery.state.trusted_keys}
    still = [k.public or b"" for k in authority.keys() if k.public not in kept]
    if still and authority.state_at(recovery.hash()) != authority.state:
        raise CommandError(
            f"the recovery AUM was accepted but lost fork resolution; {format_tlpub(still[0])} is "
            "still trusted: gather more co-signatures (more votes than the competing update)"
        )


def cmd_revoke_keys(args: argparse.Namespace) -> int:
    from signer.signing import aum_signer
    from verifier import revocation

    prog = program_name()
    if args.cosign or args.finish:
        if not args.args:
            raise UsageError("missing argument, expected a recovery blob")
        aum = revocation.from_blob(_read_file_arg(args.args[0]))
        with session(args) as s:
            original = aum
            if args.cosign:
                plan = _check_recovery(s.require_authority(), aum)
                confirm(args, plan, "co-sign it")
                with s.backends() as backends:
                    signers = [aum_signer(backend) for backend in backends]
                    _check_cosigners(s.require_authority(), aum, [sg.key_id for sg in signers])
                    for signer in signers:
                        aum = revocation.add_cosignature(aum, signer.signature_for(aum))
                blob = revocation.to_blob(aum)
                print("Co-signing completed successfully.\n")
                print(
                    "To accumulate an additional signature, run the following command on another "
                    "machine with a trusted tailnet lock key:"
                )
                print(f"\t{prog} revoke-keys --cosign {blob}\n")
                print(
                    "Alternatively if you are done with co-signing, complete recovery by running "
                    "the following command:"
                )
                print(f"\t{prog} revoke-keys --finish {blob}")
            if args.finish:
                from signer.cli.authority_handlers import lost_fork_choice, tally_lines

                submit = original if args.cosign else aum
                authority = s.require_authority()
                try:
                    tally = revocation.recovery_tally(authority, submit)
                except TKAError as err:
                    raise CommandError(str(err)) from None
                plan = tally_lines(tally, authority)
                if not tally.wins:
                    for line in plan:
                        print(line, file=sys.stderr)
                    raise lost_fork_choice(tally)
                confirm(args, [*plan, f"will submit recovery AUM {submit.hash()}"],
                        "finish recovery")
                s.client.sync_send(str(submit.hash()), [_b64(submit.to_cbor())], False)
                s.resync()
                _check_recovery_won(s.require_authority(), submit)
                print("Recovery completed.")
        return 0
    keys = _keys(args.args)
    with session(args) as s:
        authority = s.require_authority()
        revoke = [k.public or b"" for k in keys]
        with s.backends() as backends:
            from signer.cli.authority_handlers import start_recovery

            aum = start_recovery(authority, revoke, [aum_signer(b) for b in backends],
                                 args.fork_from)
    print("Run the following command on another machine with a trusted tailnet lock key:")
    print(f"\t{prog} revoke-keys --cosign {revocation.to_blob(aum)}")
    return 0
