"""`tka offline …`: signing from an air-gapped workstation (signer/offline.py and the
signer/offline_*.py modules; QR codes: signer/qr.py).

    online:   tka offline export-authority --out authority.json
    offline:  tka offline enroll --authority DIR --in authority.json --head <hash>   (once)
    online:   tka offline request [nodekey:… [tlpub:rotation]]… [--add tlpub:…[?votes]]…
                  [--remove tlpub:…]… [--update tlpub:…?votes=N&meta.K=V]…
                  [--cosign BLOB]… [--revoke-start tlpub:… [--fork-from HASH]]
                  [--auth-key file:PATH [--mode direct|revocable]]…
                  [--genesis tlpub:…[?votes]… --gen-disablements N] --out req.json
    offline:  tka offline sign --authority DIR --in req.json --out resp.json --key pkcs11:…
    online:   tka offline submit --in resp.json

Every file can travel as QR codes too: `--qr DIR` (numbered PNG images) and/or `--qr-terminal`
where a file is written, `--in-qr SOURCE…` (images, pasted text, directories) where it is read.

The online host may be compromised, so the offline side signs only under the authority it
pinned in DIR (the head typed at enrolment comes from a node the person trusts) and under
extensions of it that verify; each signing run advances the pin to the request's head (not past
the updates it builds: those are applied online when the response is submitted). A genesis
request (`tka init` offline) creates the pin instead.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from urllib.parse import parse_qsl

from signer.backends import open_backend
from signer.bulk import check_rotation_key
from signer.cli import UsageError
from signer.cli.lock_commands import (
    CommandError,
    common_parser,
    confirm,
    program_name,
    read_secret_argument,
    read_text_file,
)
from signer.cli.lock_handlers import session
from signer.offline import (
    AuthorityExport,
    active_chain,
    advance_pin,
    check_against_pin,
    enroll_pin,
    parse_pinned_head,
    pinned_authority,
)
from signer.offline_items import (
    DIRECT,
    REVOCABLE,
    AddItem,
    AuthKeyItem,
    Cosigned,
    CosignItem,
    GenesisItem,
    Item,
    ItemsRequest,
    ItemsResponse,
    NodeKeyItem,
    RecoveryStarted,
    RemoveItem,
    RevokeStartItem,
    SignedGenesis,
    SignedNodeKey,
    SignedUpdates,
    UpdateItem,
    check_auth_key,
)
from signer.offline_sign import (
    genesis_items_plan,
    items_plan,
    sign_genesis_request,
    sign_items,
)
from signer.offline_submit import verify_response
from verifier import revocation
from verifier.errors import DecodeError, SignerError, StorageError, ValidationError
from verifier.storage.atomic import atomic_write
from verifier.textforms import (
    parse_disablement_value_arg,
    parse_fork_from,
    parse_nl_public,
    parse_node_public,
)

# -- where files come from and go to: a file, or QR codes -----------------------------------------


def _read_input(args: argparse.Namespace) -> str:
    """The text of `--in FILE`, or of the file the QR parts of `--in-qr` carry."""
    if args.in_qr:
        from signer import qr

        stdin = sys.stdin.read(64 << 20) if "-" in args.in_qr else None
        data = qr.read_sources(args.in_qr, stdin)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("the QR codes do not carry a text file") from None
    return read_text_file(args.infile)


class _Output:
    """`--out FILE`, `--qr DIR`, `--qr-terminal`: checked before anything is signed, rendered
    before the pin moves, written last."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.out = Path(args.out) if args.out else None
        self.qr_dir = Path(args.qr) if args.qr else None
        self.terminal = bool(args.qr_terminal)
        if not (self.out or self.qr_dir or self.terminal):
            raise UsageError("say where to write: --out FILE, --qr DIR and/or --qr-terminal")
        if self.out is not None and (not self.out.parent.is_dir() or self.out.is_dir()):
            raise CommandError(f"cannot write {self.out}: not a file in an existing directory")
        if self.qr_dir or self.terminal:
            from signer import qr

            qr._require("segno")
            if self.qr_dir:
                qr._require("PIL.Image")
                qr.check_png_dir(self.qr_dir)
        self._data = b""
        self._parts: list[str] = []
        self._pngs: list[bytes] = []

    def render(self, text: str) -> None:
        from signer import qr

        self._data = text.encode()
        if self.qr_dir or self.terminal:
            self._parts = qr.split(self._data)
        if self.qr_dir:
            self._pngs = qr.render_pngs(self._parts)

    def write(self, mode: int, what: str) -> list[str]:
        """Write everything; the lines saying where it went."""
        from signer import qr

        lines = []
        secret = " (mode 0600: it holds a secret)" if mode == 0o600 else ""
        if self.out is not None:
            atomic_write(self.out, self._data, mode)
            lines.append(f"wrote {what} to {self.out}{secret}")
        if self.qr_dir is not None:
            qr.write_pngs(self.qr_dir, self._pngs, mode)
            n = len(self._pngs)
            lines.append(f"wrote {what} as {n} QR code{'' if n == 1 else 's'} to "
                         f"{self.qr_dir}/{qr.png_names(n)[0]}…{secret}")
        if self.terminal:
            sys.stdout.write(qr.render_terminal(self._parts))
            lines.append(f"showed {what} as {len(self._parts)} QR code(s) above, payload "
                         f"{qr.payload_digest(self._data)}")
        return lines


