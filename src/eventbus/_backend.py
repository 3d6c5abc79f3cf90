"""Chooses the compiled core or its pure-Python twin, once, for the whole package.

``EVENTBUS_NO_EXTENSIONS`` set to anything but ``""``/``"0"`` forces the pure-Python core.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

__all__ = [
    "ADMIN",
    "BACKEND",
    "FRAME_EVENT",
    "FRAME_PUBLISH",
    "PUBLISH",
    "SUBSCRIBE",
    "EventView",
    "FrameSplitter",
    "PublishView",
    "RightsTable",
    "TopicTrie",
    "decode_event",
    "decode_publish",
    "encode_event",
    "encode_publish",
    "filter_covers",
    "filter_levels",
    "frame_kind",
    "topic_levels",
    "topic_matches",
    "validate_filter",
    "validate_topic",
]

NO_EXTENSIONS = os.environ.get("EVENTBUS_NO_EXTENSIONS", "") not in ("", "0")

if TYPE_CHECKING:
    # Both twins have the same API; type-check against the reference.
    from ._framing import FrameSplitter
    from ._grammar import (
        filter_covers,
        filter_levels,
        topic_levels,
        topic_matches,
        validate_filter,
        validate_topic,
    )
    from ._rights import ADMIN, PUBLISH, SUBSCRIBE, RightsTable
    from ._trie import TopicTrie
    from ._wire import (
        FRAME_EVENT,
        FRAME_PUBLISH,
        EventView,
        PublishView,
        decode_event,
        decode_publish,
        encode_event,
        encode_publish,
        frame_kind,
    )
else:
    if not NO_EXTENSIONS:
        try:
            from ._fast._framing import FrameSplitter
            from ._fast._grammar import (
                filter_covers,
                filter_levels,
                topic_levels,
                topic_matches,
                validate_filter,
                validate_topic,
            )
            from ._fast._rights import ADMIN, PUBLISH, SUBSCRIBE, RightsTable
            from ._fast._trie import TopicTrie
            from ._fast._wire import (
                FRAME_EVENT,
                FRAME_PUBLISH,
                EventView,
                PublishView,
                decode_event,
                decode_publish,
                encode_event,
                encode_publish,
                frame_kind,
            )
        except ImportError:
            NO_EXTENSIONS = True

    if NO_EXTENSIONS:
        from ._framing import FrameSplitter
        from ._grammar import (
            filter_covers,
            filter_levels,
            topic_levels,
            topic_matches,
            validate_filter,
            validate_topic,
        )
        from ._rights import ADMIN, PUBLISH, SUBSCRIBE, RightsTable
        from ._trie import TopicTrie
        from ._wire import (
            FRAME_EVENT,
            FRAME_PUBLISH,
            EventView,
            PublishView,
            decode_event,
            decode_publish,
            encode_event,
            encode_publish,
            frame_kind,
        )

BACKEND = "python" if NO_EXTENSIONS else "cython"
