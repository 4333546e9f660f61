"""The command line's conventions (issue 13 item 5, issue 14 item 4): `tka` alone is `tka
status`, Go-style single-dash long flags, $TKA_STATE/$TKA_CONTROL, `-v`, shell completion, one
`--json[=N]` flag, and a start that imports only what the command needs."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import signer.cli
from signer.cli import COMMAND_MODULES, COMMANDS, build_parser, go_flags, main
from signer.cli.lock_commands import JsonFlag

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), "PYTHONPATH": str(REPO), **extra}
    for name in ("TKA_STATE", "TKA_CONTROL"):
        if name not in extra:
            env.pop(name, None)
    return env


def _tka(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "signer.cli", *argv], cwd=tmp_path,
                          env=_env(tmp_path, **env), capture_output=True, text=True, timeout=60)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A node registered (software lock key) with an embedded service: (state dir, database)."""
    state, db = str(tmp_path / "node"), str(tmp_path / "control.db")
    proc = _tka(tmp_path, "node", "register", "--name", "n", "--state", state, "--control", db)
    assert proc.returncode == 0, proc.stderr
    yield state, db


# -- the command table and a light start ------------------------------------------------------


def test_the_command_table_is_what_the_modules_register() -> None:
    scratch = argparse.ArgumentParser(prog="tka")
    subparsers = scratch.add_subparsers()
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    registered = {a.dest: a.help for a in subparsers._choices_actions}
    assert registered == {name: help_text for name, (_, help_text) in COMMANDS.items()}
    for name, (module, _) in COMMANDS.items():
        one = argparse.ArgumentParser(prog="tka").add_subparsers()
        importlib.import_module(module).register(one)
        assert name in one.choices, f"{module} does not register {name}"


def test_help_lists_every_command_in_table_order() -> None:
    text = build_parser([]).format_help()
    positions = [text.index(f"    {name} ") if f"    {name} " in text else text.index(
        f"    {name}\n") for name in COMMANDS]
    assert positions == sorted(positions)


# Modules a command that talks to no http service, and `--help` above all, must not load.
HEAVY = ("ssl", "_ssl", "urllib", "http", "email", "sqlite3", "_sqlite3", "nacl", "cffi",
         "_cffi_backend", "argon2", "logging", "pkcs11", "serial", "shtab")

_PROBE = """
import sys
before = set(sys.modules)
from signer.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print("\\n".join(sorted(set(sys.modules) - before)), file=sys.stderr)
sys.exit(code)
"""


def _loaded_by(tmp_path: Path, *argv: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], cwd=tmp_path,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stderr.split())


def _heavy(loaded: set[str], allowed: tuple[str, ...] = ()) -> set[str]:
    return {m for m in loaded if m.split(".")[0] in HEAVY and m.split(".")[0] not in allowed}


def test_help_imports_no_command_and_nothing_heavy(tmp_path: Path) -> None:
    loaded = _loaded_by(tmp_path, "--help")
    assert not _heavy(loaded), _heavy(loaded)
    # No command module either: `tka --help` needs only the table.
    assert not {m for m in COMMAND_MODULES if m in loaded}
    assert "verifier.aum" not in loaded and "signer.render" not in loaded
    # Annotations only: `typing` is not loaded for them (several ms in a fresh venv; where the
    # interpreter's `site` loaded it already, it cannot show up here).
    assert "typing" not in loaded


def test_status_on_the_embedded_service_imports_no_http_or_tls(
    tmp_path: Path, node: tuple[str, str]
) -> None:
    state, db = node
    loaded = _loaded_by(tmp_path, "status", "--state", state, "--control", db)
    # sqlite3 is the embedded service, nacl the node key, cffi the native verifier. pathlib
    # (Python 3.11) imports urllib.parse itself, which shows where `site` has not loaded it.
    if "pathlib" in loaded:
        loaded -= {"urllib", "urllib.parse"}
    assert not _heavy(loaded, allowed=("sqlite3", "_sqlite3", "nacl", "cffi", "_cffi_backend"))
    assert not {"signer.cli.key_commands", "signer.cli.appliance_commands",
                "signer.cli.audit_commands", "signer.backends.pkcs11"} & loaded
    # The node key's X25519 half comes from PyNaCl's libsodium binding itself, without the
    # binding modules `nacl.bindings` would load.
    assert "nacl._sodium" in loaded and "nacl.bindings" not in loaded
    # Nothing is drawn at random in a read-only command: `secrets` (with `random`) stays out.
    # (Where this interpreter's `site` has loaded a module already, it cannot show up here.)
    assert not {"secrets", "random"} & loaded


