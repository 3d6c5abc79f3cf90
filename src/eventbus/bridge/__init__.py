"""The fleet bridge: one host's bus to a NATS JetStream cluster, and back (docs/fleet.md).

Local topics go up as subjects ``daemoneye.<host-id>.<topic>`` on a JetStream stream, in
order per local publisher, de-duplicated by ``Nats-Msg-Id``, through a bounded on-disk
spool that rides out NATS outages and bridge restarts; control comes down from a durable
consumer on ``daemoneye.<host-id>.control.>`` and ``daemoneye.all.control.>`` and is
published locally as principal ``bridge``, where the local policy still decides who
receives it.

Its parts: :mod:`.config` (``bridge.toml``), :mod:`.subjects` (topics and subjects),
:mod:`.spool` (the on-disk queue), :mod:`.uplink` and :mod:`.downlink`, :mod:`.natslink`
(the NATS connection), :mod:`.stats` (counters, metrics), :mod:`.bridge` (all of them
together) and ``__main__`` (the command). It needs nats-py (``pip install nats-py``).
"""

from .bridge import OVERFLOW_TOPIC, STATS_TOPIC, Bridge
from .config import BridgeConfig
from .stats import BridgeStats

__all__ = ["OVERFLOW_TOPIC", "STATS_TOPIC", "Bridge", "BridgeConfig", "BridgeStats"]
