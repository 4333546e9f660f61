"""`tka offline …`: node-key signing from an air-gapped workstation (signer/offline.py).

    online:   tka offline request nodekey:… [tlpub:rotation] --out req.json
    offline:  tka offline sign --in req.json --out resp.json --key pkcs11:…
    online:   tka offline submit --in resp.json
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

from signer.backends import open_backend
from signer.bulk import check_rotation_key
from signer.cli import UsageError
from signer.cli.lock_commands import CommandError, common_parser, confirm
from signer.cli.lock_handlers import session
from signer.nks_signing import sign_direct_nks
from signer.offline import (
    SigningRequest,
    SigningResponse,
    check_response,
    make_request,
    open_request,
)
from verifier.errors import DecodeError, SignerError
from verifier.storage.atomic import atomic_write
from verifier.textforms import format_node_public, parse_nl_public, parse_node_public


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as err:
        raise CommandError(f"cannot read {path}: {err.strerror}") from None


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


def cmd_sign(args: argparse.Namespace) -> int:
    request = SigningRequest.from_json(_read(args.infile))
    with open_backend(args.key) as backend:
        authority, plan = open_request(request, backend.public_key())
        if args.confirm:  # confirm() shows the plan itself when it asks
            for line in plan:
                print(line, file=sys.stderr)
        confirm(args, plan, "sign")
        # An appliance checks the request's authority against the one it is enrolled in.
        backend.track(authority)
        nks = sign_direct_nks(backend, request.node_key, request.rotation_key)
    atomic_write(Path(args.out), SigningResponse(nks).to_json().encode())
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
    p = sub.add_parser("sign", help="offline: check a request against its authority and sign it")
    p.add_argument("--in", dest="infile", required=True, help="request file")
    p.add_argument("--out", required=True, help="response file to write")
    p.add_argument("--key", required=True, help="lock-key URI (pkcs11:…, appliance:… or file:…)")
    p.add_argument("--yes", "--confirm", dest="confirm", action="store_true",
                   help="do not ask before signing")
    p.set_defaults(func=cmd_sign)
    p = sub.add_parser("submit", parents=[common], help="online: verify a response and submit it")
    p.add_argument("--in", dest="infile", required=True, help="response file")
    p.set_defaults(func=cmd_submit)
