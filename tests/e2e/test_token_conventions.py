"""What people expect of a token-backed signer: the plan before the PIN, the PIN from the
terminal even when stdin carries data, no PIN where only the public key is needed, Ctrl-C at
the prompt exits 130, `module-name=` resolved through p11-kit's registry. The terminal is a
real pseudo-terminal that is the process's controlling terminal."""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

from tailnet_harness import REPO, Tailnet, enable

from signer.backends.pkcs11 import touch_prompt

CLI = [sys.executable, "-m", "signer.cli"]


class Terminal:
    """A process whose controlling terminal (and stderr) is a pty we read and type into."""

    def __init__(self, argv: list[str], env: dict[str, str], stdin: bytes | None = None) -> None:
        self.master, slave = os.openpty()

        def controlling_terminal() -> None:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=env, preexec_fn=controlling_terminal, pass_fds=(slave,),
            stdin=subprocess.PIPE if stdin is not None else slave,
            stdout=subprocess.PIPE if stdin is not None else slave, stderr=slave,
        )
        os.close(slave)
        if stdin is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(stdin)
            self.proc.stdin.close()
        self.seen = b""

    def expect(self, text: str, timeout: float = 60) -> str:
        """Read the terminal until `text` appears; everything seen so far is returned."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"waited {timeout}s for {text!r}; the terminal showed {self.seen!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the process closed the terminal
                    chunk = b""
                assert chunk, f"terminal closed before {text!r}; it showed {self.seen!r}"
                self.seen += chunk
        return self.seen.decode(errors="replace")

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        os.close(self.master)
        return code


def _no_pin_env(softhsm_token: Any, net: Tailnet) -> dict[str, str]:
    env = dict(net.env)
    env.pop("TKA_PKCS11_PIN", None)
    return env


def test_plan_before_pin_then_sign(tailnet: Tailnet, softhsm_token: Any) -> None:
    net = tailnet
    enable(net, softhsm_token.uri(object="admin-lock-key"))
    laptop = net.node_key("laptop")
    env = _no_pin_env(softhsm_token, net)
    term = Terminal([*CLI, "sign", laptop, "--state", str(net.root / "admin"),
                     "--control", net.control], env)
    shown = term.expect("[y/N]")
    assert f"will sign {laptop}" in shown
    assert "PIN" not in shown  # nothing has touched the token's login yet
    term.type("y\n")
    term.expect("PIN for token")
    term.type(softhsm_token.pin + "\n")
    assert term.wait() == 0, term.seen
    assert softhsm_token.pin.encode() not in term.seen  # getpass does not echo it
    assert b"touch" not in term.seen  # SoftHSM keys have no touch policy
    assert laptop in str(net.status("admin")["VisiblePeers"])


def test_ctrl_c_at_the_pin_prompt_exits_130(tailnet: Tailnet, softhsm_token: Any) -> None:
    net = tailnet
    enable(net, softhsm_token.uri(object="admin-lock-key"))
    laptop = net.node_key("laptop")
    before = net.snapshot()
    term = Terminal([*CLI, "sign", "--yes", laptop, "--state", str(net.root / "admin"),
                     "--control", net.control], _no_pin_env(softhsm_token, net))
    term.expect("PIN for token")
    term.type("\x03")  # the terminal turns it into SIGINT for the foreground process group
    assert term.wait() == 130, term.seen
    assert "Traceback" not in term.seen.decode(errors="replace")
    assert net.snapshot() == before


def test_pin_from_the_terminal_while_stdin_carries_keys(
    tailnet: Tailnet, softhsm_token: Any
) -> None:
    net = tailnet
    uri = softhsm_token.uri(object="bulk-key")
    gen = subprocess.run([*CLI, "key", "generate", uri], cwd=REPO, env=net.env,
                         capture_output=True, text=True, timeout=60)
    assert gen.returncode == 0, gen.stderr
    keys = "".join(f"nodekey:{os.urandom(32).hex()}\n" for _ in range(3)).encode()
    term = Terminal([*CLI, "key", "sign-nodekeys", "--key", uri, "--in", "-", "--out", "-",
                     "--unchecked", "--yes"],
                    _no_pin_env(softhsm_token, net), stdin=keys)
    term.expect("PIN for token")
    term.type(softhsm_token.pin + "\n")
    assert term.proc.stdout is not None
    out = term.proc.stdout.read().decode()
    assert term.wait() == 0, term.seen
    assert len(out.split()) == 3  # one signature per key, on stdout, not the terminal


def test_public_key_needs_no_pin(tailnet: Tailnet, softhsm_token: Any, tmp_path: Path) -> None:
    """`key show` and registering a node with a token key read the public key only: no PIN
    is asked for (there is no terminal and no PIN here, so asking would fail)."""
    net = tailnet
    uri = softhsm_token.uri(object="show-me")
    gen = subprocess.run([*CLI, "key", "generate", uri], cwd=REPO, env=net.env,
                         capture_output=True, text=True, timeout=60)
    assert gen.returncode == 0
    env = _no_pin_env(softhsm_token, net)
    for argv in (["key", "show", uri],
                 ["node", "register", "--name", "n1", "--lock-key", uri,
                  "--state", str(tmp_path / "n1"), "--control", net.control]):
        proc = subprocess.run([*CLI, *argv], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=60, start_new_session=True, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, (argv, proc.stderr)
    recorded = json.loads((tmp_path / "n1" / "node.json").read_text())["LockPublic"]
    assert "tlpub:" + recorded == gen.stdout.split()[0]


def test_module_name_through_p11kit(tailnet: Tailnet, softhsm_token: Any, tmp_path: Path) -> None:
    net = tailnet
    uri = softhsm_token.uri(object="named")
    gen = subprocess.run([*CLI, "key", "generate", uri], cwd=REPO, env=net.env,
                         capture_output=True, text=True, timeout=60)
    assert gen.returncode == 0
    env = dict(net.env)
    env.pop("TKA_PKCS11_MODULE")
    # A module registered by the user (p11-kit reads $XDG_CONFIG_HOME/pkcs11/modules first).
    config = tmp_path / "config"
    (config / "pkcs11" / "modules").mkdir(parents=True)
    (config / "pkcs11" / "modules" / "my-hsm.module").write_text(
        f"# our HSM\nmodule: {softhsm_token.module_path}\ncritical: yes\n")
    env["XDG_CONFIG_HOME"] = str(config)
    for name in ("softhsm2", "my-hsm"):  # Debian's softhsm2 package registers itself
        proc = subprocess.run([*CLI, "key", "show", f"{uri}?module-name={name}"], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[0] == gen.stdout.split()[0]
    for name, message in (("absent-hsm", "no PKCS#11 module named 'absent-hsm'"),
                          ("..%2Fx", "not a path")):
        proc = subprocess.run([*CLI, "key", "show", f"{uri}?module-name={name}"], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr


def test_touch_prompt_follows_ykcs11_policy() -> None:
    """ykcs11 reports the PIV touch policy in a vendor attribute (0 default, 1 never, 2 always,
    3 cached); SoftHSM has none, so the values are checked here and the absence on SoftHSM by
    every signing test above (no touch line)."""
    assert touch_prompt(None, "yk") is None
    assert touch_prompt(0, "yk") is None and touch_prompt(1, "yk") is None
    always = touch_prompt(2, "yk")
    assert always is not None and "touch" in always and "'yk'" in always
    cached = touch_prompt(3, "yk")
    assert cached is not None and "cached" in cached


def test_bulk_signing_plans_once_checks_trust_and_shows_rate(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net = tailnet
    hsm = softhsm_token.uri(object="admin-lock-key")
    enable(net, hsm)
    keys = [f"nodekey:{os.urandom(32).hex()}" for _ in range(300)]
    listing = tmp_path / "keys.txt"
    listing.write_text("\n".join(keys) + "\n")
    authority = str(net.root / "admin" / "tka")
    base = [*CLI, "key", "sign-nodekeys", "--in", str(listing), "--out", "-"]

    # Without an authority to check trust against, nothing is signed (nor asked for).
    proc = subprocess.run([*base, "--key", hsm, "--yes"], cwd=REPO, env=net.env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "--authority DIR" in proc.stderr and not proc.stdout
    # An untrusted key is refused before its token is asked to sign.
    untrusted = softhsm_token.uri(object="stranger")
    assert subprocess.run([*CLI, "key", "generate", untrusted], cwd=REPO, env=net.env,
                          capture_output=True, timeout=60).returncode == 0
    proc = subprocess.run([*base, "--key", untrusted, "--authority", authority, "--yes"],
                          cwd=REPO, env=net.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "is not trusted by the authority" in proc.stderr

    # On a terminal: one plan (count, first and last key, signer, head), one question, then
    # progress with a rate; the PIN is asked for after the answer.
    out = tmp_path / "signed.txt"
    term = Terminal([*base[:-1], str(out), "--key", hsm, "--authority", authority],
                    _no_pin_env(softhsm_token, net), stdin=None)
    shown = term.expect("[y/N]")
    assert "will sign 300 node key(s) with tlpub:" in shown
    assert f"first: {keys[0]}" in shown and f"last:  {keys[-1]}" in shown
    assert "trusted by the authority at head" in shown and "PIN" not in shown
    term.type("y\n")
    term.expect("PIN for token")
    term.type(softhsm_token.pin + "\n")
    done = term.expect("signed 300/300 node keys, ")
    assert "/s" in done.split("signed 300/300 node keys, ", 1)[1]
    assert term.wait() == 0
    assert len(out.read_text().split()) == 300
