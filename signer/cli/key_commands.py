"""`tka key …`: create, list, show and import signing keys; sign node keys in bulk.

    tka key generate [--json] <uri>             new key in a token (or a 0600 file for file:)
    tka key list [--json] [--module PATH]       initialized tokens and their Ed25519 keys
    tka key show [--json] <uri>                 print the key's tlpub:
    tka key import <file-uri> <pkcs11-uri>      move a software key into a token (discouraged)
    tka key sign-nodekeys --key URI --in F --out F [--rotation-key tlpub:…] [--format base64|hex]
                          (--authority DIR | --unchecked) [--yes]

PINs come from the URI's pin-source=, TKA_PKCS11_PIN or a prompt; never from argv.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from signer.backends import open_backend
from signer.cli.lock_commands import add_json_flag, json_version, read_text_file
from signer.echo import clip_input
from signer.uri import (
    DEFAULT_PKCS11_MODULE,
    MODULE_ENV,
    Pkcs11Uri,
    parse_file_uri,
    parse_pkcs11_uri,
    uri_scheme,
)
from verifier.errors import SignerError

LIST_SCHEMA = "tka.key-list/1"
KEY_SCHEMA = "tka.key/1"


def tlpub(public: bytes) -> str:
    return "tlpub:" + public.hex()


def register(subparsers: Any) -> None:
    key = subparsers.add_parser("key", help="manage signing keys (PKCS#11 tokens, key files)")
    sub = key.add_subparsers(dest="key_command", metavar="<key-command>", required=True)

    p = sub.add_parser("generate", help="generate an Ed25519 key inside a token, or a key file")
    p.add_argument("uri", help="pkcs11:token=…;object=<label>[;id=%%xx] or file:/path")
    add_json_flag(p, f"schema {KEY_SCHEMA}: public_key, uri")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("list", help="list initialized tokens and their Ed25519 keys")
    add_json_flag(p, f"schema {LIST_SCHEMA}")
    p.add_argument("--module", metavar="PATH", help=f"PKCS#11 module (default: ${MODULE_ENV} "
                   f"or {DEFAULT_PKCS11_MODULE})")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="print a key's public key as tlpub:")
    p.add_argument("uri")
    add_json_flag(p, f"schema {KEY_SCHEMA}: public_key, uri")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("import", help="import a software key file into a token (prefer generate)")
    p.add_argument("file_uri", metavar="file-uri")
    p.add_argument("pkcs11_uri", metavar="pkcs11-uri")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("sign-nodekeys", help="sign many node keys (direct signatures), one login")
    p.add_argument("--key", required=True, help="signing key URI")
    p.add_argument("--in", dest="infile", required=True, help="file with one nodekey: per line")
    p.add_argument("--out", dest="outfile", required=True, help="output file ('-' for stdout)")
    p.add_argument("--rotation-key", metavar="tlpub:…", help="wrapping (rotation) public key")
    p.add_argument("--format", choices=("base64", "hex"), default="base64",
                   help="encoding of each output line (default base64)")
    p.add_argument("--authority", metavar="DIR",
                   help="sign under this authority (a node's tka directory, read-only): the key "
                        "must be trusted there; required for appliance keys")
    p.add_argument("--unchecked", action="store_true",
                   help="sign without --authority, so without checking the key is trusted")
    p.add_argument("--yes", "--confirm", dest="confirm", action="store_true",
                   help="do not ask before signing (the plan is still printed)")
    p.set_defaults(func=cmd_sign_nodekeys)


# --------------------------------------------------------------------------------------------


def _pkcs11(uri: str) -> Pkcs11Uri:
    return parse_pkcs11_uri(uri)


def _print_key(version: int, public: bytes, uri: str) -> None:
    """A key's public half: `tlpub:…`, or the `tka.key/1` document."""
    if version:
        print(json.dumps({"schema": KEY_SCHEMA, "public_key": tlpub(public), "uri": uri},
                         indent=2))
    else:
        print(tlpub(public))


