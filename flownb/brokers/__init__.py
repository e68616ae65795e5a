"""Message broker providers behind one contract (`base.BrokerProvider`), one delivery policy.

`memory` ships here; providers for external brokers are imported only when a config uses
them, so their client libraries stay optional extras.
"""

from __future__ import annotations

from flownb.brokers.base import (
    BrokerError,
    BrokerProvider,
    Message,
    MessageHandler,
    PayloadError,
    RejectMessage,
    Subscription,
)
from flownb.brokers.delivery import DeliveryPolicy, DeliveryStats
from flownb.brokers.memory import MemoryProvider

__all__ = [
    "BrokerError",
    "BrokerProvider",
    "DeliveryPolicy",
    "DeliveryStats",
    "MemoryProvider",
    "Message",
    "MessageHandler",
    "PayloadError",
    "RejectMessage",
    "Subscription",
]
