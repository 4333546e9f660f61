"""The `tka` command line.

Each command group lives in its own module, named with its commands' one-line help in
`COMMANDS`: a module exposes `register(subparsers)`, which adds its sub-commands, each with
`set_defaults(func=handler)`; a handler takes the parsed arguments and returns an exit code.
Only the module of the command being run is imported (docs/cli.md, "Conventions": start-up
time, `tka` alone = `tka status`, Go-style `-flag`s, `-v`).
Exit codes: 0 success, 1 failure, 2 usage, 130 interrupted. Errors from the `TKAError`
hierarchy, `UsageError` and argparse's usage errors are printed as one line on stderr,
prefixed "tka: ", with anything echoed from the input cut (`signer.echo.clip_input`) and
control characters escaped. Anything else that escapes a handler is a bug: one line
`tka: internal error (<type>)…`, exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence

from verifier.errors import TKAError

# typing's names for annotations only (they are strings here): without importing `typing`,
# several milliseconds of `tka --help` where nothing else loads it (issue 14 item 4); type
# checkers take any `TYPE_CHECKING` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

_LOCK = "signer.cli.lock_commands"

# The top-level commands in the order `tka --help` lists them: the module whose
# `register(subparsers)` adds each one (with its sub-commands), and its one-line help. `tka`
# imports only the module of the command it runs, so that `tka --help` and `tka status` start
# fast (issue 14 item 4); tests/signer/test_cli_conventions.py checks this table against what
# the modules register. A command missing here still runs (every module is then loaded).
COMMANDS: dict[str, tuple[str, str]] = {
    "key": ("signer.cli.key_commands", "manage signing keys (PKCS#11 tokens, key files)"),
    "init": (_LOCK, "Initialize tailnet lock"),
    "status": (_LOCK, "Outputs the state of tailnet lock"),
    "add": (_LOCK, "Adds one or more trusted signing keys to tailnet lock"),
    "remove": (_LOCK, "Removes one or more trusted signing keys from tailnet lock"),
    "sign": (_LOCK, "Signs a node or pre-approved auth key"),
    "disable": (_LOCK, "Consumes a disablement secret to shut down tailnet lock for the tailnet"),
    "disablement-kdf": (
        _LOCK, "Computes a disablement value from a disablement secret (advanced users only)"
    ),
    "log": (_LOCK, "List changes applied to tailnet lock"),
    "local-disable": (_LOCK, "Disables tailnet lock for this node only"),
    "revoke-keys": (_LOCK, "Revoke compromised tailnet-lock keys"),
    "node": (_LOCK, "Manage this node's registration"),
    "offline": ("signer.cli.offline_commands", "sign on an air-gapped workstation"),
    "audit": (
        "signer.cli.audit_commands",
        "check peers' node-key signatures against an authority directory (read-only)",
    ),
    "peers": ("signer.cli.peers_commands", "export peers' signatures for tka audit"),
    "appliance": ("signer.cli.appliance_commands", "set up and inspect the signer appliance"),
    "completion": ("signer.cli.completion", "print a shell completion script (bash, zsh, fish)"),
}

# Command-group modules, in the order their commands appear in `tka --help`.
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(m for m, _ in COMMANDS.values()))

# `tka` alone is `tka status`, as `tailscale lock` alone is `tailscale lock status`.
DEFAULT_COMMAND = "status"

# Options of `tka` itself (before the command); none takes a value. -v/--verbose is accepted
# after the command too.
_TOP_OPTIONS = frozenset({"-h", "--help", "--version", "-v", "--verbose"})
_HELP_OR_VERSION = frozenset({"-h", "--help", "-help", "--version", "-version"})


class UsageError(Exception):
    """Wrong arguments: one line on stderr, exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one `tka: …` line (exit code 2) instead of a usage block;
    sub-command parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        from signer.echo import ECHO_LIMIT, clip_input, one_line

        # argparse repeats what was typed (an unknown option, a bad value): cut long words.
        message = re.sub(rf"\S{{{ECHO_LIMIT + 1},}}", lambda m: clip_input(m.group()), message)
        self.exit(2, one_line(f"tka: {message}; see '{self.prog} --help'") + "\n")


class _VersionAction(argparse.Action):
    """--version, with the version looked up only when asked: reading the distribution's
    metadata costs several milliseconds, which every other run would pay."""

    def __init__(
        self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
        default: str = argparse.SUPPRESS, help: str | None = None,
    ) -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0,
                         help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(f"tka {_version()}")
        parser.exit()


VERBOSE_HELP = ("log what the command does on stderr (state directory, service, key, sync "
                "steps, files written; never a secret)")


