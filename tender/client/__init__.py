"""The requester SDK and the ``tender request`` command.

::

    from tender.client import Client, RequestExpired

    async with Client(rpc, key, solvers=["http://127.0.0.1:7100"]) as client:
        result = await client.request("mlp", pixels, max_price=10**17, deadline=60)

An on-chain agent (the ``TenderAgent`` example contract) buys through its owner's client and
gets the result pushed to it by the market's callback (see :mod:`tender.client._agent`)::

    agent = client.agent(agent_address)
    result = await agent.request("mlp", pixels, max_price=10**17, deadline=60)
    result.callback_output  # what the agent's onTenderResult stored

The markets credit refunds and unspent escrow instead of sending them: :meth:`Client.owed` shows
the credit, :meth:`Client.withdraw` pays it out (:meth:`AgentClient.withdraw` for an agent), and
later escrows are paid from it first.

Errors (all :class:`tender.errors.RequestError`): :class:`RequestRejected` (and
:class:`AgentRejected`), :class:`RequestRefunded`, :class:`RequestExpired`,
:class:`ProviderSlashed`, :class:`ProofInvalid`, :class:`AgentResultMissing`,
:class:`RequestFailed`, :class:`RequestTimeout`; see :mod:`tender.client._errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tender.client._errors import (
    AgentRejected,
    AgentResultMissing,
    ProofInvalid,
    ProviderSlashed,
    RequestError,
    RequestExpired,
    RequestFailed,
    RequestRefunded,
    RequestRejected,
    RequestTimeout,
)
from tender.client._result import Latency, RequestResult, Withdrawal
from tender.lazy import lazy_attribute

if TYPE_CHECKING:
    from tender.client._agent import AgentClient, AgentResult
    from tender.client._client import Client
    from tender.client._rfq import ProvisionalResult, QuoteSettlement
    from tender.client._tokens import TokenResult, request_tokens

__all__ = [
    "AgentClient",
    "AgentRejected",
    "AgentResult",
    "AgentResultMissing",
    "Client",
    "Latency",
    "ProofInvalid",
    "ProviderSlashed",
    "ProvisionalResult",
    "QuoteSettlement",
    "RequestError",
    "RequestExpired",
    "RequestFailed",
    "RequestRefunded",
    "RequestRejected",
    "RequestResult",
    "RequestTimeout",
    "TokenResult",
    "Withdrawal",
    "cli_group",
    "intent_group",
    "market_group",
    "request_tokens",
]


#: Client pulls in web3 and the chain package: loaded on first use, so that `import tender`
#: (and the CLI's start-up) stay light.
_LAZY = {
    "Client": "tender.client._client",
    "ProvisionalResult": "tender.client._rfq",
    "QuoteSettlement": "tender.client._rfq",
    "TokenResult": "tender.client._tokens",
    "request_tokens": "tender.client._tokens",
    "AgentClient": "tender.client._agent",
    "AgentResult": "tender.client._agent",
    "cli_group": "tender.client._cli",
    "intent_group": "tender.client._cli",
    "market_group": "tender.client._cli",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, name, _LAZY)
