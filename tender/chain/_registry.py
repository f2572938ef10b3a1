"""Models and their verifiers (``ModelRegistry``)."""

from __future__ import annotations

from web3.types import TxReceipt

from tender.chain._base import ContractWrapper
from tender.chain._structs import ModelInfo


class Registry(ContractWrapper):
    """The append-only ``ModelRegistry``."""

    ARTIFACT = "ModelRegistry"

    def register(self, info: ModelInfo) -> TxReceipt:
        """Register ``info`` (the sender becomes its owner); its id is ``info.model_id(sender)``."""
        return self._send(self.fn.register(info.to_abi()))

    def register_model(self, info: ModelInfo) -> bytes:
        """Register ``info`` and return its model id (idempotent: an existing record is reused)."""
        model_id = info.model_id(self._me())
        if not self.is_registered(model_id):
            self.register(info)
        return model_id

    def compute_model_id(self, registrant: str, info: ModelInfo) -> bytes:
        return bytes(self._call(self.fn.computeModelId(registrant, info.to_abi())))

    def model(self, model_id: bytes) -> ModelInfo:
        """The record of ``model_id``; raises ``ContractRevert("UnknownModel")`` if none."""
        return ModelInfo.from_abi(self._call(self.fn.model(model_id)))

    def is_registered(self, model_id: bytes) -> bool:
        return bool(self._call(self.fn.isRegistered(model_id)))

    def proof_modes_of(self, model_id: bytes) -> int:
        return int(self._call(self.fn.proofModesOf(model_id)))
