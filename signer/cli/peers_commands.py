"""`tka peers export`: the peers file `tka audit --peers` reads, one
`nodekey:<hex> <base64 signature> # <name>` per signed peer, from a node of ours (the netmap
its coordination service hands out, unfiltered: the audit then decides) or from what a real
node printed with `tailscale lock status --json` (its visible peers: filtered ones carry no
signature there) or its LocalAPI's /localapi/v0/tka/status (every peer with a signature,
filtered ones included).

    tka peers export --out FILE [--state DIR --control …]
    tka peers export --out FILE --status status.json
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

from signer.cli.lock_commands import common_parser, read_text_file
from signer.echo import clip_input, safe_text
from verifier.storage.atomic import atomic_write
from verifier.textforms import format_node_public, parse_node_public


def _line(node_key: bytes, signature: bytes, name: str) -> str:
    comment = safe_text(name).replace("\n", " ").replace("#", " ")
    return f"{format_node_public(node_key)} {base64.b64encode(signature).decode()} # {comment}\n"


def cmd_export(args: argparse.Namespace) -> int:
    lines: list[str] = []
    if args.status:
        from signer.status_json import parse_status

        source = "stdin" if args.status == "-" else clip_input(args.status)
        status = parse_status(read_text_file(args.status, dash_is_stdin=True), source)
        lines = [_line(p.node_key, p.signature, p.name) for p in status.peers if p.signature]
        skipped = sum(1 for p in status.peers if not p.signature)
    else:
        from signer.cli.lock_handlers import session

        with session(args) as s:
            peers = s.synced.netmap["Peers"]
        skipped = 0
        for peer in peers:
            raw = peer.get("KeySignature")
            if not raw:
                skipped += 1
                continue
            lines.append(_line(parse_node_public(str(peer["NodeKey"])),
                               base64.b64decode(str(raw)), str(peer.get("Name", ""))))
    text = "".join(lines)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        atomic_write(Path(args.out), text.encode())
    print(f"tka: wrote {len(lines)} signed peer(s); {skipped} without a signature left out",
          file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = subparsers.add_parser("peers", help="export peers' signatures for tka audit")
    sub = top.add_subparsers(dest="peers_command", metavar="<step>", required=True)
    p = sub.add_parser("export", parents=[common_parser()], description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="write the peers file `tka audit --peers` reads")
    p.add_argument("--out", required=True, metavar="FILE", help="file to write ('-': stdout)")
    p.add_argument("--status", metavar="FILE",
                   help="read the peers from `tailscale lock status --json` output (or the "
                   "LocalAPI's tka/status) instead")
    p.set_defaults(func=cmd_export)
