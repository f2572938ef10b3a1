"""The Tender provider node: quotes, awarded jobs, inference, proofs and delivery.

Run it with ``tender provider run --config provider.toml``; embed it with::

    chain, config = load_config(Path("provider.toml"))
    node = ProviderNode(config, chain=ProviderChain.connect(chain), key=chain.private_key())
    sys.exit(serve(node))
"""

from provider._backends import InferenceBackend, KServeBackend, OnnxRuntimeBackend
from provider._batching import MicroBatcher
from provider._chain import ProviderChain
from provider._config import (
    BackendSection,
    BatchingSection,
    HealthSection,
    MisbehaveSection,
    ModelEntry,
    PricingSection,
    ProviderConfig,
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
from provider._store import JobStore, StoredJob, WorkStep

__all__ = [
    "BackendError",
    "BackendSection",
    "BadRequest",
    "BatchingSection",
    "HealthSection",
    "InferenceBackend",
    "InputRejected",
    "JobNotFound",
    "JobStore",
    "KServeBackend",
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
    "ProviderChain",
    "ProviderConfig",
    "ProviderError",
    "ProviderNode",
    "ProviderSection",
    "ProvingError",
    "StoredJob",
    "TensorSpec",
    "WorkStep",
    "load_config",
    "read_spec",
    "sign_quote_digest",
]
