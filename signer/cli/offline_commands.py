"""`tka offline …`: node-key signing from an air-gapped workstation (signer/offline.py).

    online:   tka offline export-authority --out authority.json
    offline:  tka offline enroll --authority DIR --in authority.json --head <hash>   (once)
    online:   tka offline request nodekey:… [tlpub:rotation] --out req.json
    offline:  tka offline sign --authority DIR --in req.json --out resp.json --key pkcs11:…
    online:   tka offline submit --in resp.json

The online host may be compromised, so the offline side signs only under the authority it
pinned in DIR (the head typed at enrolment comes from a node the person trusts) and under
extensions of it that verify; each signature advances the pin to the request's head.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

from signer.backends import open_backend
from signer.bulk import check_rotation_key
from signer.cli import UsageError
from signer.cli.lock_commands import CommandError, common_parser, confirm, read_text_file
from signer.cli.lock_handlers import session
from signer.nks_signing import sign_direct_nks
from signer.offline import (
    AuthorityExport,
    SigningRequest,
    SigningResponse,
    active_chain,
    advance_pin,
    check_against_pin,
    check_response,
    enroll_pin,
    make_request,
    parse_pinned_head,
    pinned_authority,
    sign_plan,
)
from verifier.errors import DecodeError, SignerError
from verifier.storage.atomic import atomic_write
from verifier.textforms import format_node_public, parse_nl_public, parse_node_public


def _read(path: str) -> str:
    return read_text_file(path)


def cmd_request(args: argparse.Namespace) -> int:
    try:
        node_key = parse_node_public(args.node_key)
        rotation = parse_nl_public(args.rotation_key) if args.rotation_key else b""
    except DecodeError as err:
        raise UsageError(str(err)) from None
    try:
        check_rotation_key(rotation or None)
    except SignerError as err:
        raise UsageError(str(err)) from None
    with session(args) as s:
        request = make_request(s.require_authority(), node_key, rotation)
    atomic_write(Path(args.out), request.to_json().encode())
    print(f"wrote a signing request for {format_node_public(node_key)} to {args.out}")
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
    request = SigningRequest.from_json(_read(args.infile))
    out = Path(args.out)
    _check_out(out)
    with pinned_authority(Path(args.authority)) as pinned:
        checked = check_against_pin(pinned, request.chain)
        with open_backend(args.key) as backend:
            plan = sign_plan(checked, request, backend.public_key())
            if args.confirm:  # confirm() shows the plan itself when it asks
                for line in plan:
                    print(line, file=sys.stderr)
            confirm(args, plan, "sign")
            # An appliance checks the request's authority against the one it is enrolled in.
            backend.track(checked.authority)
            nks = sign_direct_nks(backend, request.node_key, request.rotation_key)
        # The pin moves before the signature leaves: else an older request would still pass.
        advance_pin(pinned, checked)
    atomic_write(out, SigningResponse(nks).to_json().encode())
    if checked.added:
        print(f"the pinned authority is now at head {checked.authority.head}", file=sys.stderr)
    print(f"wrote the signature to {args.out}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    response = SigningResponse.from_json(_read(args.infile))
    with session(args) as s:
        nks = check_response(s.require_authority(), response)
        s.client.submit_signature(base64.b64encode(response.node_key_signature).decode())
    print(f"submitted the signature for {format_node_public(nks.node_key())}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = subparsers.add_parser("offline", help="sign node keys on an air-gapped workstation")
    sub = top.add_subparsers(dest="offline_command", metavar="<step>", required=True)
    common = common_parser()
    p = sub.add_parser("request", parents=[common], help="online: write a signing request")
    p.add_argument("node_key", metavar="nodekey:…")
    p.add_argument("rotation_key", nargs="?", metavar="tlpub:…")
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
    p = sub.add_parser("submit", parents=[common], help="online: verify a response and submit it")
    p.add_argument("--in", dest="infile", required=True, help="response file")
    p.set_defaults(func=cmd_submit)
