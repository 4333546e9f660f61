"""The `tka` command line.

Each command group lives in its own module and registers itself through `COMMAND_MODULES`:
a module exposes `register(subparsers)`, which adds its sub-commands, each with
`set_defaults(func=handler)`; a handler takes the parsed arguments and returns an exit code.
Exit codes: 0 success, 1 failure, 2 usage. Errors from the `TKAError` hierarchy are printed as
one line on stderr, prefixed "tka: ".
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from verifier.errors import TKAError

# Command-group modules, in the order they appear in `tka --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "signer.cli.key_commands",
    "signer.cli.lock_commands",
    "signer.cli.offline_commands",
    "signer.cli.audit_commands",
    "signer.cli.appliance_commands",
)


class UsageError(Exception):
    """Wrong arguments: one line on stderr, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tka",
        description="Hardware-backed signer for Tailscale's tailnet lock.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    _no_core_dumps()
    try:
        code: int = func(args)
        sys.stdout.flush()  # a full disk or closed pipe is reported here, not at exit
    except UsageError as exc:
        print(f"tka: {exc}", file=sys.stderr)
        return 2
    except TKAError as exc:
        print(f"tka: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tka: interrupted", file=sys.stderr)
        return 1
    except OSError as exc:
        # Writing the output failed (ENOSPC, EPIPE, EIO): one line, and nothing more to stdout.
        _detach_stdout()
        print(f"tka: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return code


def _no_core_dumps() -> None:
    """Commands handle PINs, disablement secrets and wrapping keys: a core dump must not keep
    them."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _detach_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