def _remember_translations() -> None:
    """argparse asks gettext for a translation of each of its texts in every parser it builds,
    and gettext searches the locale directories again each time a text has none: most of the
    time it takes to build `tka`'s parsers. Remember its answers (the same ones)."""
    translate = getattr(argparse, "_", None)
    if translate is not None and not hasattr(translate, "cache_info"):
        import functools

        argparse._ = functools.lru_cache(maxsize=1024)(translate)  # type: ignore[attr-defined]


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The parser of `tka` with every command (`commands` None), or with the full parsers of
    only the named commands' modules and a placeholder for each other command (enough for
    `tka --help` and for argparse to name the choices)."""
    _remember_translations()
    parser = ArgumentParser(
        prog="tka",
        description="Hardware-backed signer for Tailscale's tailnet lock. Run without a "
        "command, it is `tka status`.",
        epilog="Options may also be written as Go's flag package takes them (-json, -state "
        "DIR, -json=1). $TKA_STATE and $TKA_CONTROL give the default --state and --control.",
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    only: set[str] | None = None  # the commands whose full parsers are built (None: all)
    if commands is None:
        modules = set(COMMAND_MODULES)
    else:
        wanted = list(commands)
        if any(name not in COMMANDS for name in wanted):
            modules = set(COMMAND_MODULES)  # unknown here: let every module have its say
        else:
            modules = {COMMANDS[name][0] for name in wanted}
            only = set(wanted)
    # The modules register into a scratch parser of the same name; their parsers then take the
    # places of the placeholders, so that the order of `tka --help` is the table's.
    scratch = ArgumentParser(prog=parser.prog)
    loaded = scratch.add_subparsers(dest="command", metavar="<command>", required=True)
    for module in COMMAND_MODULES:
        if module in modules:
            if module == _LOCK and only is not None:
                # The lifecycle module has eleven commands: only those named are built.
                importlib.import_module(module).register(loaded, only)
            else:
                importlib.import_module(module).register(loaded)
    for name, (_, help_text) in COMMANDS.items():
        subparsers.add_parser(name, help=help_text)
        if name in loaded.choices:
            subparsers.choices[name] = loaded.choices[name]
    for name, command in loaded.choices.items():  # registered, but missing from COMMANDS
        if name not in subparsers.choices:
            subparsers.add_parser(name)
            subparsers.choices[name] = command
    for sub in (p for top in loaded.choices.values() for p in (top, *_parsers_below(top))):
        if "--verbose" not in sub._option_string_actions:
            # The same flag after the command; SUPPRESS keeps `tka -v status` from being reset
            # by the sub-command's default.
            sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help=VERBOSE_HELP)
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: dict[str, argparse.ArgumentParser] = action.choices
            return found
    return {}


def _parsers_below(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    for sub in _subcommands(parser).values():
        yield sub
        yield from _parsers_below(sub)


def command_word(argv: Sequence[str]) -> int | None:
    """Where the command is in `argv`: the first word that is not an option (`tka`'s own
    options take no value), or None."""
    for i, arg in enumerate(argv):
        if arg == "--":
            return i + 1 if i + 1 < len(argv) else None
        if not arg.startswith("-") or arg == "-":
            return i
    return None


def with_default_command(argv: Sequence[str]) -> list[str]:
    """`tka` and `tka -v` alone are `tka status` (and `tka -v status`)."""
    words = list(argv)
    bare = all(a in _TOP_OPTIONS or "-" + a in _TOP_OPTIONS for a in words)
    if bare and not any(a in _HELP_OR_VERSION for a in words):
        words.append(DEFAULT_COMMAND)
    return words


_GO_FLAG = re.compile(r"-([A-Za-z][A-Za-z0-9_-]+)(=.*)?", re.DOTALL)


def go_flags(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """Go's flag syntax beside ours, as `tailscale lock` takes it: `-word` and `-word=value`
    become `--word…` when `--word` is a long option of the (sub-)command parser they are given
    to. Short options (`-h`, `-v`), negative numbers, the value after an option that takes one,
    anything that is no option of that parser, and everything after `--` are left alone."""
    out: list[str] = []
    current = parser
    value_next = False
    for i, arg in enumerate(argv):
        if value_next:
            out.append(arg)
            value_next = False
            continue
        if arg == "--":
            out.extend(argv[i:])
            break
        match = _GO_FLAG.fullmatch(arg)
        if match and "--" + match.group(1) in current._option_string_actions:
            arg = "-" + arg
        if arg.startswith("--"):
            name, eq, _ = arg.partition("=")
            action = _long_option(current, name)
            if action is not None and not eq and getattr(action, "attached_value_only", False):
                arg = f"{name}={action.const}"  # Go's boolean-style flag: the next word is not its
            value_next = action is not None and not eq and _takes_value(action)
        elif not arg.startswith("-"):
            current = _subcommands(current).get(arg, current)
        out.append(arg)
    return out


def _long_option(parser: argparse.ArgumentParser, name: str) -> argparse.Action | None:
    """The option `name` names, as argparse resolves it (exactly, else a unique prefix)."""
    actions = parser._option_string_actions
    if name in actions:
        return actions[name]
    if not parser.allow_abbrev:
        return None
    found = {id(a): a for s, a in actions.items() if s.startswith("--") and s.startswith(name)}
    return next(iter(found.values())) if len(found) == 1 else None


def _takes_value(action: argparse.Action) -> bool:
    """Whether the next word is this option's value whatever it looks like."""
    return action.nargs is None or action.nargs == "+" or (
        isinstance(action.nargs, int) and action.nargs > 0
    )


def main(argv: Sequence[str] | None = None) -> int:
    words = with_default_command(sys.argv[1:] if argv is None else argv)
    at = command_word(words)
    parser = build_parser([] if at is None else [words[at]])
    args = parser.parse_args(go_flags(words, parser))
    func = getattr(args, "func", None)
    if func is None:
        parser.error("missing command")
    _no_core_dumps()
    from signer import verbose

    verbose.enable(bool(getattr(args, "verbose", False)))
    try:
        return _run(func, args)
    finally:
        verbose.enable(False)  # a caller running main() again in-process starts quiet


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
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
            from signer.echo import clip_input

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
    from signer.echo import one_line

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
