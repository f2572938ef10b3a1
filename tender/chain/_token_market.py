"""The token market (``TokenMarket``): token jobs priced per 1,000 tokens, delivered on chain,
audited by sampled re-execution and decided by a quorum of staked re-executors."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from eth_utils import keccak
from web3 import Web3
from web3.types import TxReceipt

from tender.chain._base import ContractWrapper, view
from tender.chain._deploy import deploy_artifact
from tender.chain._deployment import Deployment
from tender.chain._events import TokenAuditDrawn, TokenDelivered, TokenJobOpened
from tender.chain._staking import Staking
from tender.chain._structs import INPUT_HASHED, MODES_REEXECUTION, ZERO_ADDRESS, ModelInfo
from tender.chain._token_jobs import TokenJob, TokenModelConfig, TokenQuote, decode_tokens, encode_tokens
from tender.chain._tx import TxSender
from tender.errors import ChainError, ContractRevert
from tender.quotes import commitment_digest

#: The deployment's ``extra`` key holding the token market's address.
TOKEN_MARKET_KEY = "tokenMarket"


class TokenMarket(ContractWrapper):
    """A ``TokenMarket`` deployment (``deployment.extra["tokenMarket"]``).

    Example::

        market = TokenMarket(w3, address, sender=requester)
        signature = quote.sign(provider_key, chain_id=market.chain_id, market=market.address)
        job_id = market.job_id_in(market.open(quote, signature))
        market.using(provider).deliver(job_id, tokens)        # ids, on chain
        market.using(anyone).finalize(job_id)                   # after the challenge window
    """

    ARTIFACT = "TokenMarket"

    @property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    # -- owner --------------------------------------------------------------------------

    def set_token_model(self, model_id: bytes, config: TokenModelConfig) -> TxReceipt:
        return self._send(self.fn.setTokenModel(model_id, config.to_abi()))

    def set_reexecutor(self, model_id: bytes, account: str, allowed: bool = True) -> TxReceipt:
        return self._send(self.fn.setReexecutor(model_id, Web3.to_checksum_address(account), allowed))

    # -- steps --------------------------------------------------------------------------

    def open(self, quote: TokenQuote, signature: bytes) -> TxReceipt:
        """The requester opens ``quote``'s job: escrows :attr:`TokenQuote.escrow`, locks the
        provider's stake."""
        return self._send(self.fn.open(quote.to_abi(), signature))

    def deliver(self, job_id: bytes, tokens: Sequence[int]) -> TxReceipt:
        """The provider (or its solver) puts the sequence on chain. Reverts ``Truncated``,
        ``TokenAfterEos``, ``TokenOutsideVocab``, ``TooManyTokens`` for a malformed one."""
        return self._send(self.fn.deliver(job_id, encode_tokens(tokens)))

    def draw_audit(self, job_id: bytes) -> TxReceipt:
        return self._send(self.fn.drawAudit(job_id))

    def challenge(self, job_id: bytes) -> TxReceipt:
        """Post the challenge bond against a delivered job (approve the market first)."""
        return self._send(self.fn.challenge(job_id))

    def vote(self, job_id: bytes, faithful: bool) -> TxReceipt:
        return self._send(self.fn.vote(job_id, faithful))

    def finalize(self, job_id: bytes) -> TxReceipt:
        return self._send(self.fn.finalize(job_id))

    def expire(self, job_id: bytes) -> TxReceipt:
        return self._send(self.fn.expire(job_id))

    def slash_commitment(self, job_id: bytes, committed_hash: bytes, signature: bytes) -> TxReceipt:
        """Anyone holding the provider's signed result commitment to ``committed_hash``: slashes a
        job whose delivered sequence is another (before settlement: as an unfaithful delivery;
        after: up to its lock from free stake). Reverts ``CommitmentMatches`` for the delivered one."""
        return self._send(self.fn.slashCommitment(job_id, committed_hash, signature))

    def withdraw(self) -> TxReceipt:
        return self._send(self.fn.withdraw())

    # -- reads --------------------------------------------------------------------------

    def job(self, job_id: bytes) -> TokenJob:
        return TokenJob.from_abi(self._call(self.fn.job(job_id)))

    def token_model(self, model_id: bytes) -> TokenModelConfig:
        return TokenModelConfig.from_abi(self._call(self.fn.tokenModel(model_id)))

    def hash_quote(self, quote: TokenQuote) -> bytes:
        """``hashQuote`` as the contract computes it (:meth:`TokenQuote.digest` locally)."""
        return bytes(self._call(self.fn.hashQuote(quote.to_abi())))

    def commitment_digest(self, job_id: bytes, output_hash: bytes) -> bytes:
        """What a desk signs for a result commitment (``hashCommitment``, computed locally)."""
        return commitment_digest(job_id, output_hash, chain_id=self.chain_id, market=self.address)

    def owed(self, account: str) -> int:
        return int(self._call(self.fn.owed(Web3.to_checksum_address(account))))

    def is_reexecutor(self, model_id: bytes, account: str) -> bool:
        return bool(self._call(self.fn.isReexecutor(model_id, Web3.to_checksum_address(account))))

    def registry(self) -> str:
        """The ``ModelRegistry`` whose re-execution tier this market serves."""
        return str(Web3.to_checksum_address(self._call(self.fn.registry())))

    def check_model(self, model_id: bytes, onnx_path: str | Path) -> None:
        """Raise :class:`ChainError` unless ``model_id`` is a re-execution model of the market's
        registry whose ``onnxSha256`` is that file's (what a desk or a re-executor runs)."""
        from tender.chain._registry import Registry

        registry = Registry(self.w3, self.registry())
        try:
            info = registry.model(model_id)
        except ContractRevert as exc:  # UnknownModel: one read answers both questions
            raise ChainError(f"model 0x{model_id.hex()} is not registered in {registry.address}") from exc
        if info.proof_modes != MODES_REEXECUTION:
            raise ChainError(
                f"model 0x{model_id.hex()} is not a re-execution (token) model: modes {info.proof_modes}"
            )
        digest = hashlib.sha256(Path(onnx_path).read_bytes()).digest()
        if digest != info.onnx_sha256:
            raise ChainError(
                f"{onnx_path} is not model 0x{model_id.hex()}: its sha256 is {digest.hex()}, "
                f"the registry pins {info.onnx_sha256.hex()}"
            )

    def has_voted(self, job_id: bytes, account: str) -> bool:
        return bool(self._call(self.fn.hasVoted(job_id, Web3.to_checksum_address(account))))

    challenge_window = view(
        "challengeWindow", int, "Seconds after delivery during which anyone may challenge."
    )
    vote_window = view("voteWindow", int, "Seconds a dispute stays open for re-executors' votes.")
    challenge_bond = view("challengeBond", int, "What a challenger posts (lost to an honest provider).")

    # -- receipts -----------------------------------------------------------------------

    def job_id_in(self, receipt: TxReceipt) -> bytes:
        """The job ``open`` opened (from its ``TokenJobOpened``)."""
        for event in self.events_in(receipt):
            if isinstance(event, TokenJobOpened):
                return event.job_id
        raise ChainError("no TokenJobOpened in the receipt")

    def delivered_tokens(self, job_id: bytes, from_block: int = 0) -> list[int]:
        """The ids a job's ``TokenDelivered`` put on chain (what every re-executor checks)."""
        for event in self.events(from_block, names=["TokenDelivered"], job_id=job_id):
            if isinstance(event, TokenDelivered):
                return decode_tokens(event.tokens)
        raise ChainError(f"job {job_id.hex()} has no delivery on chain")

    def request_hash_of(self, job_id: bytes, from_block: int = 0) -> bytes:
        """The request hash the job was opened with (``TokenJobOpened``): a re-executor checks the
        request it is given (prompt, sampling) hashes to it before re-running it."""
        for event in self.events(from_block, names=["TokenJobOpened"], job_id=job_id):
            if isinstance(event, TokenJobOpened):
                return event.request_hash
        raise ChainError(f"job {job_id.hex()} was never opened")

    def audited_in(self, receipt: TxReceipt) -> bool | None:
        """Whether a ``drawAudit`` / ``finalize`` drew an audit (None: no draw in the receipt)."""
        for event in self.events_in(receipt):
            if isinstance(event, TokenAuditDrawn):
                return event.audited
        return None