def test_a_command_built_alone_parses_and_helps_as_in_the_full_parser() -> None:
    # `tka <command>` builds only that command's parser (signer.cli.build_parser): the same
    # parser as in the full tree, placeholders aside.
    full = build_parser()
    every = [*signer.cli.lock_commands.HELP_ORDER, "node register"]
    for words in (w.split() for w in every):
        alone = build_parser(words[:1])
        parsers = []
        for top in (full, alone):
            parser = top
            for word in words:
                parser = signer.cli._subcommands(parser)[word]
            parsers.append(parser)
        assert parsers[0].format_help() == parsers[1].format_help(), words
        assert alone.format_help() == full.format_help()


def test_the_node_public_key_is_libsodiums() -> None:
    import nacl.bindings

    from signer.node import node_public_from_private

    for private in (bytes(32), b"\xff" * 32, bytes(range(32)), os.urandom(32)):
        assert node_public_from_private(private) == nacl.bindings.crypto_scalarmult_base(private)


def test_version_reads_the_metadata_only_when_asked(tmp_path: Path) -> None:
    assert "importlib.metadata" not in _loaded_by(tmp_path, "--help")


# -- `tka` alone ----------------------------------------------------------------------------


def test_tka_alone_is_tka_status(tmp_path: Path, node: tuple[str, str]) -> None:
    state, db = node
    env = {"TKA_STATE": state, "TKA_CONTROL": db}
    bare = _tka(tmp_path, **env)
    status = _tka(tmp_path, "status", **env)
    assert bare.returncode == status.returncode == 0, bare.stderr
    assert bare.stdout == status.stdout
    assert "Tailnet Lock is NOT enabled." in bare.stdout
    assert bare.stderr == ""
    verbose = _tka(tmp_path, "-v", **env)
    assert verbose.returncode == 0 and verbose.stdout == status.stdout
    assert "tka -v: state directory" in verbose.stderr


