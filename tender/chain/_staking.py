"""Provider stake: stake, unstake, redeem, operator records, solvers (``Staking``)."""

from __future__ import annotations

from collections.abc import Sequence

from web3.types import TxReceipt

from tender.chain._base import ContractWrapper, view
from tender.chain._structs import Operator, Stats


class Staking(ContractWrapper):
    """The ``Staking`` contract shared by every market. Amounts are payment-token units."""

    ARTIFACT = "Staking"

    # -- provider actions ---------------------------------------------------------------

    def stake(self, amount: int) -> TxReceipt:
        """Stake ``amount`` for the sender (approve ``Staking`` on the token first)."""
        return self._send(self.fn.stake(amount))

    def stake_for(self, provider: str, amount: int) -> TxReceipt:
        """Stake ``amount``, paid by the sender, for ``provider``."""
        return self._send(self.fn.stakeFor(provider, amount))

    def unstake(self, amount: int) -> TxReceipt:
        """Start unstaking ``amount`` (restarts the unstaking clock of what already unstakes)."""
        return self._send(self.fn.unstake(amount))

    def redeem(self) -> TxReceipt:
        """Pay the sender everything it unstaked once the unstaking delay has passed.

        Raises:
            ContractRevert: ``NothingToRedeem`` when nothing is unstaking, ``UnstakingNotReady``
                before the delay has passed.
        """
        return self._send(self.fn.redeem())

    def register_operator(
        self,
        endpoint: str,
        *,
        region: bytes = b"\x00\x00",
        hardware_class: bytes = bytes(32),
        models: Sequence[bytes] = (),
    ) -> TxReceipt:
        """Publish (or replace) the sender's operator record."""
        return self._send(self.fn.registerOperator(endpoint, region, hardware_class, list(models)))

    def set_solver(self, solver: str, allowed: bool = True) -> TxReceipt:
        """Let ``solver`` bid, fill, deliver and prove for the sender (or revoke it)."""
        return self._send(self.fn.setSolver(solver, allowed))

    # -- slashed stake --------------------------------------------------------------------

    def claim(self) -> TxReceipt:
        """Pay the sender the slashed stake credited to it (compensation of an expired job,
        a challenger's share, a penalised winner's stake).

        Raises:
            ContractRevert: ``NothingToClaim`` when nothing is credited to the sender.
        """
        return self._send(self.fn.claim())

    def claimed_in(self, receipt: TxReceipt) -> int:
        """What the ``Claimed`` events in ``receipt`` paid out."""
        return sum(int(getattr(e, "amount", 0)) for e in self.events_in(receipt) if e.name == "Claimed")

    # -- owner --------------------------------------------------------------------------

    def set_market(self, market: str, allowed: bool = True) -> TxReceipt:
        """Authorise ``market`` (at once before anything is staked, else after
        :meth:`market_delay`: see :meth:`market_active_at`) or remove it (at once)."""
        return self._send(self.fn.setMarket(market, allowed))

    def set_unstaking_delay(self, delay: int) -> TxReceipt:
        return self._send(self.fn.setUnstakingDelay(delay))

    # -- views --------------------------------------------------------------------------

    token = view("token", str)
    unstaking_delay = view("unstakingDelay", int)

    def is_market(self, market: str) -> bool:
        """Whether ``market`` may lock stake now (scheduled markets only once active)."""
        return bool(self._call(self.fn.isMarket(market)))

    def market_active_at(self, market: str) -> int:
        """When a scheduled ``market`` becomes a market (0: never scheduled)."""
        return int(self._call(self.fn.marketActiveAt(market)))

    market_delay = view(
        "MARKET_DELAY", int, "Seconds between scheduling a market and its activation (``MARKET_DELAY``)."
    )
    min_counted_fee = view(
        "minCountedFee", int, "The protocol fee below which a job does not count for reputation."
    )

    def claimable(self, account: str) -> int:
        """Slashed stake credited to ``account`` that :meth:`claim` pays out."""
        return int(self._call(self.fn.claimable(account)))

    def lockable_of(self, provider: str) -> int:
        """Stake an award can lock: available plus unstaking (an award reclaims unstaking stake)."""
        return int(self._call(self.fn.lockableOf(provider)))

    def is_authorized(self, provider: str, caller: str) -> bool:
        return bool(self._call(self.fn.isAuthorized(provider, caller)))

    def stake_of(self, provider: str) -> int:
        return int(self._call(self.fn.stakeOf(provider)))

    def locked_of(self, provider: str) -> int:
        return int(self._call(self.fn.lockedOf(provider)))

    def unstaking_of(self, provider: str) -> tuple[int, int]:
        """``(amount, ready_at)`` of the provider's unstaking stake."""
        amount, ready_at = self._call(self.fn.unstakingOf(provider))
        return int(amount), int(ready_at)

    def available_of(self, provider: str) -> int:
        """Stake a new job can lock: stake - locked - unstaking."""
        return int(self._call(self.fn.availableOf(provider)))

    def locked_for(self, provider: str, job_id: bytes) -> int:
        return int(self._call(self.fn.lockedFor(provider, job_id)))

    def operator(self, provider: str) -> Operator:
        return Operator.from_abi(self._call(self.fn.operator(provider)))

    def stats(self, provider: str) -> Stats:
        return Stats.from_abi(self._call(self.fn.stats(provider)))