def cmd_generate(args: argparse.Namespace) -> int:
    version = json_version(args.json)
    scheme = uri_scheme(args.uri)
    if scheme == "file":
        from signer.backends.file import write_new_key_file

        path = parse_file_uri(args.uri)
        public = write_new_key_file(path)
        _print_key(version, public, f"file:{path}")
        print(f"tka: wrote a new software key to {path} (mode 0600)", file=sys.stderr)
        return 0
    if scheme != "pkcs11":
        raise SignerError(f"cannot generate a key for {scheme!r} URIs; use pkcs11: or file:")

    from signer.backends import pkcs11 as p11

    uri = _pkcs11(args.uri)
    if uri.object is None:
        raise SignerError("give the new key a label: add object=<label> to the PKCS#11 URI")
    ts = p11.open_token(uri)
    try:
        key_id = uri.id if uri.id is not None else p11.free_key_id(ts)
        public = p11.generate_key(ts, uri.object, key_id)
        full = Pkcs11Uri(module_path=uri.module_path, token=ts.label, object=uri.object,
                         id=key_id, pin_source=uri.pin_source)
        # Prove the new key signs and that its public object is its own (the session is still
        # open, so this shares the login instead of asking for the PIN again).
        with open_backend(full.to_string(with_module=True)) as backend:
            backend.sign(secrets.token_bytes(32))
            if backend.public_key() != public:
                raise SignerError("the new key's public object does not match its private key")
    finally:
        ts.close()
    _print_key(version, public, full.to_string())
    print(f"tka: generated Ed25519 key in token {ts.label!r}; use it as: {full.to_string()}",
          file=sys.stderr)
    return 0


def _list_document(module_path: str) -> dict[str, Any]:
    from signer.backends import pkcs11 as p11

    tokens: list[dict[str, Any]] = []
    for info, _token in list(p11.iter_token_infos(module_path)):
        entry: dict[str, Any] = {
            "label": info.label,
            "serial": info.serial,
            "manufacturer": info.manufacturer,
            "model": info.model,
            "slot_id": info.slot_id,
            "ed25519": info.has_eddsa,
            "flags": {
                "login_required": info.login_required,
                "pin_count_low": info.pin_count_low,
                "pin_final_try": info.pin_final_try,
                "pin_locked": info.pin_locked,
                "pin_to_be_changed": info.pin_to_be_changed,
            },
            "keys": [],
        }
        if info.has_eddsa:
            token_uri = Pkcs11Uri(module_path=module_path, token=info.label, serial=info.serial)
            ts = p11.open_token(token_uri, login=False)
            try:
                for key in sorted(p11.list_public_keys(ts), key=lambda k: (k.id, k.label)):
                    key_uri = Pkcs11Uri(module_path=module_path, token=info.label,
                                        object=key.label or None, id=key.id or None)
                    entry["keys"].append({
                        "object": key.label,
                        "id": key.id.hex(),
                        "public_key": tlpub(key.public_key),
                        "uri": key_uri.to_string(),
                    })
            finally:
                ts.close()
        tokens.append(entry)
    return {"schema": LIST_SCHEMA, "module": module_path, "tokens": tokens}


