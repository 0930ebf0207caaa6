"""Channel connectors: the contract (`connectors.base`), built-ins and the registry."""

from connectors.base import (
    Connector,
    ConnectorConfigError,
    ConnectorError,
    DeliveryReceipt,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
)

__all__ = [
    "Connector",
    "ConnectorConfigError",
    "ConnectorError",
    "DeliveryReceipt",
    "OutboundMessage",
    "PermanentSendError",
    "RetryableSendError",
]
