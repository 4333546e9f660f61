"""The lifecycle commands against an authority directory (`--authority DIR`), with no
coordination service: for a tailnet on Tailscale's own service, whose state only its nodes hold.

The directory (a real node's `tka-profiles/<id>`, or a copy) is opened read-only
(`signer.authority_dir`). Reads show what it holds. What is signed is checked against it first
and then printed, for delivery through a node: Tailscale's client has one route for an AUM made
elsewhere, `tailscale lock revoke-keys --finish <blob>`, which transmits any AUM it is given (so
`add` and `remove` print that command too), and none for a node-key signature made elsewhere
(`sign` prints it for a coordination service of ours, or an operator's own tooling).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from signer.authority_dir import open_authority_dir
from signer.backends import open_backend
from signer.backends.base import KeyBackend
from signer.cli import UsageError
from signer.cli.lock_commands import CommandError, confirm, json_version, program_name
from signer.echo import clip_input
from signer.render import LockStatus, log_human, log_json, status_human, status_json
from signer.signing import aum_signer, revocable_auth_key, wrap_auth_key
from verifier import authkey, revocation
from verifier.aum import AUM
from verifier.authority import Authority
from verifier.builder import UpdateBuilder
from verifier.errors import DecodeError, NotTrustedError, TKAError
from verifier.signing import AUMSigner
from verifier.textforms import format_aum_hash, format_node_public, format_tlpub

TAILSCALE = "tailscale lock"

# Which commands can work from a directory alone, and how the others say why not.
NEEDS_SERVICE = {
    "init": "enabling tailnet lock needs the coordination service; on Tailscale's service run "
    "`tailscale lock init` on a node (trust a hardware key with its tlpub:), or use --control",
    "disable": "disabling needs the coordination service: on Tailscale's service run "
    "`tailscale lock disable` on a node, or use --control",
    "local-disable": "local-disable changes a node's own state: run `tailscale lock "
    "local-disable` on that node, or use --state",
    "disablement-kdf": "disablement-kdf needs no authority; run it without --authority",
}


@dataclass
class DirectorySession:
    args: argparse.Namespace
    directory: Path
    authority: Authority

    def key_uris(self) -> list[str]:
        if not self.args.key:
            raise UsageError("with --authority, name the signing key: --key URI")
        return list(self.args.key)

    @contextlib.contextmanager
    def backends(self) -> Iterator[list[KeyBackend]]:
        with contextlib.ExitStack() as stack:
            opened: list[KeyBackend] = []
            for uri in self.key_uris():
                backend = stack.enter_context(open_backend(uri))
                backend.track(self.authority)
                opened.append(backend)
            yield opened

    @contextlib.contextmanager
    def backend(self) -> Iterator[KeyBackend]:
        if len(self.key_uris()) > 1:
            raise UsageError("this command signs with one key: give --key once")
        with self.backends() as backends:
            yield backends[0]

    def require_trusted(self, backend: KeyBackend) -> None:
        if not self.authority.key_trusted(backend.public_key()):
            raise NotTrustedError(
                f"{format_tlpub(backend.public_key())} is not trusted by the authority in "
                f"{clip_input(str(self.directory))}; trust it first (`{TAILSCALE} add "
                f"{format_tlpub(backend.public_key())}` on a signing node)"
            )


def open_session(args: argparse.Namespace) -> DirectorySession:
    if args.state or args.control:
        raise UsageError("--authority works without a node: drop --state and --control")
    directory = Path(args.authority)
    return DirectorySession(args, directory, open_authority_dir(directory))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- reads ----------------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    if args.args:
        raise UsageError("status takes no arguments; usage: tka status [--json]")
    version = json_version(args.json)
    authority = open_session(args).authority
    st = LockStatus(
        enabled=True,
        public_key=None,
        node_key=None,
        head=bytes(authority.head),
        trusted_keys=authority.keys(),
        state_id=authority.state.state_id1,
    )
    sys.stdout.write(status_json(st) if version else status_human(st))
    return 0


def log_entries(authority: Authority, limit: int) -> list[tuple[bytes, AUM]]:
    """The active chain from the head back, at most `limit` AUMs (what `tka log` lists)."""
    entries: list[tuple[bytes, AUM]] = []
    cursor: AUM | None = authority.head_aum
    while cursor is not None and len(entries) < limit:
        entries.append((bytes(cursor.hash()), cursor))
        if cursor.prev_aum_hash is None:
            break
        cursor = authority.storage.aum(cursor.prev_aum_hash)
    return entries


def cmd_log(args: argparse.Namespace) -> int:
    version = json_version(args.json)
    if args.limit < 0:
        raise UsageError("--limit must not be negative")
    if args.graph is not None:
        from signer.graph import show_graph

        return show_graph(open_session(args).authority, args.graph, args.json)
    entries = log_entries(open_session(args).authority, args.limit)
    color = sys.stdout.isatty() and "NO_COLOR" not in __import__("os").environ
    sys.stdout.write(log_json(entries) if version else log_human(entries, color=color))
    return 0


# -- AUMs, printed for a node to transmit ----------------------------------------------------------


def _print_finish(updates: Sequence[AUM]) -> None:
    many = len(updates) > 1
    print(
        f"Run {'these commands, in this order,' if many else 'the following command'} on any "
        "node of the tailnet (it transmits the update to the coordination service):"
    )
    for aum in updates:
        print(f"\t{TAILSCALE} revoke-keys --finish {revocation.to_blob(aum)}")


def _print_updates(build: UpdateBuilder) -> None:
    updates = build.finalize()
    if not updates:
        raise CommandError("nothing to change")
    _print_finish(updates)
    for aum in updates:
        print(f"update {format_aum_hash(aum.hash())}: {aum.kind_name}", file=sys.stderr)


def cmd_add(args: argparse.Namespace) -> int:
    from signer.cli.lock_handlers import _keys

    keys = _keys(args.keys)
    s = open_session(args)
    plan = [f"will trust {format_tlpub(k.public or b'')} ({k.votes} votes)" for k in keys]
    confirm(args, plan, "sign these additions")
    with s.backends() as backends:
        for backend in backends:
            s.require_trusted(backend)
        builder = UpdateBuilder(s.authority, *(aum_signer(b) for b in backends))
        for key in keys:
            if s.authority.key_trusted(key.public or b""):
                raise CommandError(f"{format_tlpub(key.public or b'')} is already trusted")
            builder.add_key(key)
        _print_updates(builder)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from signer.cli.lock_handlers import _keys

    keys = _keys(args.keys)
    s = open_session(args)
    key_ids = [k.public or b"" for k in keys]
    for key_id in key_ids:
        if not s.authority.key_trusted(key_id):
            raise CommandError(f"{format_tlpub(key_id)} is not trusted by this authority")
    if len(s.authority.keys()) <= len(set(key_ids)):
        raise CommandError("cannot remove every trusted signing key; use `tailscale lock "
                           "disable` instead, or add another signing key first")
    plan = [f"will stop trusting {format_tlpub(k)}" for k in key_ids]
    plan.append("nodes signed only by these keys will be locked out unless re-signed on a node "
                "(`tailscale lock remove` re-signs them there)")
    confirm(args, plan, "sign these removals")
    with s.backends() as backends:
        for backend in backends:
            s.require_trusted(backend)
        builder = UpdateBuilder(s.authority, *(aum_signer(b) for b in backends))
        for key_id in key_ids:
            builder.remove_key(key_id)
        _print_updates(builder)
    return 0


# -- node keys and pre-approved auth keys --------------------------------------------------------


def cmd_sign(args: argparse.Namespace) -> int:
    from signer.cli.lock_handlers import _read_file_arg, parse_sign_words

    if args.deeplink is not None:
        raise UsageError("--deeplink with --authority is not supported: sign on a node of ours "
                         "(--state) or in the Tailscale client")
    words = [_read_file_arg(a) for a in args.args]
    if words and words[0].startswith(authkey.AUTHKEY_PREFIX):
        if len(words) != 1:
            raise UsageError("usage: tka sign <tailscale pre-auth key> --authority DIR --key URI")
        return _sign_auth_key(args, words[0])
    if args.mode is not None:
        raise UsageError("--mode applies to pre-approved auth keys only")
    node_key, rotation = parse_sign_words(words)
    s = open_session(args)
    from signer.nks_signing import sign_direct_nks

    with s.backend() as backend:
        s.require_trusted(backend)
        signer = format_tlpub(backend.public_key())
        plan = [f"will sign {format_node_public(node_key)} with {signer}"]
        if rotation:
            plan.append(f"rotation key: {format_tlpub(rotation)}")
        confirm(args, plan, "sign this node key")
        nks = sign_direct_nks(backend, node_key, rotation)
    print(_b64(nks))
    print(
        "the node-key signature above (base64, as a netmap's KeySignature) verifies under the "
        "authority; Tailscale's service takes node-key signatures only from a node's own lock "
        "key (`tailscale lock sign` on a signing node), so deliver it through a coordination "
        "service of ours, or use a pre-approved auth key (tka sign tskey-auth-…) instead",
        file=sys.stderr,
    )
    return 0


def _sign_auth_key(args: argparse.Namespace, auth_key: str) -> int:
    if authkey.SEPARATOR in auth_key:
        raise CommandError("provided key was already wrapped")
    mode = args.mode or "revocable"
    s = open_session(args)
    with s.backend() as backend:
        s.require_trusted(backend)
        signer_text = format_tlpub(backend.public_key())
        if mode == "direct":
            confirm(args, direct_credential_plan(backend), "sign the credential")
            print(wrap_auth_key(backend, auth_key))
            return 0
        # Tailscale's own behaviour: a fresh credential key C, trusted by an AddKey the hardware
        # key signs, signs the credential; C's private half is discarded.
        credential_key, wrapped = revocable_auth_key(auth_key, args.wrapper_stableid or "")
        c_public = credential_key.public or b""
        plan = [
            f"will add a pre-auth credential key {format_tlpub(c_public)} (1 vote), signed by "
            f"{signer_text}; the auth key works once that update is transmitted",
        ]
        confirm(args, plan, "sign the credential key's addition")
        builder = UpdateBuilder(s.authority, aum_signer(backend))
        builder.add_key(credential_key)
        updates = builder.finalize()
    print(wrapped)
    print(file=sys.stderr)
    saved = sys.stdout
    sys.stdout = sys.stderr  # the key is the only thing on stdout, so a script can capture it
    try:
        _print_finish(updates)
    finally:
        sys.stdout = saved
    return 0


def direct_credential_plan(backend: KeyBackend) -> list[str]:
    signer = format_tlpub(backend.public_key())
    return [
        f"will issue a pre-approved auth key whose credential {signer} signs itself",
        f"nothing is added to the authority: revoking the key means removing {signer}, which "
        "also drops every node it signed",
    ]


# -- revocation ------------------------------------------------------------------------------------


def tally_lines(tally: revocation.RecoveryTally, authority: Authority) -> list[str]:
    """The tally shown before a recovery is finished (both with --authority and with a service)."""
    signers = ", ".join(format_tlpub(k) for k in tally.signers) or "no key trusted there"
    lines = [
        f"recovery forks from {format_aum_hash(tally.parent)}",
        f"it carries {tally.votes} vote(s), by {signers}",
    ]
    lines += [f"it revokes {format_tlpub(k)}" for k in tally.revoked]
    if tally.competitor is None:
        lines.append("nothing competes with it: it extends the current head")
    else:
        lines.append(
            f"the current chain continues there with {tally.competitor.kind_name} "
            f"{format_aum_hash(tally.competitor.hash())}, {tally.competitor_votes} vote(s)"
        )
    if tally.wins:
        gone = ", ".join(f"{a.kind_name} {format_aum_hash(a.hash())[:12]}…"
                         for a in tally.discarded)
        lines.append("it WINS fork choice against the current head "
                     f"{format_aum_hash(authority.head)}")
        if tally.discarded:
            lines.append(f"it discards {len(tally.discarded)} AUM(s): {gone}")
    else:
        lines.append("it LOSES fork choice against the current head "
                     f"{format_aum_hash(authority.head)}")
    return lines


def lost_fork_choice(tally: revocation.RecoveryTally) -> CommandError:
    return CommandError(
        f"the recovery would lose fork choice ({tally.votes} vote(s) against "
        f"{tally.competitor_votes}): gather more co-signatures (--cosign) before --finish"
    )


def cmd_revoke_keys(args: argparse.Namespace) -> int:
    from signer.cli.lock_handlers import _check_cosigners, _keys, _read_file_arg

    prog = program_name()
    s = open_session(args)
    here = f"--authority {clip_input(str(s.directory))}"
    if args.cosign or args.finish:
        if not args.args:
            raise UsageError("missing argument, expected a recovery blob")
        aum = revocation.from_blob(_read_file_arg(args.args[0]))
        if args.cosign:
            tally = _tally(s.authority, aum)
            confirm(args, tally_lines(tally, s.authority), "co-sign it")
            with s.backends() as backends:
                signers = [aum_signer(b) for b in backends]
                _check_cosigners(s.authority, aum, [sg.key_id for sg in signers])
                for signer in signers:
                    aum = revocation.add_cosignature(aum, signer.signature_for(aum))
            blob = revocation.to_blob(aum)
            print("Co-signing completed successfully.\n")
            print("To accumulate an additional signature, run on another machine with a trusted "
                  "tailnet lock key one of:")
            print(f"\t{TAILSCALE} revoke-keys --cosign {blob}")
            print(f"\t{prog} revoke-keys {here} --key URI --cosign {blob}\n")
        tally = _tally(s.authority, aum)
        for line in tally_lines(tally, s.authority):
            print(line, file=sys.stderr)
        if not tally.wins:
            if args.finish:
                raise lost_fork_choice(tally)
            return 0
        print("When you are done co-signing, complete the recovery on any node of the tailnet:")
        print(f"\t{TAILSCALE} revoke-keys --finish {revocation.to_blob(aum)}")
        return 0
    revoke = [k.public or b"" for k in _keys(args.args)]
    with s.backends() as backends:
        aum = start_recovery(s.authority, revoke, [aum_signer(b) for b in backends],
                             args.fork_from)
    blob = revocation.to_blob(aum)
    print("Run one of the following on another machine with a trusted tailnet lock key:")
    print(f"\t{TAILSCALE} revoke-keys --cosign {blob}")
    print(f"\t{prog} revoke-keys {here} --key URI --cosign {blob}")
    return 0


def start_recovery(
    authority: Authority, revoke: list[bytes], signers: list[AUMSigner], fork_from: str
) -> AUM:
    """The recovery checkpoint that revokes `revoke`, forking from `fork_from` (a hash) or
    from where the reference would, signed by every signer in order."""
    from verifier.textforms import parse_fork_from

    if fork_from:
        try:
            parent = parse_fork_from(fork_from)
        except DecodeError as err:
            raise UsageError(f"invalid fork-from hash: {err}") from None
    try:
        if not fork_from:
            parent = revocation.fork_point(authority, revoke, signers[0].key_id)
        aum = revocation.recovery_aum(authority, revoke, parent)
    except TKAError as err:
        raise CommandError(f"generation of recovery AUM failed: {err}") from None
    for signer in signers:
        aum = signer.sign(aum)
    return aum


def _tally(authority: Authority, aum: AUM) -> revocation.RecoveryTally:
    try:
        return revocation.recovery_tally(authority, aum)
    except TKAError as err:
        raise CommandError(str(err)) from None
