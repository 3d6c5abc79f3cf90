"""The eventbus broker: ``python -m eventbus.broker``, or embedded as :class:`Broker`."""

from __future__ import annotations

from ._broker import Broker
from .config import BrokerConfig

__all__ = ["Broker", "BrokerConfig"]
