"""Payloads on the command line: text, files or JSON in; known protobuf types out as JSON."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from .. import topics
from ..client import Envelope
from ._exit import Failure

__all__ = ["envelope_json", "payload_text", "payload_value", "read_payload"]


def read_payload(topic: str, data: str | None, file: str | None, as_json: bool) -> bytes:
    """The bytes to publish: ``data`` (``-``: standard input) or the contents of ``file``.

    With ``as_json`` the text is JSON for the topic's registered payload type, encoded as
    that protobuf message.
    """
    if data is not None and file is not None:
        raise Failure("give the payload as DATA or --file, not both")
    if file is not None:
        try:
            with open(file, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise Failure(f"cannot read --file {file!r}: {exc.strerror or exc}") from None
    elif data == "-":
        raw = sys.stdin.buffer.read()
    else:
        raw = (data or "").encode()
    if not as_json:
        return raw
    message_type = topics.payload_type(topic)
    if message_type is None:
        raise Failure(f"--json: topic {topic!r} has no registered payload type to encode")
    try:
        return json_format.Parse(raw.decode(), message_type()).SerializeToString()
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        name = message_type.DESCRIPTOR.full_name
        raise Failure(f"--json: the payload is not JSON for {name}: {exc}") from None


def _decoded(topic: str, payload: bytes) -> Message | None:
    message_type = topics.payload_type(topic)
    if message_type is None:
        return None
    message = message_type()
    try:
        message.ParseFromString(payload)
    except DecodeError:
        return None
    return message


def payload_value(topic: str, payload: bytes) -> tuple[str, Any]:
    """``(kind, value)``: ``("message", dict)`` for a known type, ``("text", str)`` for
    UTF-8 text, else ``("base64", str)``."""
    message = _decoded(topic, payload)
    if message is not None:
        return "message", json_format.MessageToDict(message)
    try:
        return "text", payload.decode()
    except UnicodeDecodeError:
        return "base64", base64.b64encode(payload).decode()


def payload_text(topic: str, payload: bytes) -> str:
    """One line for a human: JSON of a known type, else the text, else its base64."""

    kind, value = payload_value(topic, payload)
    if kind == "message":
        return json.dumps(value, separators=(",", ":"))
    if kind == "base64":
        return f"base64:{value}"
    return str(value).replace("\n", "\\n")


def envelope_json(envelope: Envelope) -> dict[str, Any]:
    """An event as one JSON object (``eventbus sub --json``)."""
    kind, value = payload_value(envelope.topic, envelope.payload)
    result: dict[str, Any] = {
        "topic": envelope.topic,
        "timestamp_ns": envelope.timestamp_ns,
        "publisher": json_format.MessageToDict(envelope.publisher),
    }
    message_type = topics.payload_type(envelope.topic)
    if kind == "message" and message_type is not None:
        result["payload_type"] = message_type.DESCRIPTOR.full_name
    result["payload" if kind != "base64" else "payload_base64"] = value
    if envelope.correlation is not None:
        result["correlation"] = json_format.MessageToDict(envelope.correlation)
    if envelope.reply_to:
        result["reply_to"] = envelope.reply_to
    return result
