"""A process that connects to the broker and hands the socket to a child that speaks for it.

    python tests/procs/handover.py ADDRESS PRINCIPAL exit|stay

The process connects, then forks. With ``exit`` it exits at once (the test reaps it); with
``stay`` it waits for its child. The child inherits the connected socket and prints
``{"event": "ready", "pid": ...}``, waits for a line on stdin, sends Hello as PRINCIPAL,
and prints the broker's answer, ``{"event": "answer", "body": "welcome"|"error", "code":
..., "message": ...}``, then ``{"event": "closed"}`` once the broker closes the connection
(or it closes it itself after a Welcome). EOF on stdin before that makes it exit.
"""

from __future__ import annotations

import json
import os
import socket
import sys

from eventbus.protocol import PROTOCOL_VERSION, decode_frame, encode_frame
from eventbus.v1 import frames_pb2


def say(**message: object) -> None:
    print(json.dumps(message), flush=True)


def read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def speak(sock: socket.socket, principal: str) -> None:
    hello = frames_pb2.Hello(protocol_version=PROTOCOL_VERSION, principal=principal)
    sock.sendall(encode_frame(frames_pb2.Frame(hello=hello)))
    header = read_exactly(sock, 4)
    body = None if header is None else read_exactly(sock, int.from_bytes(header, "little"))
    if body is None:
        say(event="answer", body=None)
        return
    frame = decode_frame(body)
    kind = frame.WhichOneof("body")
    if kind == "error":
        say(event="answer", body=kind, code=frame.error.code, message=frame.error.message)
        while sock.recv(65536):  # until the broker closes
            pass
    else:
        say(event="answer", body=kind)
    say(event="closed")


def main() -> int:
    address, principal, parent_does = sys.argv[1:4]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(address)
    child = os.fork()
    if child:
        if parent_does == "stay":
            os.waitpid(child, 0)
        os._exit(0)
    say(event="ready", pid=os.getpid())
    if not sys.stdin.readline():
        return 1
    speak(sock, principal)
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
