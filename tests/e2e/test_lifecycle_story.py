"""The user stories of tailnet lock, end to end: `tka` as a subprocess, a SoftHSM-backed signing
key, several nodes with their own state directories, the embedded coordination service in a real
SQLite file (and once over real HTTP on loopback)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tailnet_harness import Tailnet, create_auth_key, enable, secret_file

from control.http import serve


def test_enable_sign_enrol_add_remove_log(tailnet: Tailnet, softhsm_token: object) -> None:
    net = tailnet
    hsm_uri = softhsm_token.uri(object="admin-lock-key")  # type: ignore[attr-defined]
    secrets = enable(net, hsm_uri)
    assert len(set(secrets)) == 3
    for node in ("admin", "laptop"):
        st = net.status(node)
        assert st["Enabled"] is True and st["NodeKeySigned"] is True
    assert [k["Public"] for k in net.status("admin")["TrustedKeys"]] == [  # type: ignore[index]
        net.lock_public("admin")
    ]

    # A new node is locked out; status says which command lets it in.
    net.ok("phone", "node", "register", "--name", "phone")
    phone_key = net.node_key("phone")
    human = net.ok("admin", "status")
    assert "The following nodes are locked out by tailnet lock" in human
    assert phone_key in human
    assert f"\ttka sign {phone_key} {net.lock_public('phone')}" in human
    assert net.status("phone")["NodeKeySigned"] is False
    phone_human = net.ok("phone", "status")
    assert f"\ttka sign {phone_key} {net.lock_public('phone')}" in phone_human

    # Signing with the HSM key lets it in.
    refused = net.fails("admin", "sign", phone_key, code=2)  # no terminal, no --yes
    assert "without confirmation" in refused
    net.ok("admin", "sign", "--yes", phone_key, net.lock_public("phone"))
    assert net.status("phone")["NodeKeySigned"] is True
    assert phone_key not in net.ok("admin", "status")

    # The laptop (file key, not trusted) cannot sign.
    net.ok("tablet", "node", "register", "--name", "tablet")
    err = net.fails("laptop", "sign", net.node_key("tablet"))
    assert "does not have a trusted tailnet lock key" in err

    # A pre-signed auth key enrols a node with no further signing.
    # The service's admin makes the enrolment key; a trusted key pre-approves it.
    plain = create_auth_key(Path(net.control))
    stable_id = plain.split("-")[2]
    wrapped = net.ok("admin", "sign", "--yes", secret_file(net.root / "plain.key", plain)).strip()
    assert wrapped.startswith(plain + "--TL")
    net.ok("server", "node", "register", "--name", "server", "--auth-key", "-", stdin=wrapped)
    assert net.status("server")["NodeKeySigned"] is True
    keys = net.status("admin")["TrustedKeys"]
    assert any(k.get("Meta", {}).get("authkey_stableid") == stable_id for k in keys)  # type: ignore[union-attr,attr-defined]
    # The enrolment key is single-use: the pre-approval does not let a second node in.
    assert "already been used" in net.fails(
        "rogue", "node", "register", "--name", "rogue", "--auth-key", "-", stdin=wrapped
    )

    # Add the laptop's key, then remove the admin key with re-signing done from the laptop.
    net.ok("admin", "add", "--yes", net.lock_public("laptop"))
    net.ok("admin", "sign", "--yes", net.node_key("tablet"))
    net.ok("laptop", "remove", "--yes", net.lock_public("admin"))
    trusted = [k["Public"] for k in net.status("laptop")["TrustedKeys"]]  # type: ignore[index]
    assert net.lock_public("admin") not in trusted
    for node in ("admin", "laptop", "phone", "tablet"):
        assert net.status(node)["NodeKeySigned"] is True, node

    # `log` shows every change, newest first.
    log = json.loads(net.ok("phone", "log", "--json"))
    kinds = [m["AUM"]["MessageKind"] for m in log["Messages"]]
    assert kinds == ["remove-key", "add-key", "add-key", "checkpoint"]
    human_log = net.ok("phone", "log", "--limit", "2")
    assert human_log.count("update ") == 2 and "(remove-key)" in human_log


def test_revoke_a_compromised_key_with_two_cosigners(
    tailnet: Tailnet, softhsm_token: object
) -> None:
    net = tailnet
    hsm_uri = softhsm_token.uri(object="admin-lock-key")  # type: ignore[attr-defined]
    enable(net, hsm_uri)
    net.ok("ops", "node", "register", "--name", "ops")
    net.ok("rogue", "node", "register", "--name", "rogue")
    for node in ("ops", "rogue"):
        net.ok("admin", "sign", "--yes", net.node_key(node))
    net.ok("admin", "add", "--yes", net.lock_public("laptop"), net.lock_public("ops"))
    net.ok("admin", "add", "--yes", net.lock_public("rogue"))
    # The rogue key signs in an attacker's node.
    net.ok("attacker", "node", "register", "--name", "attacker")
    net.ok("rogue", "sign", "--yes", net.node_key("attacker"))
    assert net.status("attacker")["NodeKeySigned"] is True

    out = net.ok("admin", "revoke-keys", net.lock_public("rogue"))
    blob = re.search(r"revoke-keys --cosign ([0-9A-F]+)$", out, re.M)
    assert blob is not None
    cosigned = net.ok("laptop", "revoke-keys", "--cosign", "--yes", blob.group(1))
    assert "Co-signing completed successfully." in cosigned
    blob2 = re.search(r"revoke-keys --cosign ([0-9A-F]+)$", cosigned, re.M)
    assert blob2 is not None
    err = net.fails("laptop", "revoke-keys", "--cosign", "--yes", blob2.group(1))
    assert "already signed this recovery AUM" in err
    done = net.ok("ops", "revoke-keys", "--cosign", "--finish", "--yes", blob2.group(1))
    assert "Recovery completed." in done
    for node in ("admin", "laptop", "ops"):
        trusted = [k["Public"] for k in net.status(node)["TrustedKeys"]]  # type: ignore[index]
        assert net.lock_public("rogue") not in trusted, node
    assert net.status("attacker")["NodeKeySigned"] is False


def test_disable_wrong_then_right_secret_and_local_disable(
    tailnet: Tailnet, softhsm_token: object
) -> None:
    net = tailnet
    hsm_uri = softhsm_token.uri(object="admin-lock-key")  # type: ignore[attr-defined]
    secrets = enable(net, hsm_uri)
    net.ok("phone", "node", "register", "--name", "phone")
    net.status("phone")  # syncs: the phone now enforces lock

    # local-disable affects only that node.
    net.ok("phone", "local-disable", "--yes")
    assert net.status("phone")["Enabled"] is False
    assert net.status("laptop")["Enabled"] is True
    assert not (net.root / "phone" / "tka").exists()

    wrong = "disablement-secret:" + "AB" * 32
    assert net.fails("laptop", "disable", "--yes", wrong) == "tka: incorrect disablement secret"
    net.fails("laptop", "disable", "--yes", "disablement-secret:XYZ", code=2)
    net.ok("laptop", "disable", "--yes", stdin="disablement-secret:" + secrets[1] + "\n")
    for node in ("admin", "laptop", "phone"):
        assert net.status(node)["Enabled"] is False, node
        assert not (net.root / node / "tka").exists()


def test_bad_input_is_one_line_and_changes_nothing(tailnet: Tailnet, softhsm_token: object) -> None:
    net = tailnet
    hsm_uri = softhsm_token.uri(object="admin-lock-key")  # type: ignore[attr-defined]
    net.ok("early", "node", "register", "--name", "early")
    assert "not enabled" in net.fails("early", "add", "--yes", net.lock_public("early"))
    enable(net, hsm_uri)
    assert "already enabled" in net.fails(
        "admin", "init", "--confirm", net.lock_public("admin")
    )
    net.fails("admin", "sign", "nodekey:1234", code=2)
    net.fails("admin", "sign", "nodekey:" + "00" * 32, "tlpub:zz", code=2)
    net.fails("admin", "add", "--yes", "tlpub:" + "11" * 31, code=2)
    net.fails("admin", "revoke-keys", "--cosign", "NOTHEX", code=1)
    assert "not a recovery AUM" in net.fails("admin", "revoke-keys", "--cosign", "--yes", "A0")
    err = net.fails("admin", "sign", "--yes", "nodekey:" + "42" * 32)
    assert "no node with key" in err
    assert "no node state" in net.fails("ghost", "status")
    unreachable = Tailnet(net.root, "http://127.0.0.1:9", net.env)
    assert "cannot reach the coordination service" in unreachable.fails("admin", "status")
    # Corrupt local storage is reported, never repaired or extended.
    victim = next(p for p in (net.root / "admin" / "tka").rglob("*") if p.is_file()
                  and len(p.name) == 52)
    victim.write_bytes(victim.read_bytes()[:-3])
    assert "corrupt AUM file" in net.fails("admin", "status")
    assert "corrupt AUM file" in net.fails("admin", "sign", "--yes", net.node_key("laptop"))
    assert net.fails("admin", "disablement-kdf", "zz", code=2)


def test_the_same_story_over_http(tmp_path: Path, softhsm_token: object) -> None:
    server = serve(tmp_path / "control.db")
    try:
        env = softhsm_token.env()  # type: ignore[attr-defined]
        env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
        net = Tailnet(tmp_path, server.url, env)
        db = tmp_path / "control.db"
        # Over the network nobody is the database's owner: registration needs enrolment keys.
        assert "needs an enrolment key" in net.fails(
            "phone", "node", "register", "--name", "phone"
        )
        lock_admin = secret_file(tmp_path / "admin.key", create_auth_key(db, "--tailnet-lock"))
        members = secret_file(tmp_path / "members.key", create_auth_key(db, "--reusable"))
        enable(net, softhsm_token.uri(object="admin-lock-key"),  # type: ignore[attr-defined]
               admin_auth=lock_admin, auth=members)
        net.ok("phone", "node", "register", "--name", "phone", "--auth-key", members)
        net.ok("admin", "sign", "--yes", net.node_key("phone"))
        assert net.status("phone")["NodeKeySigned"] is True
    finally:
        server.shutdown()
    assert os.path.exists(tmp_path / "control.db")
