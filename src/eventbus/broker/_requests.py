"""Answers to the control frames a client sends: subscribe, unsubscribe, ping, list, kick.

Each answer is queued on the asking connection: the frame it asked for, or an ``Error``
echoing its request id. None of them ends the connection.
"""

from __future__ import annotations

from collections.abc import Callable

from .._backend import filter_covers, validate_filter
from ..errors import InvalidTopic, PermissionDenied, QuotaExceeded
from ..protocol import INBOX_PREFIX, code_for, encode_frame
from ..v1 import frames_pb2
from ._quotas import Quotas
from ._routing import Router
from ._session import Session
from .config import BrokerConfig

__all__ = ["Requests"]

_Frame = frames_pb2.Frame
_E = frames_pb2.ErrorCode


class Requests:
    """The broker's handlers of control frames."""

    __slots__ = ("_config", "_disconnect", "_quotas", "_router", "_sessions")

    def __init__(
        self,
        config: BrokerConfig,
        router: Router,
        quotas: Quotas,
        sessions: dict[int, Session],
        disconnect: Callable[[Session, int, str], None],
    ) -> None:
        self._config = config
        self._router = router
        self._quotas = quotas
        self._sessions = sessions
        # Closes a connection with an Error frame of that code as its last words.
        self._disconnect = disconnect

    def subscribe(self, session: Session, subscribe: frames_pb2.Subscribe) -> None:
        request_id = subscribe.request_id
        topic_filter = subscribe.filter
        grant = session.grant
        assert grant is not None
        try:
            validate_filter(
                topic_filter,
                max_bytes=self._config.max_topic_bytes,
                max_levels=self._config.max_topic_levels,
            )
            if topic_filter.startswith(INBOX_PREFIX):
                own = f"{session.inbox}#"
                if not filter_covers(own, topic_filter):
                    raise PermissionDenied(
                        f"{topic_filter!r} is not inside this connection's own inbox {own!r}"
                    )
            else:
                grant.check_subscribe(topic_filter)
        except (InvalidTopic, PermissionDenied) as exc:
            if isinstance(exc, PermissionDenied):
                session.denied += 1
            session.send_error(request_id, code_for(exc), str(exc))
            return
        if request_id in session.subscriptions:
            session.send_error(
                request_id,
                _E.ERROR_CODE_PROTOCOL,
                f"subscription id {request_id} is already in use",
            )
            return
        try:
            self._quotas.subscribe(session)
        except QuotaExceeded as exc:
            session.send_error(request_id, _E.ERROR_CODE_QUOTA_EXCEEDED, str(exc))
            return
        # The request id names the subscription: unique per connection, known to both sides.
        self._router.subscribe(session, request_id, topic_filter, subscribe.group)
        ack = frames_pb2.SubAck(request_id=request_id, subscription_id=request_id)
        session.send(encode_frame(_Frame(sub_ack=ack)))

    def unsubscribe(self, session: Session, unsubscribe: frames_pb2.Unsubscribe) -> None:
        if self._router.unsubscribe(session, unsubscribe.subscription_id):
            self._quotas.unsubscribe(session)
            ack = frames_pb2.UnsubAck(request_id=unsubscribe.request_id)
            session.send(encode_frame(_Frame(unsub_ack=ack)))
        else:
            session.send_error(
                unsubscribe.request_id,
                _E.ERROR_CODE_NOT_FOUND,
                f"no subscription {unsubscribe.subscription_id} on this connection",
            )

    def ping(self, session: Session, ping: frames_pb2.Ping) -> None:
        session.send(encode_frame(_Frame(pong=frames_pb2.Pong(nonce=ping.nonce))))

    def list_clients(self, session: Session, request: frames_pb2.ListRequest) -> None:
        grant = session.grant
        assert grant is not None
        if request.all_clients:
            try:
                grant.check_admin("list all clients")
            except PermissionDenied as exc:
                session.denied += 1
                session.send_error(request.request_id, code_for(exc), str(exc))
                return
            sessions = list(self._sessions.values())
        else:
            sessions = [session]
        reply = frames_pb2.ListReply(
            request_id=request.request_id, clients=[s.info() for s in sessions]
        )
        session.send(encode_frame(_Frame(list_reply=reply)))

    def kick(self, session: Session, kick: frames_pb2.Kick) -> None:
        """An admin disconnects a connection: the caller is answered first, then the target
        gets ``Error(KICKED)`` naming the caller, and is closed."""
        grant = session.grant
        assert grant is not None
        try:
            grant.check_admin("disconnect a client")
        except PermissionDenied as exc:
            session.denied += 1
            session.send_error(kick.request_id, code_for(exc), str(exc))
            return
        target = self._sessions.get(kick.connection_id)
        if target is None or target.closed:
            session.send_error(
                kick.request_id,
                _E.ERROR_CODE_NOT_FOUND,
                f"no connection {kick.connection_id} on this broker",
            )
            return
        reply = frames_pb2.KickReply(request_id=kick.request_id, client=target.info())
        session.send(encode_frame(_Frame(kick_reply=reply)))
        message = (
            f"kicked by principal {grant.principal!r} (connection {session.connection_id}, "
            f"pid {session.peer.pid})"
        )
        if kick.reason:
            message += f": {kick.reason}"
        self._disconnect(target, _E.ERROR_CODE_KICKED, message)
