"""The `tka` command line.

Each command group lives in its own module and registers itself through `COMMAND_MODULES`:
a module exposes `register(subparsers)`, which adds its sub-commands, each with
`set_defaults(func=handler)`; a handler takes the parsed arguments and returns an exit code.
Exit codes: 0 success, 1 failure, 2 usage, 130 interrupted. Errors from the `TKAError`
hierarchy, `UsageError` and argparse's usage errors are printed as one line on stderr,
prefixed "tka: ", with anything echoed from the input cut (`signer.render.clip_input`) and
control characters escaped. Anything else that escapes a handler is a bug: one line
`tka: internal error (<type>)…`, exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from verifier.errors import TKAError

# Command-group modules, in the order they appear in `tka --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "signer.cli.key_commands",
    "signer.cli.lock_commands",
    "signer.cli.offline_commands",
    "signer.cli.audit_commands",
    "signer.cli.peers_commands",
    "signer.cli.appliance_commands",
)


class UsageError(Exception):
    """Wrong arguments: one line on stderr, exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one `tka: …` line (exit code 2) instead of a usage block;
    sub-command parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        from signer.render import ECHO_LIMIT, clip_input, one_line

        # argparse repeats what was typed (an unknown option, a bad value): cut long words.
        message = re.sub(rf"\S{{{ECHO_LIMIT + 1},}}", lambda m: clip_input(m.group()), message)
        self.exit(2, one_line(f"tka: {message}; see '{self.prog} --help'") + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="tka",
        description="Hardware-backed signer for Tailscale's tailnet lock.",
    )
    parser.add_argument("--version", action="version", version=f"tka {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.error("missing command")
    _no_core_dumps()
    try:
        code: int = func(args)
        sys.stdout.flush()  # a full disk or closed pipe is reported here, not at exit
    except UsageError as exc:
        _fail(str(exc))
        return 2
    except TKAError as exc:
        _fail(str(exc))
        return 1
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
    except OSError as exc:
        if exc.filename is not None:  # a file we did not wrap in a message of our own: a bug
            from signer.render import clip_input

            where = f"{exc.strerror}: {clip_input(exc.filename)}"
            _fail(f"internal error ({type(exc).__name__}: {where}); please report it")
            return 1
        # Writing the output failed (ENOSPC, EPIPE, EIO): one line, and nothing more to stdout.
        _detach_stdout()
        _fail(f"cannot write the output: {exc.strerror or exc}")
        return 1
    except Exception as exc:
        # Last resort, so that a bug still ends in one line. Only the type: the text of an
        # unexpected error may quote input, which can be a secret.
        _fail(f"internal error ({type(exc).__name__}); please report it")
        return 1
    return code


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tka-signer")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _fail(message: str) -> None:
    from signer.render import one_line

    print(f"tka: {one_line(message)}", file=sys.stderr)


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
