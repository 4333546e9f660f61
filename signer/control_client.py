"""The client side of the coordination protocol (docs/control.md): one method per message, over a
transport that either calls the embedded service in-process or speaks HTTP(S). Both carry the
same JSON messages, so callers never know which one they use.

Every request but `register`'s first attempt carries the node's credential beside the message:
the `Authorization: Bearer` header over HTTP, an argument in-process (docs/control.md). Over
https the server's certificate is verified against the CA file pinned in the node's state
(`tka node register --control-ca FILE`), else `$TKA_CONTROL_CA`, else the system's store; the
host name is always checked and there is no way to turn verification off.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from signer import verbose
from verifier.errors import ControlError

if TYPE_CHECKING:
    import ssl

Message = dict[str, Any]
MAX_RESPONSE = 10 * 1024 * 1024
CA_ENV = "TKA_CONTROL_CA"


class ControlUnreachable(ControlError):
    """The request may not have reached the service, or its reply was lost: unlike a refusal,
    the service may have acted on it."""


class ControlBusy(ControlError):
    """The service refused for now (HTTP 503: its database or its connection slots are
    taken); the request was not carried out, so sending it again is safe."""


# Waits between tries when the service is busy: about a minute in all, jittered so that
# writers who collided do not collide again.
BUSY_BACKOFF = (0.1, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


class Transport(Protocol):
    def call(self, endpoint: str, request: Message, credential: str | None = None) -> Message: ...

    def close(self) -> None: ...


class InProcessTransport:
    """The embedded service in a SQLite file; requests round-trip through JSON as over HTTP."""

    def __init__(self, db_path: str, *, create: bool = True) -> None:
        from control.service import ControlService  # the one place signer reaches control

        self.db_path = Path(db_path)
        self._service = ControlService(db_path, create=create)

    def call(self, endpoint: str, request: Message, credential: str | None = None) -> Message:
        return self._call(endpoint, request, credential, owner=False)

    def call_as_owner(self, endpoint: str, request: Message, credential: str | None) -> Message:
        """`register` for the database's owner: the service mints and redeems an enrolment key
        in the same transaction when the request brings none. Whoever can write the file is its
        admin (they could edit its rows); this refuses anyone else."""
        if not os.access(self.db_path, os.W_OK):
            raise ControlError(
                f"cannot write {self.db_path}: only its owner enrols nodes without an "
                "enrolment key (pass --auth-key)"
            )
        return self._call(endpoint, request, credential, owner=True)

    def _call(
        self, endpoint: str, request: Message, credential: str | None, owner: bool
    ) -> Message:
        wire = json.loads(json.dumps(request))
        try:
            response = self._service.handle(endpoint, wire, credential, owner_enrolment=owner)
        except ControlError as err:
            if getattr(err, "status", None) == 503:
                raise ControlBusy(str(err)) from None
            raise
        result: Message = json.loads(json.dumps(response))
        return result

    def close(self) -> None:
        self._service.close()


class HttpTransport:
    def __init__(self, url: str, timeout: float = 60.0, ca_file: str | Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.ca_file = None if ca_file is None else Path(ca_file)
        self._context: ssl.SSLContext | None = None

    def pin_ca(self, ca_file: Path | None) -> None:
        """Verify the server against this CA file (the node's pinned one) from now on."""
        if ca_file is not None:
            self.ca_file = ca_file
            self._context = None

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https://"):
            return None
        import ssl  # only for a service reached over https (start-up time)

        if self._context is None:
            cafile = self.ca_file or (Path(os.environ[CA_ENV]) if os.environ.get(CA_ENV) else None)
            try:
                self._context = ssl.create_default_context(
                    cafile=None if cafile is None else str(cafile)
                )
            except (OSError, ssl.SSLError) as err:
                reason = getattr(err, "strerror", None) or str(err)
                raise ControlError(f"cannot load the control CA {cafile}: {reason}") from None
            self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        return self._context

    def call(self, endpoint: str, request: Message, credential: str | None = None) -> Message:
        # Loaded here, not at start-up: most commands never talk HTTP (issue 14 item 4).
        import http.client
        import urllib.error
        import urllib.request

        from signer.echo import clip_input

        body = json.dumps(request).encode()
        headers = {"Content-Type": "application/json"}
        if credential is not None:
            headers["Authorization"] = f"Bearer {credential}"
        context = self._ssl_context()
        try:
            req = urllib.request.Request(  # noqa: S310 - the URL is the configured service
                f"{self.url}/machine/{endpoint}", data=body, method="POST", headers=headers
            )
            with urllib.request.urlopen(  # noqa: S310
                req, timeout=self.timeout, context=context
            ) as resp:
                data = resp.read(MAX_RESPONSE + 1)
        except urllib.error.HTTPError as err:
            detail = err.read(1024 * 1024).decode("utf-8", "replace")
            try:
                detail = str(json.loads(detail))
            except ValueError:
                detail = detail.strip()[:300] or f"HTTP {err.code}"
            kind = ControlBusy if err.code == 503 else ControlError
            raise kind(" ".join(detail.split())) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as err:
            reason = getattr(err, "reason", None) or err
            raise ControlUnreachable(
                f"cannot reach the coordination service at {clip_input(self.url)}: {reason}"
            ) from None
        if len(data) > MAX_RESPONSE:
            raise ControlError("the coordination service sent an oversized response")
        try:
            result = json.loads(data)
        except (ValueError, RecursionError):
            raise ControlError("the coordination service sent a malformed response") from None
        if not isinstance(result, dict):
            raise ControlError("the coordination service sent a malformed response")
        return result

    def close(self) -> None:
        pass


def open_transport(control: str, *, create: bool = True) -> Transport:
    """`http://…`/`https://…` → HTTP; anything else is the embedded service's database file."""
    if control.startswith(("http://", "https://")):
        return HttpTransport(control)
    return InProcessTransport(control, create=create)


class ControlClient:
    """Calls made by a node identified by its node key (text form) and its credential."""

    def __init__(
        self, transport: Transport, node_key: str | None = None, credential: str | None = None
    ) -> None:
        self.transport = transport
        self.node_key = node_key
        self.credential = credential

    def bind(self, credential: str, ca_file: Path | None = None) -> None:
        """Carry this credential from now on (and verify https against `ca_file`)."""
        self.credential = credential
        if isinstance(self.transport, HttpTransport):
            self.transport.pin_ca(ca_file)

    def _call(self, endpoint: str, **fields: Any) -> Message:
        # The endpoint only: fields can hold a disablement secret, and never the credential.
        verbose.log("calling the service: %s", endpoint)
        request = {"NodeKey": self.node_key, **fields}
        return _retry_busy(lambda: self.transport.call(endpoint, request, self.credential))

    def register(
        self,
        name: str,
        nl_key: str | None,
        node_key_signature: str | None = None,
        auth_key: str | None = None,
        *,
        as_owner: bool = False,
    ) -> Message:
        request: Message = {
            "NodeKey": self.node_key,
            "Name": name,
            "NLKey": nl_key,
            "NodeKeySignature": node_key_signature,
        }
        if auth_key is not None:
            request["Auth"] = {"AuthKey": auth_key}
        verbose.log("calling the service: register %s (%s)", name,
                    "with an auth key" if auth_key is not None else "without an auth key")
        transport = self.transport
        if as_owner and isinstance(transport, InProcessTransport):
            owner = transport
            return _retry_busy(lambda: owner.call_as_owner("register", request, self.credential))
        return _retry_busy(lambda: transport.call("register", request, self.credential))

    def netmap(self) -> Message:
        return self._call("netmap")

    def init_begin(self, genesis_b64: str) -> Message:
        return self._call("tka/init/begin", GenesisAUM=genesis_b64)

    def init_finish(self, signatures: dict[str, str], support_b64: str | None) -> Message:
        fields: Message = {"Signatures": signatures}
        if support_b64:
            fields["SupportDisablement"] = support_b64
        return self._call("tka/init/finish", **fields)

    def bootstrap(self, head: str) -> Message:
        return self._call("tka/bootstrap", Head=head)

    def sync_offer(self, head: str, ancestors: list[str]) -> Message:
        return self._call("tka/sync/offer", Head=head, Ancestors=ancestors)

    def sync_send(self, head: str, missing_b64: list[str], interactive: bool) -> Message:
        return self._call(
            "tka/sync/send", Head=head, MissingAUMs=missing_b64, Interactive=interactive
        )

    def disable(self, head: str, secret_b64: str) -> Message:
        return self._call("tka/disable", Head=head, DisablementSecret=secret_b64)

    def submit_signature(self, nks_b64: str) -> Message:
        return self._call("tka/sign", Signature=nks_b64)

    def affected_signatures(self, key_id_b64: str) -> Message:
        return self._call("tka/affected-sigs", KeyID=key_id_b64)


def _retry_busy(send: Callable[[], Message]) -> Message:
    """`send()`, again after a jittered pause each time the service says it is busy."""
    for pause in BUSY_BACKOFF:
        try:
            return send()
        except ControlBusy:
            import random

            time.sleep(pause * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not a secret
    return send()
