"""What the ``eventbus`` command's exit status means (documented in docs/operations.md)."""

from __future__ import annotations

import enum

__all__ = ["ExitCode", "Failure"]


class ExitCode(enum.IntEnum):
    OK = 0
    #: The broker or the policy refused, a config file is invalid, the client was kicked.
    FAILED = 1
    #: Bad arguments (argparse's own code).
    USAGE = 2
    #: Nothing answers at the address: no broker is running there.
    NO_BROKER = 3
    #: No answer in time: a request without responders or reply, ``sub --timeout`` passed.
    NO_ANSWER = 4
    #: Stopped by Ctrl-C (128 + SIGINT).
    INTERRUPTED = 130


class Failure(Exception):
    """Ends a subcommand with ``code``; the message goes to stderr."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.code = code
