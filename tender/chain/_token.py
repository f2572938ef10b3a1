"""The escrow and stake token (``TestToken`` on devnets, any ERC-20 elsewhere)."""

from __future__ import annotations

from web3.types import TxReceipt

from tender.chain._base import ContractWrapper


class Token(ContractWrapper):
    """An ERC-20 token; ``mint`` works on the devnet's ``TestToken`` only."""

    ARTIFACT = "TestToken"

    def balance_of(self, owner: str) -> int:
        return int(self._call(self.fn.balanceOf(owner)))

    def allowance(self, owner: str, spender: str) -> int:
        return int(self._call(self.fn.allowance(owner, spender)))

    def total_supply(self) -> int:
        return int(self._call(self.fn.totalSupply()))

    def decimals(self) -> int:
        return int(self._call(self.fn.decimals()))

    def symbol(self) -> str:
        return str(self._call(self.fn.symbol()))

    def approve(self, spender: str, amount: int) -> TxReceipt:
        return self._send(self.fn.approve(spender, amount))

    def transfer(self, to: str, amount: int) -> TxReceipt:
        return self._send(self.fn.transfer(to, amount))

    def mint(self, to: str, amount: int) -> TxReceipt:
        return self._send(self.fn.mint(to, amount))

    def ensure_allowance(self, spender: str, amount: int) -> TxReceipt | None:
        """Approve ``amount`` for ``spender`` unless the sender's allowance already covers it."""
        if self.allowance(self._me(), spender) >= amount:
            return None
        return self.approve(spender, amount)
