"""``eventbus request TOPIC [DATA|-]``: send a request, print the first reply."""

from __future__ import annotations

import argparse
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from .. import topics
from ..v1 import payloads_pb2
from ._connect import add_client_arguments, open_client, run_command
from ._payloads import envelope_json, payload_text, read_payload

# Replies go to an inbox, which has no payload type of its own: the request topic says.
_REPLY_TYPES = {topics.HEALTH_DIAGNOSTICS: payloads_pb2.DiagnosticsReply}


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "request",
        help="send a request and print the reply",
        description="Publish DATA on TOPIC with a reply inbox and print the first reply. "
        "Exits 4 when nobody subscribes to TOPIC or no reply comes within --timeout.",
    )
    parser.add_argument("topic", metavar="TOPIC")
    parser.add_argument("data", metavar="DATA", nargs="?", help="the payload text; - reads stdin")
    parser.add_argument("--file", help="read the payload from this file")
    parser.add_argument(
        "--json",
        action="store_true",
        help="DATA is JSON for TOPIC's payload type, and the reply is printed as JSON",
    )
    add_client_arguments(parser)
    parser.set_defaults(func=lambda args: run_command(args, _request))


async def _request(args: argparse.Namespace) -> None:
    payload = read_payload(args.topic, args.data, args.file, args.json)
    async with await open_client(args) as client:
        reply = await client.request(args.topic, payload, timeout=args.timeout)
    reply_type = _REPLY_TYPES.get(args.topic)
    decoded: dict[str, Any] | None = None
    if reply_type is not None:
        try:
            decoded = json_format.MessageToDict(reply_type.FromString(reply.payload))
        except DecodeError:
            decoded = None
    if args.json:
        body = envelope_json(reply)
        if decoded is not None:
            body.pop("payload_base64", None)
            body["payload_type"] = reply_type.DESCRIPTOR.full_name if reply_type else ""
            body["payload"] = decoded
        print(json.dumps(body, separators=(",", ":")), flush=True)
    elif decoded is not None:
        print(json.dumps(decoded, separators=(",", ":")), flush=True)
    else:
        print(payload_text(reply.topic, reply.payload), flush=True)
