"""The Tender provider node: quotes, awarded jobs, inference, proofs and delivery.

Run it with ``tender provider run --config provider.toml``; embed it with::

    chain, config = load_config(Path("provider.toml"))
    node = ProviderNode(config, gateway=MarketGateway.connect(chain), key=chain.private_key())
    sys.exit(serve(node))
"""

from provider._backends import InferenceBackend, KServeBackend, OnnxRuntimeBackend
from provider._batching import MicroBatcher
from provider._chain import ChainGateway, MarketGateway
from provider._config import (
    BackendSection,
    BatchingSection,
    MisbehaveSection,
    ModelEntry,
    PricingSection,
    ProviderSection,
    load_config,
)
from provider._errors import (
    BackendError,
    BadRequest,
    InputRejected,
    JobNotFound,
    ModelNotServed,
    NotAwarded,
    PayloadTooLarge,
    ProviderError,
    ProvingError,
)
from provider._node import ProviderNode, sign_quote_digest
from provider._pricing import Offer, Pricer
from provider._spec import ModelSpec, TensorSpec, read_spec
from provider._store import JobState, JobStore, StoredJob

__all__ = [
    "BackendError",
    "BackendSection",
    "BadRequest",
    "BatchingSection",
    "ChainGateway",
    "InferenceBackend",
    "InputRejected",
    "JobNotFound",
    "JobState",
    "JobStore",
    "KServeBackend",
    "MarketGateway",
    "MicroBatcher",
    "MisbehaveSection",
    "ModelEntry",
    "ModelNotServed",
    "ModelSpec",
    "NotAwarded",
    "Offer",
    "OnnxRuntimeBackend",
    "PayloadTooLarge",
    "Pricer",
    "PricingSection",
    "ProviderError",
    "ProviderNode",
    "ProviderSection",
    "ProvingError",
    "StoredJob",
    "TensorSpec",
    "load_config",
    "read_spec",
    "sign_quote_digest",
]
