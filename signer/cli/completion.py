"""`tka completion bash|zsh|fish`: print a shell completion script for every command, sub-command
and option of `tka` (made by shtab from the whole argparse tree, so it never falls behind).

    bash:  source <(tka completion bash)       or: tka completion bash > /etc/bash_completion.d/tka
    zsh:   tka completion zsh > "${fpath[1]}/_tka"     (then: autoload -U compinit && compinit)
    fish:  tka completion fish > ~/.config/fish/completions/tka.fish

Options that take a directory or a file complete paths.
"""

from __future__ import annotations

import argparse
import sys

import shtab

SHELLS = ("bash", "zsh", "fish")

# How an option's value is completed, by its metavar (else by its destination).
_DIRECTORY_METAVARS = frozenset({"DIR"})
_FILE_METAVARS = frozenset({"FILE", "PATH", "PATH|URL", "file:PATH"})
_FILE_DESTS = frozenset({"infile", "outfile", "out", "secrets_out", "peers", "status"})


def _complete_paths(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _complete_paths(sub)
        elif action.option_strings and action.nargs != 0:
            if action.metavar in _DIRECTORY_METAVARS:
                action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
            elif action.metavar in _FILE_METAVARS or action.dest in _FILE_DESTS:
                action.complete = shtab.FILE  # type: ignore[attr-defined]


def script(shell: str) -> str:
    """The completion script of `tka` for `shell`."""
    from signer.cli import build_parser

    parser = build_parser()
    _complete_paths(parser)
    text: str = shtab.complete(parser, shell=shell)
    return text if text.endswith("\n") else text + "\n"


def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(script(args.shell))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, fish)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("shell", choices=SHELLS, help="the shell to complete for")
    p.set_defaults(func=cmd_completion)
