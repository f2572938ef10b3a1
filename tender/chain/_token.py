"""The escrow and stake token (``TestToken`` on devnets, any ERC-20 elsewhere)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import cached_property

from eth_abi import decode as abi_decode
from eth_utils import keccak
from web3.types import TxReceipt

from tender.chain._base import ContractWrapper, view
from tender.errors import ChainError, ConfigError

__all__ = ["Token", "format_amount", "parse_amount"]


def parse_amount(text: str, decimals: int, *, field: str = "amount") -> int:
    """Base units of ``text``: tokens (``"0.1"``, scaled by ``decimals``) or base units with a
    ``wei`` suffix (``"100wei"``). Raises :class:`ConfigError` naming ``field`` for anything else,
    a negative amount, or more fractional digits than the token has."""
    raw = text.strip().lower().replace("_", "")
    try:
        if raw.endswith("wei"):
            value = int(raw[:-3])
        else:
            scaled = Decimal(raw) * (Decimal(10) ** decimals)
            if scaled != scaled.to_integral_value():
                raise ConfigError(f"{field}: {text!r} has more than {decimals} decimals (the token's)")
            value = int(scaled)
    except (ValueError, InvalidOperation) as exc:
        raise ConfigError(
            f"{field}: not an amount: {text!r} (tokens like 0.1, or base units like 100wei)"
        ) from exc
    if value < 0:
        raise ConfigError(f"{field}: {text!r} is negative")
    return value


def format_amount(amount: int, decimals: int) -> str:
    """``amount`` base units as tokens, exactly: ``format_amount(10100, 2) == "101"``."""
    text = f"{Decimal(int(amount)).scaleb(-decimals):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class Token(ContractWrapper):
    """An ERC-20 token; ``mint`` works on the devnet's ``TestToken`` only."""

    ARTIFACT = "TestToken"

    def balance_of(self, owner: str) -> int:
        return int(self._call(self.fn.balanceOf(owner)))

    def allowance(self, owner: str, spender: str) -> int:
        return int(self._call(self.fn.allowance(owner, spender)))

    total_supply = view("totalSupply", int)

    def decimals(self) -> int:
        """The token's ``decimals()`` (read once)."""
        return self._decimals

    @cached_property
    def _decimals(self) -> int:
        value = int.from_bytes(self._raw_call("decimals()")[-32:] or b"", "big")
        if value > 77:
            raise ChainError(f"token {self.address}: decimals() returned {value}")
        return value

    def symbol(self) -> str:
        """The token's ``symbol()``, whether it returns a ``string`` or (older tokens such as MKR)
        a ``bytes32`` (read once)."""
        return self._symbol

    @cached_property
    def _symbol(self) -> str:
        raw = self._raw_call("symbol()")
        if len(raw) == 32:  # bytes32, right-padded with zeros
            return raw.rstrip(b"\0").decode(errors="replace")
        try:
            return str(abi_decode(["string"], raw)[0])
        except Exception as exc:  # eth_abi raises several unrelated types for short data
            raise ChainError(f"token {self.address}: symbol() returned {raw.hex()!r}") from exc

    def _raw_call(self, signature: str) -> bytes:
        """The return data of a no-argument view, undecoded (tokens disagree on return types)."""
        try:
            data = self.w3.eth.call({"to": self.address, "data": keccak(text=signature)[:4]})  # type: ignore[typeddict-item]
        except Exception as exc:  # web3 raises several unrelated types for a reverted or absent call
            raise ChainError(f"token {self.address}: {signature} failed: {exc}") from exc
        if not data:
            raise ChainError(f"token {self.address}: {signature} returned nothing (not an ERC-20?)")
        return bytes(data)

    def parse(self, text: str, *, field: str = "amount") -> int:
        """Base units of ``text`` in this token's decimals (see :func:`parse_amount`)."""
        return parse_amount(text, self.decimals(), field=field)

    def format(self, amount: int, *, symbol: bool = True) -> str:
        """``amount`` base units as tokens with the symbol: ``"101 USDT"``."""
        text = format_amount(amount, self.decimals())
        return f"{text} {self.symbol()}" if symbol else text

    def approve(self, spender: str, amount: int) -> TxReceipt:
        return self._send(self.fn.approve(spender, amount))

    def transfer(self, to: str, amount: int) -> TxReceipt:
        return self._send(self.fn.transfer(to, amount))

    def mint(self, to: str, amount: int) -> TxReceipt:
        return self._send(self.fn.mint(to, amount))

    def ensure_allowance(self, spender: str, amount: int, *, approve: int | None = None) -> TxReceipt | None:
        """Approve ``approve`` (default ``amount``) for ``spender`` unless the sender's allowance
        already covers ``amount``.

        A smaller non-zero allowance is first set to 0: USDT-style tokens refuse to change a
        non-zero allowance to another non-zero one (the ERC-20 approve race).
        """
        target = amount if approve is None else approve
        current = self.allowance(self._me(), spender)
        if current >= amount:
            return None
        if current != 0:
            self.approve(spender, 0)
        return self.approve(spender, target)

    def restore_allowance(self, spender: str, allowance: int) -> TxReceipt | None:
        """Set the sender's allowance for ``spender`` back to ``allowance`` (USDT-safe): what a
        command that approved and then failed does, so that it leaves no allowance behind."""
        current = self.allowance(self._me(), spender)
        if current == allowance:
            return None
        if current != 0 and allowance != 0:
            self.approve(spender, 0)
        return self.approve(spender, allowance)
