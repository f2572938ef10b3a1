"""``async_connect`` on a real Anvil: cancelled requests never wedge later ones."""

from __future__ import annotations

import asyncio

from tender.anvil import Anvil
from tender.chain import LoopSessions, async_connect


def test_requests_after_mass_cancellation_still_answer() -> None:
    with Anvil() as anvil:
        w3 = async_connect(anvil.rpc_url)

        async def main() -> int:
            for _ in range(5):
                pending = [asyncio.create_task(w3.eth.get_block(0)) for _ in range(20)]
                await asyncio.sleep(0)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            # A hang here is what web3's process-wide session lock can turn cancellations into.
            number = await asyncio.wait_for(w3.eth.block_number, timeout=60)
            await w3.provider.disconnect()
            return int(number)

        assert asyncio.run(main()) == 0


def test_one_connection_serves_successive_event_loops() -> None:
    with Anvil() as anvil:
        w3 = async_connect(anvil.rpc_url)

        async def chain_id() -> int:
            return int(await w3.eth.chain_id)

        assert [asyncio.run(chain_id()) for _ in range(3)] == [anvil.chain_id] * 3
        manager = w3.provider._request_session_manager  # type: ignore[attr-defined]
        assert isinstance(manager, LoopSessions)
