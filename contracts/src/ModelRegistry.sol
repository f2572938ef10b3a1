// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {
    IModelRegistry,
    ModelInfo,
    ModelLayout,
    INPUT_HASHED,
    INPUT_POLYCOMMIT,
    MODES_REEXECUTION
} from "./interfaces/IModelRegistry.sol";
import {LayoutWord} from "./libraries/LayoutWord.sol";

/// @title ModelRegistry
/// @notice Append-only registry of models. Records never change: a new model version is a new id.
contract ModelRegistry is IModelRegistry {
    mapping(bytes32 modelId => ModelInfo) private _models;

    /// @inheritdoc IModelRegistry
    function register(ModelInfo calldata info) external returns (bytes32 modelId) {
        if (info.proofModes == MODES_REEXECUTION) {
            _checkReexecution(info);
        } else {
            if (info.verifier == address(0)) revert ZeroVerifier();
            if (info.verifier.code.length == 0) revert VerifierHasNoCode(info.verifier);
            _checkLayout(info);
            if (info.proofModes == 0 || info.proofModes > 3) revert BadProofModes(info.proofModes);
        }
        if (info.auditRateBps > 10_000) revert BadAuditRate(info.auditRateBps);

        ModelInfo memory record = info;
        record.owner = msg.sender;
        modelId = keccak256(abi.encode(msg.sender, record));
        // every record has a non-zero proofModes: it marks the id as taken
        if (_models[modelId].proofModes != 0) revert DuplicateModel(modelId);
        _models[modelId] = record;
        emit ModelRegistered(modelId, msg.sender, record);
    }

    /// @inheritdoc IModelRegistry
    function computeModelId(address registrant, ModelInfo calldata info) external pure returns (bytes32) {
        ModelInfo memory record = info;
        record.owner = registrant;
        return keccak256(abi.encode(registrant, record));
    }

    /// @inheritdoc IModelRegistry
    function model(bytes32 modelId) external view returns (ModelInfo memory info) {
        info = _models[modelId];
        if (info.proofModes == 0) revert UnknownModel(modelId);
    }

    /// @inheritdoc IModelRegistry
    function isRegistered(bytes32 modelId) external view returns (bool) {
        return _models[modelId].proofModes != 0;
    }

    /// @inheritdoc IModelRegistry
    function proofModesOf(bytes32 modelId) external view returns (uint8) {
        return _models[modelId].proofModes;
    }

    /// @inheritdoc IModelRegistry
    function recordWordAndModesOf(bytes32 modelId) external view returns (uint256 word, uint8 proofModes) {
        ModelInfo storage m = _models[modelId];
        assembly ("memory-safe") {
            // the record's third word: verifier .. batchSize, packed in declaration order (see LayoutWord)
            word := sload(add(m.slot, 2))
        }
        proofModes = LayoutWord.proofModes(word);
    }

    /// @inheritdoc IModelRegistry
    function layoutOf(bytes32 modelId) external view returns (ModelLayout memory layout) {
        ModelInfo storage m = _models[modelId];
        layout = ModelLayout(
            m.verifier,
            m.inputBinding,
            m.commitmentIndex,
            m.outputOffset,
            m.outputLength,
            m.instanceCount,
            m.auditRateBps,
            m.batchSize
        );
        if (layout.verifier == address(0)) revert UnknownModel(modelId);
    }

    /// @dev A re-execution model is its ONNX file and settings hash: no verifier, no instance layout, one job each.
    function _checkReexecution(ModelInfo calldata info) private pure {
        if (info.verifier != address(0)) revert VerifierOnReexecutionModel(info.verifier);
        if (info.batchSize != 1) revert BadBatchSize(info.batchSize);
        if (
            info.inputBinding != INPUT_HASHED || info.commitmentIndex != 0 || info.outputOffset != 0
                || info.outputLength != 0 || info.instanceCount != 0
        ) {
            _revertBadLayout(info);
        }
    }

    /// @dev The `batchSize` output ranges (one job's `outputLength` each, back to back from `outputOffset`) must
    /// lie inside the instance vector; a hashed input's `batchSize` commitments (from `commitmentIndex`) too,
    /// outside the outputs; a polycommit input has no instance (`commitmentIndex` 0).
    function _checkLayout(ModelInfo calldata info) private pure {
        uint256 batch = info.batchSize;
        if (batch == 0) revert BadBatchSize(info.batchSize);
        uint256 end = uint256(info.outputOffset) + batch * info.outputLength;
        bool badInput;
        if (info.inputBinding == INPUT_HASHED) {
            uint256 first = info.commitmentIndex;
            uint256 last = first + batch; // one past the last commitment
            bool overlaps = first < end && info.outputOffset < last;
            badInput = last > info.instanceCount || overlaps;
        } else {
            badInput = info.inputBinding != INPUT_POLYCOMMIT || info.commitmentIndex != 0;
        }
        if (info.outputLength == 0 || end > info.instanceCount || badInput) {
            _revertBadLayout(info);
        }
    }

    function _revertBadLayout(ModelInfo calldata info) private pure {
        revert BadLayout(
            info.inputBinding, info.commitmentIndex, info.outputOffset, info.outputLength, info.instanceCount
        );
    }
}
