"""`tka appliance …`: set up and inspect the signer appliance (docs/appliance.md).

    tka appliance info [--json]                 what the device reports; its identity, pinned
    tka appliance setup                         first-time set-up: choose the PIN (asked twice)
    tka appliance unlock | lock
    tka appliance change-pin
    tka appliance generate NAME                 a new lock key inside the device (attested)
    tka appliance keys [--json]                 the keys it holds, as tlpub: and key URIs
    tka appliance enroll --state DIR [--replace]   enroll it in a node's authority
    tka appliance log [--ack] [--json]          fetch and verify its signed audit log
    tka appliance policy [--set FIELD=VALUE …] [--json]
    tka appliance wipe                          erase its keys, policy and authority

Every command takes `--device PATH` (or `$TKA_APPLIANCE_DEVICE`): `/dev/ttyACM0`, the stub's
`/dev/pts/N`, `socket://host:port`. PINs come from `--pin-source file:/path` (mode 0600),
`$TKA_APPLIANCE_PIN`, or a prompt on the terminal; never from argv. Calls that need a person
print "confirm on the device" on stderr and wait at most `--timeout` seconds (default 120);
Ctrl-C cancels them on the device.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verifier.errors import DeviceError, SignerError, StorageError

INFO_SCHEMA = "tka.appliance-info/1"
KEYS_SCHEMA = "tka.appliance-keys/1"
LOG_SCHEMA = "tka.appliance-log/1"
POLICY_SCHEMA = "tka.appliance-policy/1"
KEY_NAME = re.compile(r"^[a-z0-9._-]{1,32}$")
PIN_MIN, PIN_MAX = 6, 64


def _usage(message: str) -> Exception:
    from signer.cli import UsageError

    return UsageError(message)


# --------------------------------------------------------------------------------------------
# Opening the device


@dataclass
class Opened:
    device: Any  # signer.backends.appliance.api.Appliance
    info: Any  # DeviceInfo
    path: str
    newly_pinned: bool


def _device_path(args: argparse.Namespace) -> str:
    path: str = args.device or os.environ.get("TKA_APPLIANCE_DEVICE", "")
    if not path:
        raise _usage("no appliance given: pass --device /dev/ttyACM0 or set TKA_APPLIANCE_DEVICE")
    return path


@contextmanager
def _open(args: argparse.Namespace) -> Iterator[Opened]:
    from signer.backends.appliance.api import Appliance
    from signer.backends.appliance.identity import IdentityPins

    path = _device_path(args)
    device = Appliance.open(path, confirm_wait=float(args.timeout))
    try:
        info = device.info()
        newly = IdentityPins().check(path, info.identity, board=info.board)
        if newly:
            print(f"tka: pinned the identity of the appliance at {path}: {info.identity.hex()}",
                  file=sys.stderr)
        yield Opened(device, info, path, newly)
    finally:
        device.close()


def _pin(args: argparse.Namespace, what: str) -> str:
    from signer.backends.appliance.uri import resolve_pin

    return resolve_pin(what, pin_source=args.pin_source)


def _unlocked(opened: Opened, args: argparse.Namespace) -> None:
    """Unlock the device if it is locked (one PIN attempt)."""
    if opened.info.state == "blank":
        raise DeviceError(
            f"the appliance at {opened.path} is not set up; run: tka appliance setup "
            f"--device {opened.path}"
        )
    if opened.info.state == "locked":
        opened.device.unlock(_pin(args, f"the appliance at {opened.path}"))
        opened.info = opened.device.info()


def _tlpub(public: bytes) -> str:
    from verifier.textforms import format_tlpub

    return format_tlpub(public)


def _when(unix: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix)) if unix else "-"


def _print_json(doc: dict[str, Any]) -> None:
    print(json.dumps(doc, indent=2))


def _wants_json(args: argparse.Namespace) -> bool:
    """`--json[=N]` (the flag every command shares, signer.cli.lock_commands), read before the
    device is touched: a bad value is a usage error, not a half-done command."""
    from signer.cli.lock_commands import json_version

    return json_version(args.json) != 0


# --------------------------------------------------------------------------------------------
# Commands


def cmd_info(args: argparse.Namespace) -> int:
    from verifier.textforms import format_aum_hash

    args.json = _wants_json(args)
    with _open(args) as opened:
        info = opened.info
        head = None
        if info.state == "unlocked":
            authority = opened.device.authority()
            head = authority.head if authority.enrolled else None
        doc = {
            "schema": INFO_SCHEMA,
            "device": opened.path,
            "protocol": info.protocol,
            "firmware": info.firmware,
            "board": info.board,
            "identity": info.identity.hex(),
            "identity_pin": "new" if opened.newly_pinned else "matches",
            "state": info.state,
            "pin_retries": info.pin_retries,
            "max_message": info.max_message,
            "enrolled": info.enrolled,
            "head": format_aum_hash(head) if head is not None else None,
        }
    if args.json:
        _print_json(doc)
        return 0
    from signer.backends.appliance.rpc import untrusted_text

    print(f"appliance {opened.path}")
    print(f"  firmware     {untrusted_text(info.firmware)} (board {untrusted_text(info.board)}, "
          f"protocol {info.protocol})")
    print(f"  identity     {info.identity.hex()} "
          f"({'pinned now: first contact' if opened.newly_pinned else 'matches the pinned one'})")
    print(f"  state        {info.state}")
    print(f"  PIN retries  {info.pin_retries}")
    print(f"  max message  {info.max_message} bytes")
    if info.enrolled is not None:
        print(f"  enrolled     {'yes, head ' + str(doc['head']) if info.enrolled else 'no'}")
    return 0


def _new_pin(args: argparse.Namespace) -> str:
    """A new PIN: from --pin-source / TKA_APPLIANCE_PIN, else typed twice on the terminal."""
    from signer.backends.appliance.uri import PIN_ENV, read_private_pin_file

    if args.pin_source:
        pin = read_private_pin_file(args.pin_source)
    elif os.environ.get(PIN_ENV):
        pin = os.environ[PIN_ENV]
    else:
        if not sys.stdin.isatty():
            raise SignerError(
                "choosing a PIN needs a terminal to type it on; or give it with --pin-source "
                f"file:/path (mode 0600) or {PIN_ENV}"
            )
        try:
            pin = getpass.getpass("new appliance PIN: ")
            again = getpass.getpass("the same PIN again: ")
        except EOFError:
            raise SignerError("no PIN entered") from None
        if pin != again:
            raise SignerError("the two PINs differ; nothing was changed")
    size = len(pin.encode())
    if not PIN_MIN <= size <= PIN_MAX:
        raise SignerError(f"the PIN must be {PIN_MIN}-{PIN_MAX} bytes long (it is {size})")
    return pin


def cmd_setup(args: argparse.Namespace) -> int:
    with _open(args) as opened:
        if opened.info.state != "blank":
            raise DeviceError(
                f"the appliance at {opened.path} is already set up ({opened.info.state}); "
                "`tka appliance wipe` erases it first"
            )
        pin = _new_pin(args)
        identity = opened.device.setup(pin)
        if identity != opened.info.identity:
            raise DeviceError(
                "the appliance reported another identity key after set-up than before; do not "
                "use it"
            )
    print(f"the appliance at {opened.path} is set up and unlocked; identity {identity.hex()}")
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    with _open(args) as opened:
        if opened.info.state == "unlocked":
            print(f"the appliance at {opened.path} is already unlocked")
            return 0
        _unlocked(opened, args)
    print(f"the appliance at {opened.path} is unlocked")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    with _open(args) as opened:
        opened.device.lock()
    print(f"the appliance at {opened.path} is locked")
    return 0


def cmd_change_pin(args: argparse.Namespace) -> int:
    from signer.backends.appliance.uri import prompt_pin

    with _open(args) as opened:
        if opened.info.state == "blank":
            raise DeviceError(f"the appliance at {opened.path} is not set up")
        if not sys.stdin.isatty():
            raise SignerError("changing the PIN needs a terminal to type the PINs on")
        old = prompt_pin(f"the appliance at {opened.path} (current)")
        args.pin_source = None
        new = _new_pin(args)
        opened.device.change_pin(old, new)
    print("the PIN was changed")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from signer.backends.appliance.api import verify_attestation
    from signer.backends.appliance.uri import ApplianceUri

    if not KEY_NAME.match(args.name):
        raise _usage(f"key name {args.name!r}: use 1-32 of a-z 0-9 . _ -")
    with _open(args) as opened:
        _unlocked(opened, args)
        key = opened.device.generate_key(args.name)
        verify_attestation(opened.info.identity, key)
    uri = ApplianceUri(device=opened.path, key=key.name).to_string()
    print(_tlpub(key.public))
    print(f"tka: generated key {key.name!r} inside the appliance (attestation verified with its "
          f"pinned identity); use it as: {uri}", file=sys.stderr)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from signer.backends.appliance.uri import ApplianceUri

    args.json = _wants_json(args)
    with _open(args) as opened:
        _unlocked(opened, args)
        keys = opened.device.list_keys()
    entries: list[dict[str, Any]] = [
            {
                "name": k.name,
                "public_key": _tlpub(k.public),
                "created": k.created,
                "signatures": k.signatures,
                "uri": ApplianceUri(device=opened.path, key=k.name).to_string(),
            }
            for k in keys
    ]
    doc = {"schema": KEYS_SCHEMA, "device": opened.path, "keys": entries}
    if args.json:
        _print_json(doc)
        return 0
    if not keys:
        print(f"no keys on the appliance at {opened.path}; make one: tka appliance generate NAME")
    for entry in entries:
        print(f"{entry['name']:<16} {entry['public_key']}  created {_when(entry['created'])}  "
              f"{entry['signatures']} signatures  {entry['uri']}")
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    from signer.audit import open_authority_readonly
    from signer.backends.appliance.backend import bring_up_to_date, chain_of, oldest_checkpoint
    from signer.cli.lock_handlers import session
    from verifier.textforms import format_aum_hash

    with contextlib.ExitStack() as stack:
        if args.authority:
            authority = open_authority_readonly(Path(args.authority))
        else:
            # Like every node command: the node first catches up with its service.
            s = stack.enter_context(session(args))
            if s.authority is None:
                raise StorageError(
                    f"the node in {args.state} has no tailnet-lock authority to enroll in "
                    "(tailnet lock is not enabled)"
                )
            authority = s.authority
        opened = stack.enter_context(_open(args))
        chain = chain_of(authority)
        _unlocked(opened, args)
        current = opened.device.authority()
        known = {bytes(a.hash()) for a in chain}
        what = f"the appliance at {opened.path}"
        if current.enrolled and not args.replace:
            if current.head in known or any(h in known for h in current.history):
                head = bring_up_to_date(opened.device, authority, what=what)
                print(f"{what} was already enrolled in this authority; it is now at head "
                      f"{format_aum_hash(head)}")
                return 0
            raise DeviceError(
                f"{what} is enrolled in another authority (head "
                f"{format_aum_hash(current.head or bytes(32))}); pass --replace to enroll it in "
                "this one instead"
            )
        start = oldest_checkpoint(chain)
        checkpoint = chain[start]
        print(f"enrolling {what} with checkpoint {format_aum_hash(checkpoint.hash())}: compare "
              "this hash on the device with `tka log` on a node you trust", file=sys.stderr)
        enrolled = opened.device.enroll(checkpoint.to_cbor(), replace=bool(args.replace))
        if enrolled != bytes(checkpoint.hash()):
            raise DeviceError(
                f"{what} enrolled at {format_aum_hash(enrolled)}, not at the checkpoint sent"
            )
        head = bring_up_to_date(opened.device, authority, what=what) \
            if start + 1 < len(chain) else enrolled
    print(f"{what} is enrolled; head {format_aum_hash(head)}")
    return 0


def _entry_json(entry: Any) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "time": entry.time,
        "event": entry.event,
        "verdict": entry.verdict,
        "key": _tlpub(entry.key) if entry.key else None,
        "sighash": entry.sighash.hex() if entry.sighash else None,
        "summary": entry.summary,
        "hash": entry.hash.hex(),
    }


def cmd_log(args: argparse.Namespace) -> int:
    from signer.backends.appliance.auditlog import acknowledge, fetch_log
    from signer.backends.appliance.identity import IdentityPins
    from signer.backends.appliance.rpc import untrusted_text

    args.json = _wants_json(args)
    pins = IdentityPins()
    with _open(args) as opened:
        pinned = pins.get(opened.path)
        previous = pinned.log if pinned is not None else None
        report = fetch_log(opened.device, opened.info.identity, previous=previous)
        acked: int | None = None
        if report.ok:
            checkpoint = report.checkpoint()
            if checkpoint is not None:
                pins.record_log(opened.path, checkpoint)
            if args.ack and report.entries:
                _unlocked(opened, args)
                acked = report.entries[-1].seq
                acknowledge(opened.device, opened.info.identity, acked)
    head = report.head
    if args.json:
        _print_json({
            "schema": LOG_SCHEMA,
            "device": opened.path,
            "verified": report.ok,
            "problems": report.problems,
            "count": head.count if head else None,
            "oldest": head.oldest if head else None,
            "unread": head.unread if head else None,
            "acknowledged": acked,
            "entries": [_entry_json(e) for e in report.entries],
        })
    else:
        for e in report.entries:
            key = f" key {_tlpub(e.key)[:18]}…" if e.key else ""
            print(f"#{e.seq:<5} {_when(e.time)}  {untrusted_text(e.event):<14} "
                  f"{untrusted_text(e.verdict):<9}{key}  {untrusted_text(e.summary)}")
        for problem in report.problems:
            print(f"PROBLEM: {problem}")
        if report.ok and head is not None:
            print(f"verified: {len(report.entries)} entries (of {head.count} ever written), "
                  "every signature by the pinned identity, chain intact, head fresh"
                  + (f"; acknowledged up to #{acked}" if acked is not None else ""))
    if not report.ok:
        raise DeviceError(
            f"the audit log of the appliance at {opened.path} does not verify "
            f"({len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}"
            f"{', listed above' if not args.json else ''}); treat the device as compromised"
        )
    return 0


_POLICY_BOOL = {"true": True, "yes": True, "on": True, "1": True,
                "false": False, "no": False, "off": False, "0": False}


def parse_policy_settings(settings: list[str]) -> dict[str, int | bool]:
    from signer.backends.appliance.api import POLICY_FIELDS

    changes: dict[str, int | bool] = {}
    for item in settings:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or name not in POLICY_FIELDS:
            raise _usage(f"--set {item!r}: use FIELD=VALUE with FIELD one of "
                         f"{', '.join(POLICY_FIELDS)}")
        if name in changes:
            raise _usage(f"--set names {name} twice")
        if name == "force_audit":
            if value.lower() not in _POLICY_BOOL:
                raise _usage(f"--set force_audit={value!r}: use true or false")
            changes[name] = _POLICY_BOOL[value.lower()]
        else:
            try:
                number = int(value, 10)
            except ValueError:
                raise _usage(f"--set {name}={value!r}: not a whole number") from None
            if number < 0:
                raise _usage(f"--set {name}={value!r}: must not be negative")
            changes[name] = number
    return changes


def cmd_policy(args: argparse.Namespace) -> int:
    args.json = _wants_json(args)
    changes = parse_policy_settings(args.set or [])
    with _open(args) as opened:
        _unlocked(opened, args)
        before = opened.device.get_policy()
        policy = opened.device.set_policy(changes) if changes else before
    doc = {"schema": POLICY_SCHEMA, "device": opened.path, "policy": policy.as_dict()}
    if args.json:
        _print_json(doc)
        return 0
    old = before.as_dict()
    for name, value in policy.as_dict().items():
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        was = old.get(name)
        note = f"  (was {str(was).lower() if isinstance(was, bool) else was})" \
            if changes and was != value else ""
        print(f"{name:<16} {shown}{note}")
    return 0


def cmd_wipe(args: argparse.Namespace) -> int:
    with _open(args) as opened:
        opened.device.wipe()
    print(f"the appliance at {opened.path} erased its keys, policy and authority (its identity "
          "and audit log remain); set it up again: tka appliance setup")
    return 0


# --------------------------------------------------------------------------------------------
# Registration


def register(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", metavar="PATH",
                        help="the appliance's serial port (default $TKA_APPLIANCE_DEVICE)")
    common.add_argument("--pin-source", metavar="file:PATH",
                        help="a 0600 file holding the PIN (else $TKA_APPLIANCE_PIN, else a prompt)")
    common.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                        help="how long to wait for a person to confirm (default 120)")

    def reader(parser: argparse.ArgumentParser, schema: str) -> None:
        from signer.cli.lock_commands import add_json_flag

        add_json_flag(parser, f"schema {schema}")

    top = subparsers.add_parser(
        "appliance", help="set up and inspect the signer appliance",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(
        dest="appliance_command", metavar="<appliance-command>", required=True
    )

    p = sub.add_parser("info", parents=[common], help="what the device reports")
    reader(p, INFO_SCHEMA)
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("setup", parents=[common], help="first-time set-up: choose the PIN")
    p.set_defaults(func=cmd_setup)
    p = sub.add_parser("unlock", parents=[common], help="unlock with the PIN")
    p.set_defaults(func=cmd_unlock)
    p = sub.add_parser("lock", parents=[common], help="lock the device")
    p.set_defaults(func=cmd_lock)
    p = sub.add_parser("change-pin", parents=[common], help="change the PIN (on a terminal)")
    p.set_defaults(func=cmd_change_pin)
    p = sub.add_parser("generate", parents=[common], help="generate a lock key on the device")
    p.add_argument("name", help="1-32 of a-z 0-9 . _ -")
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("keys", parents=[common], help="list the keys on the device")
    reader(p, KEYS_SCHEMA)
    p.set_defaults(func=cmd_keys)
    p = sub.add_parser("enroll", parents=[common],
                       help="enroll the device in a node's tailnet-lock authority")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--state", metavar="DIR",
                       help="a node's state directory (synced with its service first)")
    where.add_argument("--authority", metavar="DIR",
                       help="an authority directory, read-only (a copy of a node's tka/ or "
                            "tka-profiles/<id>/, e.g. on an air-gapped machine)")
    p.add_argument("--control", metavar="PATH|URL",
                   help="with --state: the node's coordination service (default: the "
                        "embedded service in the data directory)")
    p.add_argument("--replace", action="store_true",
                   help="replace the authority the device is enrolled in")
    p.set_defaults(func=cmd_enroll, key=None, confirm=False)
    p = sub.add_parser("log", parents=[common], help="fetch and verify the signed audit log")
    p.add_argument("--ack", action="store_true", help="mark the entries read (needs the PIN)")
    reader(p, LOG_SCHEMA)
    p.set_defaults(func=cmd_log)
    p = sub.add_parser("policy", parents=[common], help="show or change the signing policy")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="change a field (repeatable; confirmed on the device)")
    reader(p, POLICY_SCHEMA)
    p.set_defaults(func=cmd_policy)
    p = sub.add_parser("wipe", parents=[common], help="erase keys, policy and authority")
    p.set_defaults(func=cmd_wipe)
