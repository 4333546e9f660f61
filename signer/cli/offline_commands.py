"""`tka offline …`: signing from an air-gapped workstation (signer/offline.py,
signer/offline_items.py).

    online:   tka offline export-authority --out authority.json
    offline:  tka offline enroll --authority DIR --in authority.json --head <hash>   (once)
    online:   tka offline request [nodekey:… [tlpub:rotation]]… [--add tlpub:…[?votes]]…
                  [--remove tlpub:…]… [--cosign BLOB]… [--auth-key file:PATH]… --out req.json
    offline:  tka offline sign --authority DIR --in req.json --out resp.json --key pkcs11:…
    online:   tka offline submit --in resp.json

The online host may be compromised, so the offline side signs only under the authority it
pinned in DIR (the head typed at enrolment comes from a node the person trusts) and under
extensions of it that verify; each signing run advances the pin to the request's head (not past
the updates it builds: those are applied online when the response is submitted).
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

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
    AddItem,
    AuthKeyItem,
    Cosigned,
    CosignItem,
    Item,
    ItemsRequest,
    ItemsResponse,
    NodeKeyItem,
    RemoveItem,
    SignedNodeKey,
    SignedUpdates,
    check_auth_key,
    items_plan,
    sign_items,
    verify_response,
)
from verifier import revocation
from verifier.errors import DecodeError, SignerError, ValidationError
from verifier.storage.atomic import atomic_write
from verifier.textforms import parse_nl_public, parse_node_public


def _read(path: str) -> str:
    return read_text_file(path)


def _request_items(args: argparse.Namespace) -> list[Item]:
    """The items of `tka offline request`, in the order: node keys, additions, removals,
    co-signatures, auth keys."""
    from signer.cli.lock_handlers import _read_file_arg, parse_key_arg

    items: list[Item] = []
    words = list(args.node_keys)
    i = 0
    try:
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
        items += [CosignItem(revocation.from_blob(_read_file_arg(b))) for b in args.cosign]
        for value in args.auth_key:
            auth_key = read_secret_argument(value, "auth key")
            check_auth_key(auth_key)
            items.append(AuthKeyItem(auth_key))
    except (DecodeError, SignerError, ValidationError) as err:
        raise UsageError(str(err)) from None
    if not items:
        raise UsageError("nothing to request: give node keys, --add, --remove, --cosign or "
                         "--auth-key")
    return items


def cmd_request(args: argparse.Namespace) -> int:
    items = _request_items(args)
    with session(args) as s:
        request = ItemsRequest(tuple(items), active_chain(s.require_authority()))
    # A request with an auth key carries that secret: 0600 like the response will be.
    atomic_write(Path(args.out), request.to_json().encode(), 0o600 if request.secret else 0o644)
    n = len(items)
    print(f"wrote a signing request with {n} item{'' if n == 1 else 's'} to {args.out}"
          + (" (mode 0600: it holds an auth key)" if request.secret else ""))
    return 0


def cmd_export_authority(args: argparse.Namespace) -> int:
    with session(args) as s:
        export = AuthorityExport(active_chain(s.require_authority()))
    atomic_write(Path(args.out), export.to_json().encode())
    # No head printed: this host may be the compromised one; the person reads it elsewhere.
    print(f"wrote the authority ({len(export.chain)} AUMs) to {args.out}; enroll it offline "
          "with the head a node you trust shows (`tka status --json`, `tka log`)")
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    try:
        head = parse_pinned_head(args.head)
    except DecodeError as err:
        raise UsageError(str(err)) from None
    export = AuthorityExport.from_json(_read(args.infile))
    directory = Path(args.authority)
    authority = enroll_pin(directory, export.chain, head)
    keys = len(authority.keys())
    print(f"pinned authority {authority.state.state_id()} at head {authority.head} "
          f"({keys} trusted key{'' if keys == 1 else 's'}) in {directory}")
    return 0


def _check_out(path: Path) -> None:
    # Checked before signing: a signature made and then not written would still move the pin.
    if not path.parent.is_dir() or path.is_dir():
        raise CommandError(f"cannot write {path}: not a file in an existing directory")


def cmd_sign(args: argparse.Namespace) -> int:
    request = ItemsRequest.from_json(_read(args.infile))
    out = Path(args.out)
    _check_out(out)
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
        # The pin moves (to the request's head, not past the updates just built) before the
        # signatures leave: else an older request would still pass.
        advance_pin(pinned, checked)
    atomic_write(out, response.to_json(request.version).encode(),
                 0o600 if response.secret else 0o644)
    if checked.added:
        print(f"the pinned authority is now at head {checked.authority.head}", file=sys.stderr)
    n = len(response.results)
    print(f"wrote {n} signed item{'' if n == 1 else 's'} to {args.out}"
          + (" (mode 0600: it holds a wrapped auth key's private key)" if response.secret
             else ""))
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    response = ItemsResponse.from_json(_read(args.infile))
    prog = program_name()
    with session(args) as s:
        authority = s.require_authority()
        descriptions = verify_response(authority, response)  # all of it, before anything is sent
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
    p.add_argument("--cosign", action="append", default=[], metavar="BLOB",
                   help="a recovery blob (or file:PATH) to co-sign (repeatable)")
    p.add_argument("--auth-key", action="append", default=[], metavar="file:PATH",
                   help="a plain pre-auth key to wrap in direct mode (file:PATH, or - for "
                   "stdin; repeatable); the request and the response hold secrets (0600)")
    p.add_argument("--out", required=True, help="request file to write")
    p.set_defaults(func=cmd_request)
    p = sub.add_parser("export-authority", parents=[common],
                       help="online: write the authority for `tka offline enroll`")
    p.add_argument("--out", required=True, help="authority file to write")
    p.set_defaults(func=cmd_export_authority)
    p = sub.add_parser("enroll", help="offline: pin the authority that requests must extend")
    p.add_argument("--authority", metavar="DIR", required=True,
                   help="directory to create for the pinned authority (mode 0700)")
    p.add_argument("--in", dest="infile", required=True,
                   help="authority file (from export-authority) or a request file")
    p.add_argument("--head", required=True, metavar="HASH",
                   help="the authority's head as a node you trust shows it (tka status --json)")
    p.set_defaults(func=cmd_enroll)
    p = sub.add_parser("sign", help="offline: check a request against the pinned authority "
                       "and sign it")
    p.add_argument("--authority", metavar="DIR", required=True,
                   help="the pinned authority (tka offline enroll); advanced to the request's "
                   "head after signing")
    p.add_argument("--in", dest="infile", required=True, help="request file")
    p.add_argument("--out", required=True, help="response file to write")
    p.add_argument("--key", required=True, help="lock-key URI (pkcs11:…, appliance:… or file:…)")
    p.add_argument("--yes", "--confirm", dest="confirm", action="store_true",
                   help="do not ask before signing")
    p.set_defaults(func=cmd_sign)
    p = sub.add_parser("submit", parents=[common],
                       help="online: verify every item of a response, then submit them")
    p.add_argument("--in", dest="infile", required=True, help="response file")
    p.set_defaults(func=cmd_submit)
