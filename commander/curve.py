"""The optional TCP control endpoint: CURVE encryption plus an allowlist of client public keys.

Never bound without keys: a plain TCP control socket would hand the account to anyone who can
reach the port. Clients not in ``control.allowed_keys`` (a directory of public ``*.key`` files
from ``flatguard keys``) fail the CURVE handshake in the ZAP handler and get nothing at all -- no
error, no banner -- so the client times out (``ctl`` exit 3).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.utils import z85

from trader.kernel import bus
from trader.kernel.bus import STATS
from trader.kernel.errors import FlatguardError

MAX_MSG = (1 << 20) + 4096  # bytes per frame; larger peers are disconnected before they cost memory


class CurveError(FlatguardError, RuntimeError):
    """Keys missing or unreadable. Fatal at start-up: fix the key files or remove control.tcp."""


def generate(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` (mode 0600) into ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    for suffix in (".key", ".key_secret"):
        if (d / f"{name}{suffix}").exists():
            raise CurveError(f"{d / (name + suffix)} exists; choose another --name")
    pub, sec = zmq.auth.create_certificates(d, name)
    os.chmod(sec, 0o600)
    return Path(pub), Path(sec)


def load_secret(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """(public, secret) from a ``.key_secret`` file."""
    try:
        pub, sec = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise CurveError(f"cannot read key pair {path}: {e}") from None
    if not sec:
        raise CurveError(f"{path} holds no secret key; pass the .key_secret file")
    return pub, sec


def load_public(path: str | os.PathLike[str]) -> bytes:
    try:
        pub, _ = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise CurveError(f"cannot read public key {path}: {e}") from None
    return pub


def check_allowlist(directory: str | os.PathLike[str]) -> int:
    d = Path(directory)
    if not d.is_dir():
        raise CurveError(f"control.allowed_keys {d} is not a directory of client public keys")
    n = len(list(d.glob("*.key")))
    if n == 0:
        raise CurveError(f"control.allowed_keys {d} has no *.key files: nobody could connect")
    return n


def key_names(directory: str | os.PathLike[str]) -> dict[bytes, str]:
    """z85 public key -> its name: the ``NAME.key`` file it came from (first name, sorted)."""
    names: dict[bytes, str] = {}
    for f in sorted(Path(directory).glob("*.key")):
        names.setdefault(load_public(f), f.stem)
    return names


def start_authenticator(ctx: zmq.Context[Any], allowed_dir: str) -> Any:
    """ZAP handler in this event loop, accepting only the public keys found in ``allowed_dir``.
    The User-Id it gives an accepted connection is the key's name, which every message from
    that peer then carries (``peer_name``): the identity is the key, never what a client says."""
    from zmq.auth.asyncio import AsyncioAuthenticator

    check_allowlist(allowed_dir)
    names = key_names(allowed_dir)

    class NamedAuthenticator(AsyncioAuthenticator):
        def curve_user_id(self, client_public_key: bytes) -> str:
            z = z85.encode(client_public_key)
            return names.get(z) or z.decode("ascii")  # a key added to the dir after start

    auth = NamedAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(allowed_dir))
    return auth


def peer_name(frame: zmq.Frame) -> str | None:
    """The authenticated name (ZAP User-Id) a received frame carries; None if there is none."""
    try:
        user = frame.get("User-Id")
    except zmq.ZMQError:
        return None
    return user if isinstance(user, str) and user else None


def server_socket_options(sock: zmq.Socket[Any], server_key_file: str) -> None:
    pub, sec = load_secret(server_key_file)
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, pub)
    sock.setsockopt(zmq.CURVE_SECRETKEY, sec)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MSG)


def client_socket_options(sock: zmq.Socket[Any], server_public_file: str,
                          client_secret_file: str) -> None:
    pub, sec = load_secret(client_secret_file)
    sock.setsockopt(zmq.CURVE_SERVERKEY, load_public(server_public_file))
    sock.setsockopt(zmq.CURVE_PUBLICKEY, pub)
    sock.setsockopt(zmq.CURVE_SECRETKEY, sec)


class CurveResponder(bus.Responder):
    """``bus.Responder`` whose ROUTER gets CURVE server options before it binds TCP, and whose
    handler gets ``peer=`` the authenticated key name of each request (a request without one is
    dropped: fail closed). Serving is ``bus.Responder.serve``; only the receive differs."""

    def __init__(self, ctx: Any, endpoint: str, source: str, server_key_file: str) -> None:
        bus._Sequenced.__init__(self, source)
        if not endpoint.startswith("tcp://"):
            raise CurveError(f"control.tcp must be a tcp:// endpoint, got {endpoint!r}")
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
        server_socket_options(self.sock, server_key_file)
        self.sock.bind(endpoint)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)

    copy = False  # the frames' metadata name the authenticated peer

    def _accept(self, parts: list[Any]) -> tuple[bytes, list[bytes], dict[str, Any]] | None:
        if len(parts) < 3:
            STATS.dropped["malformed"] += 1
            return None
        peer = peer_name(parts[1])
        if peer is None:
            STATS.dropped["unauthenticated"] += 1
            return None
        return parts[0].bytes, [p.bytes for p in parts[1:]], {"peer": peer}
