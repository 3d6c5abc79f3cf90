"""Writes the seed corpus of every fuzz target to ``fuzz/corpus/<target>/``.

The seeds are committed; run this again (``python fuzz/make_corpus.py``) after changing the
wire schema or a target's input layout. Each seed is named after what it holds.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

from eventbus.protocol import PROTOCOL_VERSION, encode_event, encode_frame, encode_publisher
from eventbus.v1 import frames_pb2 as pb

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
EXAMPLE_POLICY = HERE.parent / "examples" / "policy.toml"

IDENTITY = pb.ProcessIdentity(pid=42, uid=1000, principal="procmond", connection_id=7)
CORRELATION = pb.CorrelationMetadata(correlation_id="c-1", sequence=3, tags={"k": "v"})

FRAMES: dict[str, pb.Frame] = {
    "hello": pb.Frame(
        hello=pb.Hello(protocol_version=PROTOCOL_VERSION, principal="agent", client_name="a")
    ),
    "subscribe": pb.Frame(subscribe=pb.Subscribe(request_id=1, filter="events.+.#", group="g")),
    "unsubscribe": pb.Frame(unsubscribe=pb.Unsubscribe(request_id=2, subscription_id=1)),
    "publish": pb.Frame(
        publish=pb.Publish(
            request_id=3,
            topic="events.process.lifecycle",
            payload=b"\x00\xff",
            correlation=CORRELATION,
            reply_to="$INBOX.7.1",
        )
    ),
    "ping": pb.Frame(ping=pb.Ping(nonce=11)),
    "pub_ack": pb.Frame(pub_ack=pb.PubAck(request_id=3, delivered=2, dropped=1)),
    "error": pb.Frame(error=pb.Error(request_id=4, code=pb.ERROR_CODE_INVALID_TOPIC, message="x")),
    "list_request": pb.Frame(list_request=pb.ListRequest(request_id=5, all_clients=True)),
    "welcome": pb.Frame(
        welcome=pb.Welcome(
            protocol_version=PROTOCOL_VERSION,
            connection_id=7,
            identity=IDENTITY,
            rights=pb.Rights(publish=["events.process.#"], subscribe=["control.#"], admin=True),
            limits=pb.Limits(max_frame_bytes=1 << 20, heartbeat_interval_ms=5000),
        )
    ),
    "dropped": pb.Frame(dropped=pb.Dropped(count=3, total=8)),
    "goodbye": pb.Frame(goodbye=pb.Goodbye(reason="bye")),
}


def body(name: str) -> bytes:
    return FRAMES[name].SerializeToString()


def event_body() -> bytes:
    data = encode_event(
        "events.process.tree",
        b"payload",
        1_700_000_000,
        encode_publisher(IDENTITY),
        CORRELATION.SerializeToString(),
        "$INBOX.1.2",
    )
    return data[4:]


def decoder_seeds() -> dict[str, bytes]:
    seeds = {f"{name}.bin": body(name) for name in FRAMES}
    seeds["event.bin"] = event_body()
    seeds["ping-unknown-field.bin"] = body("ping") + b"\x98\x06\x01"  # field 99, varint
    seeds["unknown-kind.bin"] = b"\xc2\x0c\x00"  # only field 200: a newer frame kind
    seeds["truncated-publish.bin"] = b"\x3a\x05ab"
    # Once refused by the views, which protobuf parses: an empty group (field 6) skipped.
    seeds["regress-publish-group.bin"] = b"\x3a\x0a\x08\x03\x12\x03a.b\x33\x34\x0b\x0c"
    return seeds


def framing_seed(stream: bytes, sizes: bytes = b"", limit: int = 0, kinds: int = 0) -> bytes:
    """An input of fuzz/framing.py: limit selector, buffer kinds, chunk sizes, stream."""
    return bytes((limit, kinds, len(sizes))) + sizes + stream


def framing_seeds() -> dict[str, bytes]:
    frames = b"".join(encode_frame(FRAMES[name]) for name in ("hello", "subscribe", "publish"))
    zero = struct.pack("<I", 0)
    return {
        "one-chunk.bin": framing_seed(frames),
        "bytewise.bin": framing_seed(frames, b"\x01", kinds=0b11100100),
        "mixed-cuts.bin": framing_seed(frames, bytes((3, 0, 7, 1, 40)), kinds=0b01101100),
        "zero-length.bin": framing_seed(zero * 3 + encode_frame(FRAMES["ping"]), b"\x02\x05"),
        "over-limit.bin": framing_seed(encode_frame(FRAMES["ping"]) + b"\xff\xff\xff\xff", b"\x03"),
        "small-limit.bin": framing_seed(frames, b"\x10", limit=9 + 40),  # LIMITS has 9 entries
        "cut-at-eof.bin": framing_seed(frames[:-3], b"\x06"),
    }


def policy_seeds() -> dict[str, bytes]:
    minimal = '[principals.agent]\nuid = [0]\npublish = ["control.#"]\nadmin = true\n'
    names = (
        '[roles.r]\nsubscribe = ["events.#"]\n'
        '[principals."p q"]\nuid = ["root"]\ngid = ["root", 0]\nroles = ["r"]\n'
        'executable = ["/usr/bin/env"]\n'
    )
    return {
        "example.toml": EXAMPLE_POLICY.read_bytes(),
        "minimal.toml": minimal.encode(),
        "names-and-roles.toml": names.encode(),
        "any-user.toml": b"[policy]\nname = 'x'\n[principals.a]\nany_user = true\n",
        "syntax-error.toml": b"[principals.a\nuid = 1\n",
        # Inputs that once escaped as other exceptions than PolicyError.
        "regress-nul-in-user-name.toml": b'[principals.a]\nuid = ["ro\\u0000ot"]\n',
        "regress-deep-nesting.toml": b"[principals.a]\nuid = 0\nx = " + b"[" * 3000 + b"\n",
        "regress-huge-integer.toml": b"[principals.a]\nuid = " + b"1" * 4400 + b"\n",
    }


def main() -> None:
    for target, seeds in (
        ("framing", framing_seeds()),
        ("decoders", decoder_seeds()),
        ("views", decoder_seeds()),
        ("policy", policy_seeds()),
    ):
        directory = CORPUS / target
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for name, data in seeds.items():
            (directory / name).write_bytes(data)
        print(f"{directory.relative_to(HERE.parent)}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
