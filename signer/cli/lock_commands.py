"""`tka <command>`: the tailnet-lock lifecycle, mirroring `tailscale lock <command>` (docs/cli.md).

Commands are top level (`tka init`, `tka status`, …). Every command acts for one node, named by
its state directory (`--state`), against one coordination service (`--control`), and signs, when
it signs, with the node's lock key (`--key`, default: the URI recorded in the node state).

Before doing anything a command brings the node's local authority up to date with the service
exactly as tailscaled does on every netmap (docs/control.md, `signer.sync_node`): reads are
therefore current, and the local authority advances only through verified AUMs (Inform).

Mutating commands print what they will change on stderr and ask; without a terminal they
refuse unless `--yes`/`--confirm` is given (exit 2). `init` keeps Tailscale's behaviour: without
`--confirm` it prints the plan and the command to re-run (exit 0).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Collection, Sequence

from signer.cli import UsageError
from signer.echo import clip_input
from verifier.errors import TKAError

Handler = Callable[[argparse.Namespace], int]

HELP_ORDER = (
    "init",
    "status",
    "add",
    "remove",
    "sign",
    "disable",
    "disablement-kdf",
    "log",
    "local-disable",
    "revoke-keys",
    "node",
)


class CommandError(TKAError):
    """A refusal of a lock command (not enabled, already enabled, not trusted, ...)."""


class NeedsConfirmation(UsageError):
    """A mutating command ran without a terminal and without --yes: one line, exit code 2."""


# -- shared arguments ---------------------------------------------------------------------------


def common_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("node and service")
    group.add_argument(
        "--state",
        metavar="DIR",
        help="node state directory (default: $TKA_STATE, else $XDG_DATA_HOME/tka/node or "
        "~/.local/share/tka/node)",
    )
    group.add_argument(
        "--control",
        metavar="PATH|URL",
        help="coordination service: a SQLite file for the embedded service, or "
        "http://127.0.0.1:PORT (default: $TKA_CONTROL, else the embedded service in the data "
        "directory)",
    )
    group.add_argument(
        "--key",
        metavar="URI",
        action="append",
        help="lock-key backend URI (pkcs11:…, appliance:…, file:…); default: the node's "
        "recorded lock key. Commands that change the authority accept it several times: each "
        "update is signed by every key, in order",
    )
    group.add_argument(
        "--yes",
        "--confirm",
        dest="confirm",
        action="store_true",
        help="do not ask before changing anything",
    )
    return common


class JsonFlag(argparse.Action):
    """`--json[=N]`, as `tailscale lock`'s flag: a value only after `=`, so that `--json URI`
    leaves URI to the command (`signer.cli.go_flags` makes a bare `--json` `--json=true`)."""

    attached_value_only = True

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)


def add_json_flag(parser: argparse.ArgumentParser, schema: str = "schema version 1") -> None:
    """The one `--json` of every command with JSON output: `--json`/`--json=true` is the
    command's schema version, `--json=false` the human output, `--json=N` version N
    (`json_version`)."""
    parser.add_argument(
        "--json",
        action=JsonFlag,
        nargs="?",
        const="true",
        default=None,
        metavar="N",
        help=f"JSON output ({schema}); --json=N asks for schema version N",
    )


def json_version(value: str | None, current: int = 1) -> int:
    """`--json`, `--json=true` → `current` (the command's one schema version); `--json=false` → 0
    (human); `--json=N` → N if it is `current`."""
    if value is None or value.lower() == "false":
        return 0
    if value.lower() == "true":
        return current
    try:
        version = int(value)
    except ValueError:
        raise UsageError(
            f"--json takes true, false or a schema version, got '{clip_input(value)}'"
        ) from None
    if version != current:
        raise CommandError(f"unrecognised version: {version}")
    return version


def _bool_value(value: str) -> bool:
    low = value.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}")


def confirm(args: argparse.Namespace, plan: Sequence[str], action: str) -> None:
    """Go on if --yes; else show `plan` on the terminal and ask. Without a terminal, refuse in
    one line (scripts must say --yes explicitly)."""
    if args.confirm:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise NeedsConfirmation(f"refusing to {action} without confirmation; re-run with --yes")
    for line in plan:
        print(line, file=sys.stderr)
    print(f"Proceed to {action}? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise NeedsConfirmation(f"aborted: did not {action}")


def read_secret_argument(value: str | None, what: str) -> str:
    """A secret from `file:PATH`, from stdin (`-` or absent), or — for compatibility with
    `tailscale lock`, discouraged — from argv itself."""
    if value is None or value == "-":
        if sys.stdin.isatty():
            import getpass

            text = getpass.getpass(f"{what}: ")
        else:
            # Bytes, decoded here: how sys.stdin decodes depends on the locale.
            try:
                text = sys.stdin.buffer.readline(MAX_TEXT_FILE).decode("utf-8")
            except UnicodeDecodeError:
                raise CommandError(f"the {what} on stdin is not UTF-8 text") from None
        text = text.strip()
        if not text:
            raise UsageError(f"no {what} given on stdin")
        return text
    if value.startswith("file:"):
        return read_text_file(value[len("file:") :]).strip()
    return value


# Files named on the command line hold a secret, a blob, or a list of peers: this is plenty,
# and /dev/zero must not exhaust memory.
MAX_TEXT_FILE = 64 << 20


def read_text_file(path: str, *, dash_is_stdin: bool = False) -> str:
    """The UTF-8 text of a file the user named (of stdin for `-` if `dash_is_stdin`), or one
    line saying why it cannot be had (missing, a directory, unreadable, too large, binary)."""
    from_stdin = dash_is_stdin and path == "-"
    name = "stdin" if from_stdin else clip_input(path)
    try:
        if from_stdin:
            data = sys.stdin.buffer.read(MAX_TEXT_FILE + 1)
        else:
            with open(path, "rb") as fh:
                data = fh.read(MAX_TEXT_FILE + 1)
    except OSError as exc:
        raise CommandError(f"cannot read {name}: {exc.strerror}") from None
    if len(data) > MAX_TEXT_FILE:
        raise CommandError(f"{name} is larger than {MAX_TEXT_FILE >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"{name} is not UTF-8 text") from None


# -- registration -------------------------------------------------------------------------------


def authority_parser() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--authority",
        metavar="DIR",
        help="work from an authority directory instead of a node and service: a real node's "
        "tka-profiles/<id> directory or a copy, read-only; what is signed is printed for a node "
        "to transmit (docs/tailscale.md)",
    )
    return parent


def _routed(name: str, handler: Handler) -> Handler:
    """`handler`, or with --authority its counterpart in authority_handlers (or one line saying
    why the command needs a node and service)."""

    def run(args: argparse.Namespace) -> int:
        if getattr(args, "authority", None) is None:
            return handler(args)
        from signer.cli import authority_handlers

        if name in authority_handlers.NEEDS_SERVICE:
            raise UsageError(authority_handlers.NEEDS_SERVICE[name])
        offline: Handler = getattr(authority_handlers, "cmd_" + name.replace("-", "_"))
        return offline(args)

    return run


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    only: Collection[str] | None = None,
) -> None:
    """Add the lifecycle commands to `subparsers`: all of them, or those named in `only` (`tka
    <command>` builds the full parser of the one command it runs: the others' parsers are a
    good part of its start-up time, issue 14 item 4)."""

    def wanted(name: str) -> bool:
        return only is None or name in only

    common = common_parser()
    authority = authority_parser()

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = subparsers.add_parser(
            name, parents=[common, authority], help=help_text, description=help_text
        )
        p.set_defaults(func=_routed(name, handler))
        return p

    from signer.cli import lock_handlers as h

    if wanted("init"):
        p = add("init", h.cmd_init, "Initialize tailnet lock")
        p.add_argument("--gen-disablements", type=int, default=1, metavar="N",
                       help="number of disablement secrets to generate (default 1)")
        p.add_argument("--gen-disablement-for-support", action="store_true",
                       help="generate a disablement secret and transmit it to the service's "
                            "support")
        p.add_argument("--secrets-out", metavar="FILE",
                       help="write the disablement secrets to this new file (mode 0600, fsync-ed) "
                            "instead of printing them")
        p.add_argument("args", nargs="*", metavar="<trusted-key>|disablement:<hex>")

    if wanted("status"):
        p = add("status", h.cmd_status, "Outputs the state of tailnet lock")
        add_json_flag(p)
        p.add_argument("args", nargs="*", help=argparse.SUPPRESS)

    if wanted("add"):
        p = add("add", h.cmd_add, "Adds one or more trusted signing keys to tailnet lock")
        p.add_argument("keys", nargs="*", metavar="<public-key>")

    if wanted("remove"):
        p = add("remove", h.cmd_remove,
                "Removes one or more trusted signing keys from tailnet lock")
        p.add_argument("--re-sign", nargs="?", const=True, default=True, type=_bool_value,
                       metavar="BOOL",
                       help="re-sign signatures made by the removed keys (default: true)")
        p.add_argument("keys", nargs="*", metavar="<public-key>")

    if wanted("sign"):
        p = add("sign", h.cmd_sign, "Signs a node or pre-approved auth key")
        p.add_argument("--deeplink", metavar="URL",
                       help="sign the node a signing deeplink (tailscale://sign-device/v1/?…) "
                            "names, after checking its MAC; an appliance shows the node's name "
                            "and OS")
        p.add_argument("--mode", choices=("revocable", "direct"),
                       help="for a pre-approved auth key: revocable (default, as Tailscale does: a "
                            "fresh credential key, added to the authority) or direct (the lock key "
                            "signs the credential; nothing added)")
        p.add_argument("--wrapper-stableid", metavar="ID", default="",
                       help="with --authority: the stable ID recorded as the wrapping node in the "
                            "credential key's metadata (default: empty)")
        p.add_argument("args", nargs="*", metavar="<node-key> [<rotation-key>] | <auth-key>")

    if wanted("disable"):
        p = add("disable", h.cmd_disable,
                "Consumes a disablement secret to shut down tailnet lock for the tailnet")
        p.add_argument("args", nargs="*", metavar="<disablement-secret>",
                       help="the secret, file:PATH, or '-'/nothing to read it from stdin")

    if wanted("disablement-kdf"):
        p = add("disablement-kdf", h.cmd_disablement_kdf,
                "Computes a disablement value from a disablement secret (advanced users only)")
        p.add_argument("args", nargs="*", metavar="<hex-encoded-disablement-secret>")

    if wanted("log"):
        p = add("log", h.cmd_log, "List changes applied to tailnet lock")
        p.add_argument("--limit", type=int, default=50, metavar="N",
                       help="max number of updates to list (default 50)")
        p.add_argument("--graph", nargs="?", const="text", default=None, metavar="FORMAT",
                       help="draw every stored AUM as a tree instead, forks and discarded AUMs "
                            "included (--limit does not apply): text (default), dot, or svg "
                            "(needs Graphviz)")
        add_json_flag(p)

    if wanted("local-disable"):
        p = add("local-disable", h.cmd_local_disable, "Disables tailnet lock for this node only")
        p.add_argument("args", nargs="*", help=argparse.SUPPRESS)

    if wanted("revoke-keys"):
        p = add("revoke-keys", h.cmd_revoke_keys, "Revoke compromised tailnet-lock keys")
        p.add_argument("--cosign", action="store_true",
                       help="add this node's signature to the recovery blob")
        p.add_argument("--finish", action="store_true",
                       help="finish the recovery by transmitting the revocation")
        p.add_argument("--fork-from", default="", metavar="HASH",
                       help="parent AUM hash to rewrite from (64 hex or 52 base32; advanced)")
        p.add_argument("args", nargs="*", metavar="<tailnet-lock-key>|<recovery-blob>")

    if wanted("node"):
        p = subparsers.add_parser("node", help="Manage this node's registration")
        node_sub = p.add_subparsers(dest="node_command", metavar="<subcommand>", required=True)
        r = node_sub.add_parser("register", parents=[common],
                                help="Register a node with the coordination service")
        r.add_argument("--name", required=True, help="the node's name")
        r.add_argument("--auth-key", metavar="KEY",
                       help="auth key (may be a wrapped --TL key); file:PATH or '-' for stdin")
        r.add_argument("--lock-key", metavar="URI",
                       help="lock-key backend URI; default: a new file key in the state directory")
        r.add_argument("--control-ca", metavar="FILE",
                       help="PEM CA the service's https certificate must chain to (kept in the "
                            "state directory)")
        r.set_defaults(func=h.cmd_node_register)


def program_name() -> str:
    """How the command was invoked, for texts that tell the user what to run next."""
    base = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "tka"
    return "tka" if base in ("", "__main__.py", "-c") else base