def _add_output(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--out", metavar="FILE", help=f"{what} file to write")
    p.add_argument("--qr", metavar="DIR", help=f"write the {what} as numbered QR-code PNG "
                   "images into DIR (new or empty; needs the qr extra)")
    p.add_argument("--qr-terminal", action="store_true",
                   help=f"show the {what} as QR codes on the terminal (needs the qr extra)")


def _add_input(p: argparse.ArgumentParser, what: str) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--in", dest="infile", help=f"{what} file")
    group.add_argument("--in-qr", nargs="+", metavar="SOURCE", action="extend",
                       help=f"read the {what} from its QR codes: PNG images, text files with "
                       "one code's text per line, directories of them, or - (stdin)")


# -- request ---------------------------------------------------------------------------------------


def _parse_update(text: str, n: int) -> UpdateItem:
    """`tlpub:…?N`, or `tlpub:…?votes=N&meta.KEY=VALUE…` (`meta=` alone: no metadata)."""
    body, _, query = text.partition("?")
    key_id = parse_nl_public(body)
    if query.isdigit():
        return UpdateItem(key_id, int(query))
    votes: int | None = None
    meta: dict[str, str] | None = None
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if name == "votes" and value.isdigit():
            votes = int(value)
        elif name == "meta" and value == "":
            meta = meta or {}
        elif name.startswith("meta.") and len(name) > 5:
            meta = (meta or {}) | {name[5:]: value}
        else:
            raise UsageError(f"--update {n}: unknown {name!r}; give ?votes=N and/or "
                             "&meta.KEY=VALUE")
    if votes is None and meta is None:
        raise UsageError(f"--update {n}: give new votes (?votes=N) and/or metadata "
                         "(?meta.KEY=VALUE)")
    return UpdateItem(key_id, votes, meta)


def _genesis_item(args: argparse.Namespace) -> GenesisItem:
    from signer.cli.lock_handlers import parse_key_arg

    if args.gen_disablements is None or not 0 <= args.gen_disablements <= 32:
        raise UsageError("--genesis needs --gen-disablements N (0 to 32): the offline side "
                         "generates that many disablement secrets")
    values = tuple(parse_disablement_value_arg(v) for v in args.disablement_value)
    keys = tuple(parse_key_arg(k, n) for n, k in enumerate(args.genesis, start=1))
    return GenesisItem(keys, args.gen_disablements, values)


def _request_items(args: argparse.Namespace, stable_id: str) -> list[Item]:
    """The items of `tka offline request`, in the order: genesis, node keys, additions,
    removals, updates, co-signatures, recovery, auth keys."""
    from signer.cli.lock_handlers import _read_file_arg, parse_key_arg

    items: list[Item] = []
    words = list(args.node_keys)
    i = 0
    try:
        if args.genesis:
            items.append(_genesis_item(args))
        elif args.gen_disablements is not None or args.disablement_value:
            raise UsageError("--gen-disablements and --disablement-value go with --genesis")
        while i < len(words):
            node_key = parse_node_public(words[i])
            rotation = b""
            if i + 1 < len(words) and words[i + 1].startswith(("tlpub:", "nlpub:")):
                rotation = parse_nl_public(words[i + 1])
                i += 1
            check_rotation_key(rotation or None)
            items.append(NodeKeyItem(node_key, rotation))
            i += 1
        items += [AddItem(parse_key_arg(k, n)) for n, k in enumerate(args.add, start=1)]
        for n, k in enumerate(args.remove, start=1):
            key = parse_key_arg(k, n)
            items.append(RemoveItem(key.public or b""))
        items += [_parse_update(u, n) for n, u in enumerate(args.update, start=1)]
        items += [CosignItem(revocation.from_blob(_read_file_arg(b))) for b in args.cosign]
        if args.revoke_start:
            if args.fork_from:
                parse_fork_from(args.fork_from)
            items.append(RevokeStartItem(
                tuple(parse_key_arg(k, n).public or b""
                      for n, k in enumerate(args.revoke_start, start=1)), args.fork_from or ""))
        elif args.fork_from:
            raise UsageError("--fork-from goes with --revoke-start")
        for value in args.auth_key:
            auth_key = read_secret_argument(value, "auth key")
            check_auth_key(auth_key)
            items.append(AuthKeyItem(auth_key, args.mode,
                                     stable_id if args.mode == REVOCABLE else ""))
        if args.genesis and not all(isinstance(x, (GenesisItem, NodeKeyItem)) for x in items):
            raise UsageError("a --genesis request holds only node keys besides: make the other "
                             "changes in a request after it is submitted")
        if not items:
            raise UsageError("nothing to request: give node keys, --add, --remove, --update, "
                             "--cosign, --revoke-start, --auth-key or --genesis")
        return items
    except (DecodeError, SignerError, ValidationError) as err:
        raise UsageError(str(err)) from None


def cmd_request(args: argparse.Namespace) -> int:
    output = _Output(args)
    with session(args) as s:
        items = _request_items(args, s.node.config().stable_id)
        if args.genesis:
            if s.authority is not None:
                raise CommandError("tailnet lock is already enabled")
            request = ItemsRequest(tuple(items), ())
        else:
            request = ItemsRequest(tuple(items), active_chain(s.require_authority()))
    output.render(request.to_json())
    n = len(items)
    for line in output.write(0o600 if request.secret else 0o644,
                             f"a version-{request.file_version} signing request with {n} "
                             f"item{'' if n == 1 else 's'}"):
        print(line)
    return 0


# -- the pin -------------------------------------------------------------------------------------


def cmd_export_authority(args: argparse.Namespace) -> int:
    output = _Output(args)
    with session(args) as s:
        export = AuthorityExport(active_chain(s.require_authority()))
    output.render(export.to_json())
    # No head printed: this host may be the compromised one; the person reads it elsewhere.
    for line in output.write(0o644, f"the authority ({len(export.chain)} AUMs)"):
        print(line)
    print("enroll it offline with the head a node you trust shows (`tka status --json`, "
          "`tka log`)")
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    try:
        head = parse_pinned_head(args.head)
    except DecodeError as err:
        raise UsageError(str(err)) from None
    export = AuthorityExport.from_json(_read_input(args))
    directory = Path(args.authority)
    authority = enroll_pin(directory, export.chain, head)
    keys = len(authority.keys())
    print(f"pinned authority {authority.state.state_id()} at head {authority.head} "
          f"({keys} trusted key{'' if keys == 1 else 's'}) in {directory}")
    return 0


# -- sign ------------------------------------------------------------------------------------------


def cmd_sign(args: argparse.Namespace) -> int:
    request = ItemsRequest.from_json(_read_input(args))
    # Checked before signing: a signature made and then not written would still move the pin.
    output = _Output(args)
    if request.genesis is not None:
        return _sign_genesis(args, request, output)
    if args.secrets_out:
        raise UsageError("--secrets-out is for a genesis request only")
    with pinned_authority(Path(args.authority)) as pinned:
        checked = check_against_pin(pinned, request.chain)
        # One backend for everything: the PKCS#11 backend logs in (one PIN) at its first
        # signature.
        with open_backend(args.key) as backend:
            plan = items_plan(checked, request, backend.public_key())
            if args.confirm:  # confirm() shows the plan itself when it asks
                for line in plan:
                    print(line, file=sys.stderr)
            confirm(args, plan, "sign")
            # An appliance checks the request's authority against the one it is enrolled in.
            backend.track(checked.authority)
            response = sign_items(backend, checked, request)
        output.render(response.to_json(request.file_version))
        # The pin moves (to the request's head, not past the updates just built) before the
        # signatures leave: else an older request would still pass.
        advance_pin(pinned, checked)
    if checked.added:
        print(f"the pinned authority is now at head {checked.authority.head}", file=sys.stderr)
    n = len(response.results)
    for line in output.write(0o600 if response.secret else 0o644,
                             f"{n} signed item{'' if n == 1 else 's'}"):
        print(line)
    return 0


def _sign_genesis(args: argparse.Namespace, request: ItemsRequest, output: _Output) -> int:
    """`tka init` offline: no pin yet; it is made from the genesis signed here."""
    from signer.cli.lock_handlers import _hand_over_secrets

    directory = Path(args.authority)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise StorageError(f"{directory} already holds a pinned authority; a genesis creates "
                           "a new one: name a new directory")
    if not directory.parent.is_dir():
        raise StorageError(f"cannot create {directory}: {directory.parent} is not a directory")
    secrets_out = Path(args.secrets_out) if args.secrets_out else None
    if secrets_out is not None and (secrets_out.exists() or not secrets_out.parent.is_dir()):
        raise CommandError(f"cannot create {secrets_out}: it exists or its directory does not")
    with open_backend(args.key) as backend:
        plan = genesis_items_plan(request, backend.public_key())
        if args.confirm:
            for line in plan:
                print(line, file=sys.stderr)
        confirm(args, plan, "sign the genesis")
        genesis, response = sign_genesis_request(backend, request)
    output.render(response.to_json(request.file_version))
    # The secrets reach the person (or their file) first: nothing can enable lock with this
    # genesis before they do. If that fails, nothing else is written.
    _hand_over_secrets(args.secrets_out, list(genesis.secrets))
    enroll_pin(directory, [genesis.aum], genesis.aum.hash())
    print(f"pinned the new authority {genesis.authority.state.state_id()} at its genesis "
          f"{genesis.authority.head} in {directory}", file=sys.stderr)
    n = len(response.results)
    for line in output.write(0o644, f"{n} signed item{'' if n == 1 else 's'} (the genesis "
                             "and node keys; no secret)"):
        print(line)
    return 0


# -- submit ----------------------------------------------------------------------------------------


def _submit_genesis(s: object, response: ItemsResponse, descriptions: list[str]) -> list[str]:
    from signer.cli.lock_handlers import Session

    assert isinstance(s, Session)
    genesis = response.genesis
    assert genesis is not None
    b64 = base64.b64encode
    need = s.client.init_begin(b64(genesis.to_cbor()).decode())["NeedSignatures"]
    registered = {parse_node_public(str(item["NodePublic"])): str(item["NodeID"])
                  for item in need}
    out: list[str] = []
    signatures: dict[str, str] = {}
    for result, what in zip(response.results, descriptions, strict=True):
        if isinstance(result, SignedGenesis):
            out.append(f"enabled tailnet lock with {what}")
        elif isinstance(result, SignedNodeKey):
            from verifier.nks import NodeKeySignature

            node_key = NodeKeySignature.from_cbor(result.signature).node_key()
            if node_key not in registered:
                raise CommandError(f"{what} is not registered with the coordination service; "
                                   "nothing was enabled (drop it from the request)")
            signatures[registered[node_key]] = b64(result.signature).decode()
            out.append(f"submitted the signature for {what}")
    s.client.init_finish(signatures, None)
    s.resync()
    unsigned = len(registered) - len(signatures)
    if unsigned:
        out.append(f"{unsigned} registered node(s) have no signature under the new authority: "
                   "sign them (`tka offline request nodekey:…`)")
    return out


def cmd_submit(args: argparse.Namespace) -> int:
    response = ItemsResponse.from_json(_read_input(args))
    prog = program_name()
    with session(args) as s:
        authority = s.authority
        descriptions = verify_response(authority, response)  # all of it, before anything is sent
        if response.genesis is not None:
            for line in _submit_genesis(s, response, descriptions):
                print(line)
            return 0
        assert authority is not None
        out: list[str] = []
        for result, what in zip(response.results, descriptions, strict=True):
            if isinstance(result, SignedNodeKey):
                s.client.submit_signature(base64.b64encode(result.signature).decode())
                out.append(f"submitted the signature for {what}")
            elif isinstance(result, SignedUpdates):
                s.client.sync_send(str(authority.head),
                                   [base64.b64encode(a.to_cbor()).decode() for a in result.aums],
                                   True)
                s.resync()
                head = s.require_authority().head
                if head != result.aums[-1].hash():
                    raise CommandError(f"submitted {what}, but the authority is at {head}, "
                                       "not at their last one: run `tka status` and check")
                out.append(f"submitted {what}; head is now {head}")
            elif isinstance(result, Cosigned):
                blob = revocation.to_blob(result.recovery)
                out.append(f"co-signed {what}; finish it with `{prog} revoke-keys --finish "
                           f"{blob}` or `tailscale lock revoke-keys --finish {blob}`")
            elif isinstance(result, RecoveryStarted):
                blob = revocation.to_blob(result.recovery)
                out.append(f"started {what}; run on another machine with a trusted tailnet "
                           f"lock key: `{prog} revoke-keys --cosign {blob}` (or `tailscale lock "
                           f"revoke-keys --cosign {blob}`), then --finish")
            elif isinstance(result, SignedGenesis):
                raise CommandError("a genesis cannot be submitted here")  # verify_response
            else:
                out.append(f"{what}: {result.text}")
    for line in out:
        print(line)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = subparsers.add_parser("offline", help="sign on an air-gapped workstation")
    sub = top.add_subparsers(dest="offline_command", metavar="<step>", required=True)
    common = common_parser()
    p = sub.add_parser("request", parents=[common], help="online: write a signing request")
    p.add_argument("node_keys", nargs="*", metavar="nodekey:… [tlpub:rotation]",
                   help="node keys to sign, each optionally followed by its rotation key")
    p.add_argument("--add", action="append", default=[], metavar="tlpub:…[?votes]",
                   help="a key to trust (repeatable)")
    p.add_argument("--remove", action="append", default=[], metavar="tlpub:…",
                   help="a key to stop trusting (repeatable)")
    p.add_argument("--update", action="append", default=[],
                   metavar="tlpub:…?votes=N&meta.KEY=VALUE",
                   help="change a trusted key's votes and/or replace its metadata (repeatable)")
    p.add_argument("--cosign", action="append", default=[], metavar="BLOB",
                   help="a recovery blob (or file:PATH) to co-sign (repeatable)")
    p.add_argument("--revoke-start", action="append", default=[], metavar="tlpub:…",
                   help="start a recovery revoking this key (repeatable: one recovery revoking "
                   "them all), as `tka revoke-keys` does")
    p.add_argument("--fork-from", metavar="HASH",
                   help="with --revoke-start: the AUM the recovery forks from")
    p.add_argument("--auth-key", action="append", default=[], metavar="file:PATH",
                   help="a plain pre-auth key to wrap (file:PATH, or - for stdin; repeatable); "
                   "the request and the response hold secrets (0600)")
    p.add_argument("--mode", choices=[DIRECT, REVOCABLE], default=DIRECT,
                   help="how --auth-key keys are wrapped: direct (the lock key signs the "
                   "credential; the default) or revocable (Tailscale's: a fresh credential key "
                   "that an added trusted key vouches for)")
    p.add_argument("--genesis", action="append", default=[], metavar="tlpub:…[?votes]",
                   help="tka init offline: a trusted key of the new authority (repeatable; the "
                   "offline key must be one)")
    p.add_argument("--gen-disablements", type=int, metavar="N",
                   help="with --genesis: disablement secrets the offline side generates")
    p.add_argument("--disablement-value", action="append", default=[],
                   metavar="disablement:HEX",
                   help="with --genesis: a disablement value made elsewhere (repeatable)")
    _add_output(p, "request")
    p.set_defaults(func=cmd_request)
    p = sub.add_parser("export-authority", parents=[common],
                       help="online: write the authority for `tka offline enroll`")
    _add_output(p, "authority")
    p.set_defaults(func=cmd_export_authority)
    p = sub.add_parser("enroll", help="offline: pin the authority that requests must extend")
    p.add_argument("--authority", metavar="DIR", required=True,
                   help="directory to create for the pinned authority (mode 0700)")
    _add_input(p, "authority (from export-authority) or request")
    p.add_argument("--head", required=True, metavar="HASH",
                   help="the authority's head as a node you trust shows it (tka status --json)")
    p.set_defaults(func=cmd_enroll)
    p = sub.add_parser("sign", help="offline: check a request against the pinned authority "
                       "and sign it")
    p.add_argument("--authority", metavar="DIR", required=True,
                   help="the pinned authority (tka offline enroll); advanced to the request's "
                   "head after signing; for a genesis request, a new directory to pin it in")
    _add_input(p, "request")
    _add_output(p, "response")
    p.add_argument("--key", required=True, help="lock-key URI (pkcs11:…, appliance:… or file:…)")
    p.add_argument("--secrets-out", metavar="FILE",
                   help="genesis: write the disablement secrets to this new file (0600) "
                   "instead of showing them")
    p.add_argument("--yes", "--confirm", dest="confirm", action="store_true",
                   help="do not ask before signing")
    p.set_defaults(func=cmd_sign)
    p = sub.add_parser("submit", parents=[common],
                       help="online: verify every item of a response, then submit them")
    _add_input(p, "response")
    p.set_defaults(func=cmd_submit)
