"""Check peers' node-key signatures against an authority directory, offline and read-only:
which peers a node keeps under tailnet lock, why it drops the others, and which signatures
anyone could extend with a forged rotation.

    tka audit --authority DIR (--peers FILE | --status FILE) [--json] [--html FILE]

--status takes what a real node printed with `tailscale lock status --json` (or its LocalAPI's
/localapi/v0/tka/status); the node's own visible/filtered split is then compared with the
audit's. A --peers file that is such a JSON document is read as one.
Exit codes: 0 every peer is kept (authorized, or exempt from tailnet lock) and nothing
disagrees, 1 otherwise (or an error), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from signer.audit import (
    INPUT_PEERS,
    SCHEMA_VERSION,
    audit,
    parse_peer_lines,
    peers_from_status,
    report_html,
    report_human,
    report_json,
)
from signer.authority_dir import open_authority_dir
from signer.cli import UsageError
from signer.cli.lock_commands import add_json_flag, json_version, read_text_file
from signer.render import clip_input
from signer.status_json import parse_status
from verifier.storage.atomic import atomic_write


def cmd_audit(args: argparse.Namespace) -> int:
    version = json_version(args.json, current=int(SCHEMA_VERSION))
    if (args.peers is None) == (args.status is None):
        raise UsageError("give the peers with --peers FILE or --status FILE (one of them)")
    source = args.peers if args.peers is not None else args.status
    name = "stdin" if source == "-" else clip_input(source)
    text = read_text_file(source, dash_is_stdin=True)
    authority = open_authority_dir(Path(args.authority))
    # A peers line starts with `nodekey:` or `#`: a file that starts with `{` is a status.
    if args.peers is not None and not text.lstrip().startswith("{"):
        peers, source_form = parse_peer_lines(text, name), INPUT_PEERS
    else:
        status = parse_status(text, name)
        peers, source_form = peers_from_status(status, authority, name), status.form
    report = audit(authority, peers, source_form)
    if args.html:
        atomic_write(Path(args.html), report_html(report, authority).encode())
    sys.stdout.write(report_json(report) if version else report_human(report))
    return 1 if report.unauthorized or report.disagreements else 0


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
        help="an authority in Tailscale's filesystem layout (a copy of a node's "
        "tka-profiles/<id>, or a node state directory's tka)",
    )
    parser.add_argument(
        "--peers",
        metavar="FILE",
        help="one `nodekey:<hex> <signature> [# name]` per line (base64 or hex); - for stdin;"
        " a status JSON given here is read as --status",
    )
    parser.add_argument(
        "--status",
        metavar="FILE",
        help="the output of `tailscale lock status --json` (or the LocalAPI's tka/status) on "
        "the node the directory is from",
    )
    parser.add_argument("--html", metavar="FILE", help="also write a one-file HTML report")
    add_json_flag(parser, f"schema version {SCHEMA_VERSION}")
    parser.set_defaults(func=cmd_audit)
