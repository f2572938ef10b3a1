"""The requester SDK and the ``tender request`` command.

::

    from tender.client import Client, RequestExpired

    async with Client(rpc, key, solvers=["http://127.0.0.1:7100"]) as client:
        result = await client.request("mlp", pixels, max_price=10**17, deadline=60)

Errors (all :class:`tender.errors.RequestError`): :class:`RequestRejected`,
:class:`RequestRefunded`, :class:`RequestExpired`, :class:`ProviderSlashed`,
:class:`ProofInvalid`, :class:`RequestTimeout`; see :mod:`tender.client._errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tender.client._errors import (
    ProofInvalid,
    ProviderSlashed,
    RequestError,
    RequestExpired,
    RequestRefunded,
    RequestRejected,
    RequestTimeout,
)
from tender.client._result import Latency, RequestResult

if TYPE_CHECKING:
    from tender.client._client import Client

__all__ = [
    "Client",
    "Latency",
    "ProofInvalid",
    "ProviderSlashed",
    "RequestError",
    "RequestExpired",
    "RequestRefunded",
    "RequestRejected",
    "RequestResult",
    "RequestTimeout",
    "cli_group",
]


def __getattr__(name: str) -> Any:
    # Client pulls in web3 and the chain package: load it on first use, so that
    # `import tender` (and the CLI's start-up) stay light.
    if name == "Client":
        from tender.client._client import Client

        return Client
    if name == "cli_group":
        from tender.client._cli import cli_group

        return cli_group
    raise AttributeError(f"module 'tender.client' has no attribute {name!r}")
