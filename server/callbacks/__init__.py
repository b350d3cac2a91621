"""Terminal callbacks: checked destinations, signed POSTs, delivered by async workers from the store's outbox."""

from server.callbacks._config import CallbackConfig
from server.callbacks._delivery import (
    AddressGuard,
    CallbackDelivery,
    CallbackNotifier,
    DeliveryOutcome,
    OutcomeListener,
    RetryListener,
)
from server.callbacks._outbox import CallbackRelay
from server.callbacks._policy import MAX_URL_LENGTH, DestinationPolicy, parse_literal, refusal
from server.callbacks.signing import SIGNATURE_HEADER, signature_header, verify_signature
from server.engine.callback import delivery_id_of

__all__ = [
    # Settings and the destination rules
    "MAX_URL_LENGTH",
    "CallbackConfig",
    "DestinationPolicy",
    "parse_literal",
    "refusal",
    # Delivery
    "AddressGuard",
    "CallbackDelivery",
    "CallbackNotifier",
    "DeliveryOutcome",
    "OutcomeListener",
    "RetryListener",
    "delivery_id_of",
    # Durability: the store's outbox, relayed to the notifier
    "CallbackRelay",
    # Signatures (what receivers verify)
    "SIGNATURE_HEADER",
    "signature_header",
    "verify_signature",
]
