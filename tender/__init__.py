"""Tender: a per-query spot market for verifiable AI inference.

The shared package: chain access, intents, model bundles, config and the CLI. The roles
(``provider``, ``solver``, ``verifier``) import it; it never imports them.
"""

from tender.errors import (
    ChainError,
    ConfigError,
    ContractRevert,
    DevChainError,
    IntentError,
    ModelError,
    RequestError,
    TenderError,
    TransactionFailed,
)

__all__ = [
    "ChainError",
    "ConfigError",
    "ContractRevert",
    "DevChainError",
    "IntentError",
    "ModelError",
    "RequestError",
    "TenderError",
    "TransactionFailed",
]