def test_tka_alone_without_a_node_says_so_in_one_line(tmp_path: Path) -> None:
    proc = _tka(tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tka: no node state in "), proc.stderr


def test_help_and_version_stay_themselves(tmp_path: Path) -> None:
    assert "<command>" in _tka(tmp_path, "--help").stdout
    assert _tka(tmp_path, "-help").stdout == _tka(tmp_path, "--help").stdout
    assert _tka(tmp_path, "--version").stdout.startswith("tka ")
    assert _tka(tmp_path, "-version").stdout == _tka(tmp_path, "--version").stdout


# -- Go-style flags -------------------------------------------------------------------------


def _parse(*argv: str) -> argparse.Namespace:
    words = signer.cli.with_default_command(argv)
    at = signer.cli.command_word(words)
    parser = build_parser([] if at is None else [words[at]])
    return parser.parse_args(go_flags(words, parser))


def test_single_dash_long_flags_are_long_flags() -> None:
    args = _parse("status", "-json", "-state", "/s", "-control=/c.db")
    assert (args.json, args.state, args.control) == ("true", "/s", "/c.db")
    assert _parse("status", "-json=1").json == "1"
    assert _parse("status", "-json=false").json == "false"
    assert _parse("add", "-confirm", "tlpub:00").confirm is True
    assert _parse("remove", "-re-sign=false", "tlpub:00").re_sign is False
    args = _parse("node", "register", "-name", "x", "-auth-key", "-")
    assert (args.name, args.auth_key) == ("x", "-")
    assert _parse("-verbose", "status").verbose is True
    assert _parse("status", "-verbose").verbose is True


def test_what_is_not_a_long_option_is_left_alone() -> None:
    parser = build_parser(["log"])
    # A value after an option that takes one, a negative number, a short option, anything
    # after `--`, and a word that is no option of this command.
    argv = ["log", "--state", "-json", "--limit", "-5", "-v", "-frobnicate", "--", "-json"]
    assert go_flags(argv, parser) == argv
    # -json is an option of `log`, but not of `tka` itself (before the command).
    assert go_flags(["-json", "log"], parser) == ["-json", "log"]
    # `tka sign` positionals stay positionals.
    sign = build_parser(["sign"])
    assert go_flags(["sign", "nodekey:00", "-yes"], sign) == ["sign", "nodekey:00", "--yes"]


def test_json_never_takes_the_next_word() -> None:
    args = _parse("key", "show", "--json", "file:/k")
    assert (args.json, args.uri) == ("true", "file:/k")
    args = _parse("key", "show", "-json", "file:/k")
    assert (args.json, args.uri) == ("true", "file:/k")


def test_single_dash_flags_reach_a_real_command(tmp_path: Path, node: tuple[str, str]) -> None:
    state, db = node
    proc = _tka(tmp_path, "status", "-json", "-state", state, "-control=" + db)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Enabled"] is False


# -- $TKA_STATE, $TKA_CONTROL ---------------------------------------------------------------


def test_environment_gives_the_defaults_and_flags_win(
    tmp_path: Path, node: tuple[str, str]
) -> None:
    state, db = node
    ok = _tka(tmp_path, "status", "--json", TKA_STATE=state, TKA_CONTROL=db)
    assert ok.returncode == 0, ok.stderr
    flags_win = _tka(tmp_path, "status", "--json", "--state", state, "--control", db,
                     TKA_STATE=str(tmp_path / "elsewhere"), TKA_CONTROL=str(tmp_path / "x.db"))
    assert flags_win.returncode == 0, flags_win.stderr
    assert flags_win.stdout == ok.stdout
    missing = _tka(tmp_path, "status", TKA_STATE=str(tmp_path / "elsewhere"), TKA_CONTROL=db)
    assert missing.returncode == 1
    assert f"no node state in {tmp_path / 'elsewhere'}" in missing.stderr
    wrong_db = _tka(tmp_path, "status", TKA_STATE=state, TKA_CONTROL=str(tmp_path / "x.db"))
    assert wrong_db.returncode == 1
    assert "no coordination database at" in wrong_db.stderr and "x.db" in wrong_db.stderr


def test_environment_defaults_do_not_clash_with_authority(
    tmp_path: Path, node: tuple[str, str]
) -> None:
    state, db = node
    authority = tmp_path / "authority"
    authority.mkdir()
    proc = _tka(tmp_path, "status", "--authority", str(authority), TKA_STATE=state,
                TKA_CONTROL=db)
    assert "drop --state and --control" not in proc.stderr


def test_help_texts_name_the_environment() -> None:
    top = build_parser(["status"])
    status = signer.cli._subcommands(top)["status"]
    for parser in (top, status):
        help_text = " ".join(parser.format_help().split())
        assert "$TKA_STATE" in help_text and "$TKA_CONTROL" in help_text


# -- -v -------------------------------------------------------------------------------------


def test_verbose_logs_and_quiet_by_default(tmp_path: Path, node: tuple[str, str]) -> None:
    state, db = node
    quiet = _tka(tmp_path, "status", "--state", state, "--control", db)
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = _tka(tmp_path, "status", "--state", state, "--control", db, "-v")
    assert loud.returncode == 0, loud.stderr
    assert loud.stdout == quiet.stdout
    lines = loud.stderr.splitlines()
    assert lines and all(line.startswith("tka -v: ") for line in lines), loud.stderr
    assert f"tka -v: state directory {state} (--state)" in lines
    assert any(f"coordination service {db} (--control)" in line for line in lines)
    assert "tka -v: calling the service: netmap" in lines
    before = _tka(tmp_path, "-v", "status", "--state", state, "--control", db)
    assert before.stderr == loud.stderr


def test_verbose_in_process_is_reset_after_each_run(
    tmp_path: Path, node: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state, db = node
    assert main(["-v", "status", "--state", state, "--control", db]) == 0
    assert "tka -v: " in capsys.readouterr().err
    assert main(["status", "--state", state, "--control", db]) == 0
    assert capsys.readouterr().err == ""


def test_key_uris_are_logged_without_a_pin_value() -> None:
    from signer import verbose

    assert verbose.key_uri("pkcs11:token=t;object=k?pin-value=1234") == (
        "pkcs11:token=t;object=k?pin-value=(hidden)")
    assert verbose.address("https://user:pw@host:8443") == "https://(hidden)@host:8443"


# -- one --json -----------------------------------------------------------------------------


def test_every_json_option_is_the_shared_flag() -> None:
    parser = build_parser()
    found = []

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif "--json" in action.option_strings:
                assert isinstance(action, JsonFlag), path
                found.append(path.strip())

    walk(parser, "")
    for command in ("status", "log", "audit", "key list", "key show", "key generate",
                    "appliance info", "appliance keys", "appliance log", "appliance policy"):
        assert command in found, command


def test_key_show_and_generate_json_carry_their_schema(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    gen = _tka(tmp_path, "key", "generate", "--json", f"file:{key}")
    assert gen.returncode == 0, gen.stderr
    doc = json.loads(gen.stdout)
    assert doc["schema"] == "tka.key/1" and doc["uri"] == f"file:{key}"
    assert doc["public_key"].startswith("tlpub:")
    show = _tka(tmp_path, "key", "show", f"file:{key}", "--json=1")
    assert json.loads(show.stdout) == doc
    plain = _tka(tmp_path, "key", "show", f"file:{key}", "--json=false")
    assert plain.stdout.strip() == doc["public_key"]
    bad = _tka(tmp_path, "key", "show", f"file:{key}", "--json=2")
    assert bad.returncode == 1 and bad.stderr == "tka: unrecognised version: 2\n"


def test_status_and_log_json_carry_schema_version(tmp_path: Path, node: tuple[str, str]) -> None:
    state, db = node
    doc = json.loads(_tka(tmp_path, "status", "--json", "--state", state, "--control", db).stdout)
    assert doc["SchemaVersion"] == "1"


# -- completion -----------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_generated(tmp_path: Path, shell: str) -> None:
    proc = _tka(tmp_path, "completion", shell)
    assert proc.returncode == 0, proc.stderr
    for word in ("status", "revoke-keys", "sign-nodekeys", "--state", "--json"):
        assert word in proc.stdout, (shell, word)
    checker = shutil.which(shell)
    if checker is not None and shell != "fish":
        syntax = subprocess.run([checker, "-n"], input=proc.stdout, capture_output=True,
                                text=True, timeout=60)
        assert syntax.returncode == 0, syntax.stderr


def _bash_complete(script: Path, *words: str) -> list[str]:
    line = " ".join(words)
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE={line!r}\nCOMP_POINT={len(line)}\n"
        f"_shtab_tka\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_subcommands_and_options(tmp_path: Path) -> None:
    script = tmp_path / "tka.bash"
    script.write_text(_tka(tmp_path, "completion", "bash").stdout)
    assert subprocess.run(["bash", "-n", str(script)], timeout=60).returncode == 0
    assert _bash_complete(script, "tka", "sta") == ["status"]
    assert set(_bash_complete(script, "tka", "re")) == {"remove", "revoke-keys"}
    assert _bash_complete(script, "tka", "node", "reg") == ["register"]
    assert _bash_complete(script, "tka", "key", "sign-") == ["sign-nodekeys"]
    assert "--json" in _bash_complete(script, "tka", "status", "--j")
    assert _bash_complete(script, "tka", "completion", "f") == ["fish"]


def test_completion_rejects_an_unknown_shell(tmp_path: Path) -> None:
    proc = _tka(tmp_path, "completion", "tcsh-ish")
    assert proc.returncode == 2
    assert proc.stderr.startswith("tka: argument shell: invalid choice")
