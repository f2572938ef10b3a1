// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ModelLayout} from "../interfaces/IModelRegistry.sol";

/// @title LayoutWord
/// @notice A model's layout and proof modes in one word, as a quoted job carries it (`QuotedJob.layout`): the
/// registry's own storage word of the record (`ModelInfo` from `verifier` to `batchSize`, packed by solc):
/// bits 0-159 verifier, 160-167 inputBinding, 168-175 commitmentIndex, 176-183 outputOffset, 184-199
/// outputLength, 200-215 instanceCount, 216-223 proofModes, 224-239 auditRateBps, 240-247 batchSize.
/// `ModelRegistry.recordWordAndModesOf` returns it with one `sload` (pinned against `layoutOf` by the registry's tests);
/// the quote market unpacks it at delivery (no registry call: models are immutable, and the job's word binds it).
library LayoutWord {
    function pack(ModelLayout memory m, uint8 proofModes) internal pure returns (uint256) {
        return uint256(uint160(m.verifier)) | uint256(m.inputBinding) << 160 | uint256(m.commitmentIndex)
            << 168 | uint256(m.outputOffset) << 176 | uint256(m.outputLength) << 184
            | uint256(m.instanceCount) << 200 | uint256(proofModes) << 216 | uint256(m.auditRateBps) << 224
            | uint256(m.batchSize) << 240;
    }

    function proofModes(uint256 w) internal pure returns (uint8) {
        return uint8(w >> 216);
    }

    function unpack(uint256 w) internal pure returns (ModelLayout memory m) {
        m.verifier = address(uint160(w));
        m.inputBinding = uint8(w >> 160);
        m.commitmentIndex = uint8(w >> 168);
        m.outputOffset = uint8(w >> 176);
        m.outputLength = uint16(w >> 184);
        m.instanceCount = uint16(w >> 200);
        m.auditRateBps = uint16(w >> 224);
        m.batchSize = uint8(w >> 240);
    }
}
