"""Terminal callbacks: checked destinations, signed POSTs, delivered by async workers."""

from server.callbacks._config import CallbackConfig
from server.callbacks._delivery import (
    AddressGuard,
    CallbackDelivery,
    CallbackNotifier,
    DeliveryOutcome,
    OutcomeListener,
    delivery_id_of,
)
from server.callbacks._policy import MAX_URL_LENGTH, DestinationPolicy, parse_literal, refusal
from server.callbacks.signing import SIGNATURE_HEADER, signature_header, verify_signature

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
    "delivery_id_of",
    # Signatures (what receivers verify)
    "SIGNATURE_HEADER",
    "signature_header",
    "verify_signature",
]
