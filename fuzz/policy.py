"""Fuzz target: the TOML policy loader, ``Policy.from_toml``, on arbitrary text.

The input is decoded as UTF-8 (undecodable bytes replaced: a policy file is read as text).
Loading must give a Policy or raise ``PolicyError`` whose message names the source and a
line (``<fuzz>:N: ...``); anything else raised is a crash. tomllib is instrumented too, so
the fuzzer learns TOML's syntax and gets to the loader's checks.
"""

from __future__ import annotations

import re

from _harness import fuzz, instrumented

with instrumented(__name__ == "__main__", include=("eventbus", "tomllib")):
    from eventbus.acl import Policy
    from eventbus.errors import PolicyError

LOCATED = re.compile(r"<fuzz>:[1-9][0-9]*: ")


def TestOneInput(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        policy = Policy.from_toml(text, name="<fuzz>")
    except PolicyError as exc:
        if LOCATED.match(str(exc)) is None:
            raise AssertionError(f"PolicyError without a line: {exc}") from exc
        return
    if not policy.principals():
        raise AssertionError("a policy without principals was accepted")


if __name__ == "__main__":
    fuzz(TestOneInput)