def cmd_list(args: argparse.Namespace) -> int:
    module_path = args.module or os.environ.get(MODULE_ENV) or DEFAULT_PKCS11_MODULE
    version = json_version(args.json)
    doc = _list_document(module_path)
    if version:
        print(json.dumps(doc, indent=2))
        return 0
    if not doc["tokens"]:
        print(f"no initialized tokens in {module_path}")
    for token in doc["tokens"]:
        notes = [name.replace("_", " ") for name, on in token["flags"].items()
                 if on and name != "login_required"]
        if not token["ed25519"]:
            notes.append("NO Ed25519 (CKM_EDDSA) support")
        suffix = f"  [{', '.join(notes)}]" if notes else ""
        print(f"token {token['label']!r}  {token['model']} serial {token['serial']}{suffix}")
        if token["ed25519"] and not token["keys"]:
            print("  (no Ed25519 public keys)")
        for key in token["keys"]:
            print(f"  {key['public_key']}  {key['uri']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    version = json_version(args.json)
    scheme = uri_scheme(args.uri)
    if scheme == "file":
        from signer.backends.file import FileBackend

        with FileBackend(parse_file_uri(args.uri)) as backend:
            _print_key(version, backend.public_key(), args.uri)
        return 0
    if scheme != "pkcs11":
        raise SignerError(f"cannot show {scheme!r} keys; use pkcs11: or file:")
    from signer.backends import pkcs11 as p11

    uri = _pkcs11(args.uri)
    ts = p11.open_token(uri, login=False)  # public objects need no PIN
    try:
        public = p11.find_public_key(ts, uri)
    finally:
        ts.close()
    if public is None and ts.info.login_required:
        ts = p11.open_token(uri, login=True)
        try:
            public = p11.find_public_key(ts, uri)
        finally:
            ts.close()
    if public is None:
        raise SignerError(
            f"no Ed25519 public key {uri.key_selector()} on token {ts.label!r}; "
            "`tka key list` shows the keys the token holds"
        )
    _print_key(version, public, args.uri)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from signer.backends import pkcs11 as p11
    from signer.backends.file import FileBackend

    if uri_scheme(args.file_uri) != "file" or uri_scheme(args.pkcs11_uri) != "pkcs11":
        raise SignerError("usage: tka key import file:/path/to/key pkcs11:token=…;object=…")
    uri = _pkcs11(args.pkcs11_uri)
    if uri.object is None:
        raise SignerError("give the imported key a label: add object=<label> to the PKCS#11 URI")
    print(
        "WARNING: importing a software key. This key has existed outside the token, so the token\n"
        "WARNING: cannot make it safer than every copy the file ever had (backups, editors,\n"
        "WARNING: swap). Prefer `tka key generate` for tailnet-lock keys. After the import,\n"
        "WARNING: destroy the key file and its copies.",
        file=sys.stderr,
    )
    with FileBackend(parse_file_uri(args.file_uri)) as source:
        seed, public = source.seed(), source.public_key()
        ts = p11.open_token(uri)
        try:
            key_id = uri.id if uri.id is not None else p11.free_key_id(ts)
            p11.import_seed(ts, uri.object, key_id, seed, public)
            del seed
            full = Pkcs11Uri(module_path=uri.module_path, token=ts.label, object=uri.object,
                             id=key_id, pin_source=uri.pin_source)
            try:
                with open_backend(full.to_string(with_module=True)) as backend:
                    backend.sign(secrets.token_bytes(32))  # verified against the file's key:
                    if backend.public_key() != public:
                        raise SignerError("the imported key's public object does not match")
            except SignerError:
                p11.destroy_key(ts, full)
                raise
        finally:
            ts.close()
    print(tlpub(public))
    print(f"tka: imported into token {ts.label!r}; use it as: {full.to_string()}",
          file=sys.stderr)
    return 0


def cmd_sign_nodekeys(args: argparse.Namespace) -> int:
    from signer import bulk

    rotation = bulk.parse_tl_public(args.rotation_key) if args.rotation_key else None
    bulk.check_rotation_key(rotation)
    text = read_text_file(args.infile, dash_is_stdin=True)
    source = "stdin" if args.infile == "-" else clip_input(args.infile)
    node_keys = bulk.read_node_keys(text.splitlines(), source)
    if not node_keys:
        raise SignerError(f"{source} holds no node keys to sign")
    authority = None
    if args.authority:
        from signer.authority_dir import open_authority_dir

        authority = open_authority_dir(Path(args.authority))
    elif not args.unchecked:
        raise SignerError(
            "pass --authority DIR (a node's tka directory) so that the signing key's trust is "
            "checked before anything is signed, or --unchecked to sign without that check"
        )
    with open_backend(args.key) as backend:
        if authority is not None:
            if not authority.key_trusted(backend.public_key()):
                raise SignerError(
                    f"{tlpub(backend.public_key())} is not trusted by the authority in "
                    f"{clip_input(args.authority)}; its signatures would authorize nothing"
                )
            backend.track(authority)
        from signer.cli.lock_commands import confirm

        confirm(args, bulk.plan(node_keys, backend.public_key(), rotation, authority),
                f"sign these {len(node_keys)} node keys")
        progress = bulk.terminal_progress(len(node_keys))
        try:
            lines = [
                bulk.encode_line(blob, args.format) + "\n"
                for blob in bulk.sign_node_keys(
                    backend, node_keys, rotation_public=rotation, on_progress=progress
                )
            ]
        except BaseException:
            if progress is not None:
                sys.stderr.write("\n")  # end the progress line so the error starts its own
            raise
    text = "".join(lines)
    if args.outfile == "-":
        sys.stdout.write(text)
    else:
        _write_atomically(Path(args.outfile), text)
    print(f"tka: signed {len(lines)} node keys", file=sys.stderr)
    return 0


def _write_atomically(path: Path, text: str) -> None:
    """All lines or none: a failure half-way must not leave a truncated output file."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise SignerError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
