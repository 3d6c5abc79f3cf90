"""The eventbus broker: ``python -m eventbus.broker``, or embedded as :class:`Broker`."""

from __future__ import annotations

import os

from ._broker import Broker
from .config import BrokerConfig

__all__ = ["Broker", "BrokerConfig", "config_from_toml", "load_config"]


def load_config(path: str | os.PathLike[str]) -> BrokerConfig:
    """The broker settings and policy of the TOML file at ``path`` (``docs/operations.md``).

    Raises :class:`~eventbus.errors.ConfigError` naming the file and the line.
    """
    # Imported here, like Policy.load: only a broker given a file needs the TOML parser.
    from ._config_file import load_config as load

    return load(path)


def config_from_toml(text: str, source: str = "<string>") -> BrokerConfig:
    """:func:`load_config` for TOML text; ``source`` names it in errors."""
    from ._config_file import config_from_toml as parse

    return parse(text, source)
