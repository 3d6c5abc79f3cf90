"""Admission: the Hello a new connection must send, who it may be, and the Welcome.

Every refusal is a :class:`Refused` carrying the code and message of the ``Error`` frame the
peer gets before the broker closes the connection.
"""

from __future__ import annotations

import asyncio
import logging

from google.protobuf.message import DecodeError

from ..acl import Grant, Policy
from ..errors import ConnectionLost, PermissionDenied, QuotaExceeded
from ..framestream import FrameStream
from ..protocol import PROTOCOL_VERSION, encode_frame
from ..v1 import frames_pb2
from ._quotas import Quotas
from ._session import Session

__all__ = ["Refused", "admit", "read_hello", "welcome_frame"]

log = logging.getLogger("eventbus.broker")
_E = frames_pb2.ErrorCode


class Refused(Exception):
    """A connection is not admitted; ``code`` 0 means there is nobody left to tell."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def read_hello(stream: FrameStream, timeout: float) -> tuple[frames_pb2.Hello, list[bytes]]:
    """The client's Hello and the frame bodies that came with it, within ``timeout``."""
    try:
        bodies = await asyncio.wait_for(stream.first(), timeout)
    except asyncio.TimeoutError:
        raise Refused(_E.ERROR_CODE_HELLO_TIMEOUT, f"no Hello within {timeout:g} s") from None
    except ConnectionLost:
        raise Refused(0, "closed before Hello") from None
    try:
        frame = frames_pb2.Frame.FromString(bodies[0])
    except DecodeError as exc:
        message = f"frame of {len(bodies[0])} bytes does not parse: {exc}"
        raise Refused(_E.ERROR_CODE_PROTOCOL, message) from None
    kind = frame.WhichOneof("body")
    if kind != "hello":
        raise Refused(_E.ERROR_CODE_PROTOCOL, f"the first frame must be Hello, not {kind}")
    hello = frame.hello
    if hello.protocol_version != PROTOCOL_VERSION:
        message = (
            f"protocol version {hello.protocol_version} is not supported "
            f"(this broker speaks {PROTOCOL_VERSION})"
        )
        raise Refused(_E.ERROR_CODE_UNSUPPORTED_VERSION, message)
    return hello, bodies[1:]


def admit(
    session: Session,
    hello: frames_pb2.Hello,
    policy: Policy,
    quotas: Quotas,
    *,
    max_topic_bytes: int,
    max_topic_levels: int,
) -> Grant:
    """Grant ``hello.principal`` to the peer if the policy binds it to the peer's verified
    credentials and its uid is within its connection quota."""
    peer = session.peer
    if not session.conn.peer_alive():  # its pid may name another process by now
        message = f"peer process {peer.pid} is gone or was replaced since it connected"
        log.warning("refused pid=%s uid=%s as %r: %s", peer.pid, peer.uid, hello.principal, message)
        raise Refused(_E.ERROR_CODE_UNAUTHENTICATED, message)
    try:
        grant = policy.authenticate(
            hello.principal, peer, max_bytes=max_topic_bytes, max_levels=max_topic_levels
        )
    except PermissionDenied as exc:
        log.warning(
            "refused pid=%s uid=%s exe=%s as %r: %s",
            peer.pid,
            peer.uid,
            peer.exe,
            hello.principal,
            exc,
        )
        raise Refused(_E.ERROR_CODE_UNAUTHENTICATED, str(exc)) from None
    try:
        quotas.admit(session)
    except QuotaExceeded as exc:
        raise Refused(_E.ERROR_CODE_QUOTA_EXCEEDED, str(exc)) from None
    session.authenticate(grant, hello.client_name, hello.instance_id)
    log.info(
        "connection %d: pid=%s uid=%s gid=%s exe=%s unit=%s admitted as %r (%s)",
        session.connection_id,
        peer.pid,
        peer.uid,
        peer.gid,
        peer.exe,
        peer.unit,
        grant.principal,
        hello.client_name or "unnamed",
    )
    return grant


def welcome_frame(
    session: Session, grant: Grant, limits: frames_pb2.Limits, broker_name: str
) -> bytes:
    """What the admitted peer is told: its identity, its rights and the broker's limits."""
    welcome = frames_pb2.Welcome(
        protocol_version=PROTOCOL_VERSION,
        connection_id=session.connection_id,
        identity=session.identity,
        rights=frames_pb2.Rights(
            publish=grant.publish,
            subscribe=grant.subscribe,
            admin=grant.admin,
            rule_set=grant.rule_set,
        ),
        limits=limits,
        broker_name=broker_name,
    )
    return encode_frame(frames_pb2.Frame(welcome=welcome))
