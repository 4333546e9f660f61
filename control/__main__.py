"""`python3 -m control …`: the coordination service's admin commands (docs/control.md).

    serve --db PATH [--listen HOST:PORT] [--tls-cert FILE --tls-key FILE] [--insecure-listen]
    authkey create --db PATH [--reusable] [--expiry 90d] [--tailnet-lock]
    authkey list --db PATH
    authkey revoke --db PATH KEYID
    support-key create --db PATH --out FILE
    support-disable --db PATH [--support-key FILE]

Errors are one line (`control: …`) and exit 1 (2 for usage); secrets are printed once, on
stdout, and never logged.
"""

from __future__ import annotations

import argparse
import re
import resource
import sqlite3
import sys
import time
from pathlib import Path
from typing import NoReturn

from control.http import ControlHTTPServer, Limits, tls_context
from control.service import (
    ControlService,
    default_support_key_path,
    private_file_mode_ok,
    read_support_key,
    write_support_key,
)
from verifier.errors import TKAError

_DURATION = re.compile(r"([0-9]{1,6})([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_EXPIRY = 365 * 86400


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Usage(message)


def parse_duration(text: str) -> int:
    match = _DURATION.fullmatch(text)
    if match is None:
        raise _Usage(f"--expiry: expected a number and s, m, h or d (e.g. 90d), got {text[:20]!r}")
    seconds = int(match.group(1)) * _UNIT[match.group(2)]
    if not 0 < seconds <= MAX_EXPIRY:
        raise _Usage("--expiry: must be between 1s and 365d")
    return seconds


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python3 -m control")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="serve the coordination API over HTTP")
    serve.add_argument("--db", required=True, help="SQLite database file")
    serve.add_argument("--listen", default="127.0.0.1:0",
                       help="address:port (default loopback, a free port)")
    serve.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain (https)")
    serve.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    serve.add_argument("--insecure-listen", action="store_true",
                       help="allow plain HTTP beyond loopback (credentials travel in clear)")
    serve.add_argument("--workers", type=int, default=Limits.workers, metavar="N")
    serve.add_argument("--max-connections", type=int, default=Limits.max_connections,
                       metavar="N")
    serve.add_argument("--max-body", type=int, default=Limits.max_body, metavar="BYTES")
    serve.add_argument("--read-timeout", type=float, default=Limits.request_timeout,
                       metavar="SECONDS", help="time allowed to receive a whole request")

    authkey = sub.add_parser("authkey", help="enrolment keys for `tka node register`")
    ak = authkey.add_subparsers(dest="authkey_command", required=True, parser_class=_Parser)
    create = ak.add_parser("create", help="make an enrolment key (printed once)")
    create.add_argument("--db", required=True)
    create.add_argument("--reusable", action="store_true",
                        help="may enrol any number of nodes until it expires (default: one)")
    create.add_argument("--expiry", default="90d", help="lifetime, e.g. 1h, 7d (default 90d)")
    create.add_argument("--tailnet-lock", action="store_true",
                        help="nodes it enrols may enable tailnet lock (tka init)")
    listing = ak.add_parser("list", help="list enrolment keys (never the keys themselves)")
    listing.add_argument("--db", required=True)
    revoke = ak.add_parser("revoke", help="revoke an enrolment key")
    revoke.add_argument("--db", required=True)
    revoke.add_argument("key_id", metavar="KEYID")

    support = sub.add_parser("support-key", help="the key the support secret is sealed to")
    sk = support.add_subparsers(dest="support_command", required=True, parser_class=_Parser)
    sk_create = sk.add_parser("create", help="make a support key; its private half goes to --out")
    sk_create.add_argument("--db", required=True)
    sk_create.add_argument("--out", required=True, metavar="FILE",
                           help="new file (0600) for the private key; keep it off this machine")

    disable = sub.add_parser("support-disable",
                             help="support's act: unseal the support secret and disable lock")
    disable.add_argument("--db", required=True)
    disable.add_argument("--support-key", metavar="FILE",
                         help="the support private key (default: DB.support-key)")
    return parser


def _existing_db(path: str) -> Path:
    db = Path(path)
    if not db.is_file():
        raise _Failure(f"no coordination database at {db}")
    return db


class _Failure(Exception):
    pass


def _serve(args: argparse.Namespace) -> int:
    host, sep, port_text = args.listen.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise _Usage(f"--listen: expected HOST:PORT, got {args.listen[:60]!r}")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise _Usage("--tls-cert and --tls-key go together")
    for name in ("workers", "max_connections", "max_body"):
        if getattr(args, name) < 1:
            raise _Usage(f"--{name.replace('_', '-')}: must be at least 1")
    if not args.read_timeout > 0:
        raise _Usage("--read-timeout: must be positive")
    tls = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    limits = Limits(
        workers=args.workers,
        max_connections=args.max_connections,
        max_body=args.max_body,
        request_timeout=args.read_timeout,
        header_timeout=min(Limits.header_timeout, args.read_timeout),
    )
    server = ControlHTTPServer(
        (host, int(port_text)), args.db, tls=tls, insecure_listen=args.insecure_listen,
        limits=limits,
    )
    if not private_file_mode_ok(Path(args.db)):
        print(f"control: warning: {args.db} is readable by group or others; chmod 600 it",
              file=sys.stderr, flush=True)
    print(f"control: serving {args.db} on {server.url}", file=sys.stderr, flush=True)
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0


def _authkey(args: argparse.Namespace) -> int:
    if args.authkey_command == "create":
        expires_in = parse_duration(args.expiry)
        service = ControlService(args.db)
        try:
            text, info = service.create_auth_key(
                reusable=args.reusable, expires_in=expires_in, tailnet_lock_admin=args.tailnet_lock
            )
        finally:
            service.close()
        kind = "reusable" if info.reusable else "single-use"
        cap = ", may enable tailnet lock" if info.tailnet_lock_admin else ""
        print(f"control: created {kind} enrolment key {info.key_id}{cap}, expires "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(info.expires_unix))}; "
              "it is shown only now", file=sys.stderr, flush=True)
        print(text, flush=True)
        return 0
    service = ControlService(_existing_db(args.db), create=False)
    try:
        if args.authkey_command == "list":
            now = time.time()
            for k in service.auth_keys():
                state = ("revoked" if k.revoked else "expired" if k.expires_unix <= now
                         else "used" if k.uses and not k.reusable else "valid")
                print(f"{k.key_id}  {'reusable' if k.reusable else 'single-use':<10}  "
                      f"{'tailnet-lock' if k.tailnet_lock_admin else '-':<12}  "
                      f"uses {k.uses:<4}  expires "
                      f"{time.strftime('%Y-%m-%d', time.gmtime(k.expires_unix))}  {state}")
            return 0
        service.revoke_auth_key(args.key_id)
        print(f"control: revoked enrolment key {args.key_id}", file=sys.stderr)
        return 0
    finally:
        service.close()


