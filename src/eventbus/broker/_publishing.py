"""The publish path: a client's Publish checked, encoded once and fanned out, and the
broker's own ``$SYS`` events likewise; the counters of what went in and out."""

from __future__ import annotations

import time

from .._backend import PublishView, encode_event, encode_pub_ack, route_publish, validate_topic
from ..errors import InvalidTopic, PermissionDenied
from ..protocol import INBOX_PREFIX, code_for
from ..v1 import frames_pb2
from ._routing import Router
from ._session import Session
from ._system import SystemPublisher
from .config import BrokerConfig

__all__ = ["Publishing"]

_Frame = frames_pb2.Frame
_E = frames_pb2.ErrorCode


class Publishing:
    """Routes published events through the subscription table."""

    __slots__ = (
        "_config",
        "_router",
        "_system",
        "messages_dropped",
        "messages_in",
        "messages_out",
    )

    def __init__(self, config: BrokerConfig, router: Router, system: SystemPublisher) -> None:
        self._config = config
        self._router = router
        self._system = system
        self.messages_in = 0
        self.messages_out = 0
        self.messages_dropped = 0

    def publish(self, session: Session, publish: PublishView) -> None:
        """Accept one Publish: ACL, encode once, fan out, answer if asked."""
        grant = session.grant
        assert grant is not None
        counts = route_publish(session, grant.table, self._router.trie, publish)
        if counts is None:
            self.decide(session, publish)
            return
        delivered, dropped = counts
        self.messages_in += 1
        self.messages_out += delivered
        self.messages_dropped += dropped
        request_id = publish.request_id
        if request_id:
            session.send(encode_pub_ack(request_id, delivered, dropped))

    def decide(self, session: Session, publish: PublishView) -> None:
        """A Publish the core's path left to this handler: a denial, an invalid topic, a
        request or an inbox reply."""
        grant = session.grant
        assert grant is not None
        request_id = publish.request_id
        topic = publish.topic
        reply_to = publish.reply_to
        try:
            if not grant.may_publish(topic) and not session.take_reply_grant(topic):
                if topic.startswith(INBOX_PREFIX):
                    raise PermissionDenied(
                        f"principal {grant.principal!r} may not publish to {topic!r}: an inbox "
                        "takes only one reply to a request delivered to the replying connection "
                        f"(rule set {grant.rule_set!r})"
                    )
                grant.check_publish(topic)
            if reply_to:
                self._check_reply_to(session, reply_to)
            sequence = publish.sequence
            data = encode_event(
                topic,
                publish.payload,
                time.time_ns(),
                session.publisher_field,
                publish.correlation,
                reply_to,
                sequence,
                publish.stream_started_ns,
            )
            stream = (session.instance_id, topic) if sequence and session.instance_id else None
            delivered, dropped = self._router.fan_out(topic, data, reply_to, stream)
        except (InvalidTopic, PermissionDenied) as exc:
            if isinstance(exc, PermissionDenied):
                session.denied += 1
            session.send_error(request_id, code_for(exc), str(exc))
            return
        self.messages_in += 1
        self.messages_out += delivered
        self.messages_dropped += dropped
        if request_id:
            if reply_to and not delivered and not dropped:
                session.send_error(
                    request_id, _E.ERROR_CODE_NO_RESPONDERS, f"no subscriber for {topic!r}"
                )
            else:
                session.send(encode_pub_ack(request_id, delivered, dropped))

    def _check_reply_to(self, session: Session, reply_to: str) -> None:
        """A request's reply inbox must be the requester's own, so replies cannot be aimed
        at another connection."""
        validate_topic(
            reply_to,
            max_bytes=self._config.max_topic_bytes,
            max_levels=self._config.max_topic_levels,
        )
        if not reply_to.startswith(session.inbox):
            raise PermissionDenied(
                f"reply_to {reply_to!r} is not inside this connection's own inbox "
                f"{session.inbox + '#'!r}"
            )

    def system(self, topic: str, payload: bytes) -> int:
        """Publish a broker event; returns the connections it was written to."""
        data, stream = self._system.encode(topic, payload)
        delivered, dropped = self._router.fan_out(topic, data, "", stream)
        self.messages_out += delivered
        self.messages_dropped += dropped
        return delivered
