"""Check peers' node-key signatures against an authority directory, offline and read-only:
which peers a node keeps under tailnet lock, why it drops the others, and which signatures
anyone could extend with a forged rotation.

    tka audit --authority DIR (--peers FILE | --status FILE) [--json] [--html FILE]

--status takes what a real node printed with `tailscale lock status --json` (or its LocalAPI's
/localapi/v0/tka/status); the node's own visible/filtered split is then compared with the
audit's. A --peers file that is such a JSON document is read as one. A peers file is read as a
stream, in memory proportional to its peers' packed bytes (no size limit); a status document is
one JSON value, parsed whole (at most 64 MiB).
Exit codes: 0 every peer is kept (authorized, or exempt from tailnet lock) and nothing
disagrees, 1 otherwise (or an error), 2 usage.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import io
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from signer.audit import (
    INPUT_PEERS,
    MAX_STATUS,
    SCHEMA_VERSION,
    PeerTable,
    audit,
    byte_chunks,
    decode_text,
    peers_from_status,
    read_peer_lines,
    write_html,
    write_human,
    write_json,
)
from signer.authority_dir import open_authority_dir
from signer.cli import UsageError
from signer.cli.lock_commands import CommandError, add_json_flag, json_version
from signer.echo import clip_input
from verifier.errors import StorageError


@contextlib.contextmanager
def _opened(path: str, name: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise CommandError(f"cannot read {name}: {exc.strerror}") from None
    with fh:
        yield fh


@contextlib.contextmanager
def _atomic_text(path: Path) -> Iterator[io.TextIOWrapper]:
    """A text file written in pieces under a temporary name beside `path`, then fsync-ed and
    renamed over it: readers see the old file or the whole new one, and an error on the way
    leaves no part of it."""
    tmp = path.parent / f"{path.name}.tmp{secrets.token_hex(6)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as err:
        raise StorageError(f"cannot write {path}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as err:
        raise StorageError(f"cannot write {path}: {err.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def cmd_audit(args: argparse.Namespace) -> int:
    version = json_version(args.json, current=int(SCHEMA_VERSION))
    if (args.peers is None) == (args.status is None):
        raise UsageError("give the peers with --peers FILE or --status FILE (one of them)")
    source = args.peers if args.peers is not None else args.status
    name = "stdin" if source == "-" else clip_input(source)
    with _opened(source, name) as stream:
        chunks = byte_chunks(stream, name)
        # A peers line starts with `nodekey:` or `#`: a file that starts with `{` is a status.
        head, start = b"", ""
        decoder = codecs.getincrementaldecoder("utf-8")()
        for piece in chunks:
            head += piece
            try:
                start += decoder.decode(piece)
            except UnicodeDecodeError:
                raise CommandError(f"{name} is not UTF-8 text") from None
            if start.strip():
                break
        authority = open_authority_dir(Path(args.authority))
        if args.peers is not None and not start.lstrip().startswith("{"):
            table = read_peer_lines(_prepend(head, chunks), name, PeerTable(authority.state))
            source_form = INPUT_PEERS
        else:
            from signer.status_json import parse_status

            status = parse_status(decode_text(_read_limited(head, chunks, name), name), name)
            table, source_form = peers_from_status(status, authority, name), status.form
            del status
    report = audit(authority, table, source_form)
    if args.html:
        with _atomic_text(Path(args.html)) as page:
            write_html(report, authority, page)
    if version:
        write_json(report, sys.stdout)
    else:
        write_human(report, sys.stdout)
    return 1 if report.unauthorized or report.disagreements else 0


def _prepend(head: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from chunks


def _read_limited(head: bytes, chunks: Iterator[bytes], name: str) -> bytes:
    """The whole of a status document, which is parsed whole: at most MAX_STATUS bytes."""
    parts, total = [head], len(head)
    for piece in chunks:
        total += len(piece)
        if total > MAX_STATUS:
            raise CommandError(f"{name} is larger than {MAX_STATUS >> 20} MiB")
        parts.append(piece)
    if total > MAX_STATUS:
        raise CommandError(f"{name} is larger than {MAX_STATUS >> 20} MiB")
    return b"".join(parts)


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