def _support_key(args: argparse.Namespace) -> int:
    service = ControlService(args.db)
    try:
        key = write_support_key(Path(args.out))
        try:
            service.set_support_public(bytes(key.public_key))
        except BaseException:
            Path(args.out).unlink(missing_ok=True)
            raise
    finally:
        service.close()
    print(f"control: support key written to {args.out} (0600); the service keeps only its "
          "public half: move the file off this machine", file=sys.stderr)
    return 0


def _support_disable(args: argparse.Namespace) -> int:
    db = _existing_db(args.db)
    key_path = Path(args.support_key) if args.support_key else default_support_key_path(db)
    key = read_support_key(key_path)
    service = ControlService(db, create=False)
    try:
        service.support_disable(key)
    finally:
        service.close()
    print("control: tailnet lock disabled with the support disablement secret", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    # The service holds disablement secrets in memory (and support-disable a support key):
    # a core dump must not keep them.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        args = _parser().parse_args(argv)
        handler = {
            "serve": _serve,
            "authkey": _authkey,
            "support-key": _support_key,
            "support-disable": _support_disable,
        }[args.command]
        return handler(args)
    except _Usage as err:
        print(f"control: {err}", file=sys.stderr)
        return 2
    except (TKAError, _Failure) as err:
        print(f"control: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"control: {err.strerror or err}", file=sys.stderr)
        return 1
    except sqlite3.Error as err:  # e.g. a database another process holds locked too long
        print(f"control: the coordination database failed: {' '.join(str(err).split())}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
