"""Check a list of peers' node-key signatures against an authority directory, offline and
read-only: which peers the authority really authorizes, and why the others fail.

    tka audit --authority DIR --peers FILE [--json]

Exit codes: 0 every peer is authorized, 1 some are not (or an error), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from signer.audit import audit, open_authority_readonly, parse_peer_lines, report_human, report_json
from signer.cli.lock_commands import add_json_flag, json_version, read_text_file
from signer.render import clip_input


def cmd_audit(args: argparse.Namespace) -> int:
    version = json_version(args.json)
    source = args.peers
    text = read_text_file(source, dash_is_stdin=True)
    peers = parse_peer_lines(text, "stdin" if source == "-" else clip_input(source))
    report = audit(open_authority_readonly(Path(args.authority)), peers)
    sys.stdout.write(report_json(report) if version else report_human(report))
    return 1 if report.unauthorized else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="check peers' node-key signatures against an authority directory (read-only)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--authority",
        required=True,
        metavar="DIR",
        help="an authority in Tailscale's filesystem layout (e.g. a copy of a node's tka dir)",
    )
    parser.add_argument(
        "--peers",
        required=True,
        metavar="FILE",
        help="one `nodekey:<hex> <signature>` per line (base64 or hex); - for stdin",
    )
    add_json_flag(parser)
    parser.set_defaults(func=cmd_audit)
