"""Tender: a per-query spot market for verifiable AI inference.

The shared package: chain access, intents, model bundles, config and the CLI. The roles
(``provider``, ``solver``, ``verifier``) import it; it never imports them.
"""

from tender.client._errors import (
    ProofInvalid,
    ProviderSlashed,
    RequestExpired,
    RequestFailed,
    RequestRefunded,
    RequestRejected,
    RequestTimeout,
)
from tender.errors import (
    ArtifactError,
    ChainError,
    ConfigError,
    ContractRevert,
    DeploymentError,
    DevChainError,
    IntentError,
    ModelError,
    RequestError,
    TenderError,
    TransactionFailed,
)
from tender.lazy import lazy_attribute

__all__ = [
    "ArtifactError",
    "ChainError",
    "Client",
    "ConfigError",
    "ContractRevert",
    "DeploymentError",
    "DevChainError",
    "IntentError",
    "ModelError",
    "ProofInvalid",
    "ProviderSlashed",
    "RequestError",
    "RequestExpired",
    "RequestFailed",
    "RequestRefunded",
    "RequestRejected",
    "RequestTimeout",
    "TenderError",
    "TransactionFailed",
]


#: The requester SDK's Client pulls in web3: loaded on first use (``from tender import Client``).
_LAZY = {"Client": "tender.client._client"}


def __getattr__(name: str) -> object:
    return lazy_attribute(__name__, name, _LAZY)