def token_model_info(folder: str | Path, *, audit_rate_bps: int) -> ModelInfo:
    """A token model's record in the registry's re-execution tier: ``onnxSha256`` is the sha256 of
    ``model.onnx``, ``settingsHash`` the keccak256 of every other file of the folder (name and
    sha256, sorted: the tokenizer and the config that fix the ids re-executors compare);
    no verifier, no instance layout. Register it with :meth:`Registry.register_model`; then
    ``TokenMarket.setTokenModel`` serves it (its config repeating ``audit_rate_bps``)."""
    folder = Path(folder)
    onnx = folder / "model.onnx"
    if not onnx.is_file():
        raise ChainError(f"{folder}: no model.onnx")
    others = sorted(p for p in folder.iterdir() if p.is_file() and p.name != "model.onnx")
    digest = keccak(b"".join(p.name.encode() + hashlib.sha256(p.read_bytes()).digest() for p in others))
    return ModelInfo(
        onnx_sha256=hashlib.sha256(onnx.read_bytes()).digest(),
        settings_hash=digest,
        verifier=ZERO_ADDRESS,
        input_binding=INPUT_HASHED,
        commitment_index=0,
        output_offset=0,
        output_length=0,
        instance_count=0,
        proof_modes=MODES_REEXECUTION,
        audit_rate_bps=audit_rate_bps,
        batch_size=1,
    )


def deploy_token_market(
    w3: Web3,
    deployer_key: str | bytes,
    deployment: Deployment,
    *,
    challenge_window: int = 600,
    vote_window: int = 600,
    challenge_bond: int = 10**18,
    challenger_reward_bps: int = 5_000,
    artifacts_dir: Path | None = None,
) -> str:
    """Deploy a ``TokenMarket`` over ``deployment``'s token and Staking and authorise it there (at
    once before anyone staked; after that Staking's ``MARKET_DELAY`` applies). The deployer (the
    Staking owner) owns it. Returns its address; :data:`TOKEN_MARKET_KEY` names it in
    ``deployment.extra``."""
    sender = TxSender(w3, deployer_key)
    named = {
        "token": deployment.token,
        "staking": deployment.staking,
        "registry": deployment.registry,
        "owner": sender.address,
        "challenge_window": challenge_window,
        "vote_window": vote_window,
        "challenge_bond": challenge_bond,
        "challenger_reward_bps": challenger_reward_bps,
    }
    address, _ = deploy_artifact(sender, "TokenMarket", named=named, artifacts_dir=artifacts_dir)
    Staking(w3, deployment.staking, sender=sender, artifacts_dir=artifacts_dir).set_market(address, True)
    deployment.extra[TOKEN_MARKET_KEY] = Web3.to_checksum_address(address)
    return Web3.to_checksum_address(address)
