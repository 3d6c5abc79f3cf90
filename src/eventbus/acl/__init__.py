"""Access control: who a peer may be (its binding) and what it may do (its grant).

Three parts, one module each: :class:`Grant` (``_grant``), what one connection may do and the
denials it gets, which is all the client needs; :class:`Policy` and its principals and
bindings (``_policy``), the broker's side; and the TOML policy file (``_policy_file``), loaded
only when :meth:`Policy.from_toml` or :meth:`Policy.load` is called, so importing this package
does not import the TOML parser or the user and group databases.
"""

from __future__ import annotations

from ._grant import Grant
from ._policy import (
    DEFAULT_RULE_SET,
    Binding,
    Credentials,
    Policy,
    PrincipalRule,
    default_policy,
)

__all__ = [
    "DEFAULT_RULE_SET",
    "Binding",
    "Credentials",
    "Grant",
    "Policy",
    "PrincipalRule",
    "default_policy",
]
