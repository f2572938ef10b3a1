// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {TenderFixture} from "./utils/TenderFixture.sol";
import {ModelRegistry} from "../src/ModelRegistry.sol";
import {LayoutWord} from "../src/libraries/LayoutWord.sol";
import {
    IModelRegistry,
    ModelInfo,
    ModelLayout,
    INPUT_HASHED,
    INPUT_POLYCOMMIT,
    MODES_REEXECUTION
} from "../src/interfaces/IModelRegistry.sol";

contract ModelRegistryTest is TenderFixture {
    function setUp() public {
        _deployCore();
    }

    function _expectRejected(ModelInfo memory info, bytes memory err) internal {
        bytes32 id = registry.computeModelId(stranger, info);
        vm.prank(stranger);
        vm.expectRevert(err);
        registry.register(info);
        assertFalse(registry.isRegistered(id));
    }

    function test_register_storesRecord() public {
        ModelInfo memory info = _modelInfo(2, 500);
        info.owner = requester; // ignored
        bytes32 expected = registry.computeModelId(stranger, info);
        ModelInfo memory stored = info;
        stored.owner = stranger;
        vm.expectEmit(address(registry));
        emit IModelRegistry.ModelRegistered(expected, stranger, stored);
        vm.prank(stranger);
        bytes32 id = registry.register(info);
        assertEq(id, expected);
        assertTrue(registry.isRegistered(id));
        ModelInfo memory m = registry.model(id);
        assertEq(m.owner, stranger);
        assertEq(m.verifier, address(verifier));
        assertEq(m.onnxSha256, keccak256("model.onnx"));
        assertEq(m.auditRateBps, 500);
        assertEq(m.inputBinding, INPUT_HASHED);
        assertEq(registry.proofModesOf(id), 2);
        ModelLayout memory l = registry.layoutOf(id);
        assertEq(l.verifier, address(verifier));
        assertEq(l.inputBinding, INPUT_HASHED);
        assertEq(l.commitmentIndex, 0);
        assertEq(l.outputOffset, 1);
        assertEq(l.outputLength, 2);
        assertEq(l.instanceCount, 3);
        assertEq(l.auditRateBps, 500);
    }

    function test_register_sameRecordByAnotherRegistrantIsAnotherId() public {
        vm.prank(stranger);
        bytes32 a = registry.register(_modelInfo(3, 0));
        assertTrue(a != modelId);
    }

    function test_register_revertsOnDuplicate() public {
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.DuplicateModel.selector, modelId));
        registry.register(_modelInfo(3, 0));
    }

    function test_register_revertsOnZeroVerifier() public {
        ModelInfo memory info = _modelInfo(3, 0);
        info.verifier = address(0);
        _expectRejected(info, abi.encodeWithSelector(IModelRegistry.ZeroVerifier.selector));
    }

    function test_register_revertsOnVerifierWithoutCode() public {
        ModelInfo memory info = _modelInfo(3, 0);
        info.verifier = stranger;
        _expectRejected(info, abi.encodeWithSelector(IModelRegistry.VerifierHasNoCode.selector, stranger));
    }

    function test_register_revertsOnBadLayout() public {
        ModelInfo[4] memory bad;
        for (uint256 i; i < 4; ++i) {
            bad[i] = _modelInfo(3, 0);
        }
        bad[0].outputLength = 0; // no output
        bad[1].commitmentIndex = 3; // commitment outside
        bad[2].outputLength = 3; // output runs past the end
        bad[3].commitmentIndex = 2; // commitment inside the output range
        for (uint256 i; i < 4; ++i) {
            _expectRejected(
                bad[i],
                abi.encodeWithSelector(
                    IModelRegistry.BadLayout.selector,
                    bad[i].inputBinding,
                    bad[i].commitmentIndex,
                    bad[i].outputOffset,
                    bad[i].outputLength,
                    bad[i].instanceCount
                )
            );
        }
    }

    function _polycommitInfo() internal view returns (ModelInfo memory info) {
        info = _modelInfo(3, 0);
        // the output fills the whole vector, index 0 included: no commitment instance
        (info.inputBinding, info.commitmentIndex, info.outputOffset, info.outputLength, info.instanceCount) =
            (INPUT_POLYCOMMIT, 0, 0, 3, 3);
    }

    function _badLayout(ModelInfo memory info) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(
            IModelRegistry.BadLayout.selector,
            info.inputBinding,
            info.commitmentIndex,
            info.outputOffset,
            info.outputLength,
            info.instanceCount
        );
    }

    function test_register_acceptsPolycommitLayout() public {
        ModelInfo memory info = _polycommitInfo();
        vm.prank(stranger);
        bytes32 id = registry.register(info);
        assertEq(registry.model(id).inputBinding, INPUT_POLYCOMMIT);
        ModelLayout memory l = registry.layoutOf(id);
        assertEq(l.verifier, address(verifier));
        assertEq(l.inputBinding, INPUT_POLYCOMMIT);
        assertEq(l.commitmentIndex, 0);
        assertEq(l.outputOffset, 0);
        assertEq(l.outputLength, 3);
        assertEq(l.instanceCount, 3);
        // the same layout with a hashed input would put the commitment inside the output
        info.inputBinding = INPUT_HASHED;
        _expectRejected(info, _badLayout(info));
    }

    function test_register_revertsOnPolycommitWithCommitmentIndex() public {
        ModelInfo memory info = _polycommitInfo();
        (info.commitmentIndex, info.outputOffset, info.outputLength, info.instanceCount) = (1, 0, 1, 2);
        _expectRejected(info, _badLayout(info));
        // an output that does not fit is refused as for a hashed input
        info = _polycommitInfo();
        info.outputLength = 4;
        _expectRejected(info, _badLayout(info));
        info = _polycommitInfo();
        info.outputLength = 0;
        _expectRejected(info, _badLayout(info));
    }

    function test_register_revertsOnUnknownInputBinding() public {
        uint8[3] memory bindings = [2, 3, type(uint8).max];
        for (uint256 i; i < bindings.length; ++i) {
            // a layout that fits for either known binding
            ModelInfo memory info = _modelInfo(3, 0);
            info.inputBinding = bindings[i];
            _expectRejected(info, _badLayout(info));
            info = _polycommitInfo();
            info.inputBinding = bindings[i];
            _expectRejected(info, _badLayout(info));
        }
    }

    function test_register_revertsOnBadProofModes() public {
        _expectRejected(_modelInfo(0, 0), abi.encodeWithSelector(IModelRegistry.BadProofModes.selector, 0));
        uint8[4] memory bad = [5, 6, 7, 8];
        for (uint256 i; i < bad.length; ++i) {
            // the re-execution tier does not mix with the proof tiers, and no other bit exists
            _expectRejected(
                _modelInfo(bad[i], 0), abi.encodeWithSelector(IModelRegistry.BadProofModes.selector, bad[i])
            );
        }
    }

    function _reexecutionInfo() internal pure returns (ModelInfo memory info) {
        info.onnxSha256 = sha256("lm.onnx");
        info.settingsHash = keccak256("tokenizer");
        info.proofModes = MODES_REEXECUTION;
        info.auditRateBps = 2500;
        info.batchSize = 1;
    }

    function test_register_reexecutionTier_storesARecordWithoutVerifierOrLayout() public {
        ModelInfo memory info = _reexecutionInfo();
        vm.prank(stranger);
        bytes32 id = registry.register(info);
        assertEq(id, registry.computeModelId(stranger, info));
        assertTrue(registry.isRegistered(id));
        assertEq(registry.proofModesOf(id), MODES_REEXECUTION);
        ModelInfo memory m = registry.model(id);
        assertEq(m.onnxSha256, sha256("lm.onnx"));
        assertEq(m.verifier, address(0));
        assertEq(m.auditRateBps, 2500);
        assertEq(m.owner, stranger);
        // nothing to verify: no layout, and a market reading the record word sees no proof tier
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.UnknownModel.selector, id));
        registry.layoutOf(id);
        (, uint8 modes) = registry.recordWordAndModesOf(id);
        assertEq(modes, MODES_REEXECUTION);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.DuplicateModel.selector, id));
        registry.register(info);
    }

    function test_register_reexecutionTier_refusesAVerifierALayoutOrABatch() public {
        ModelInfo memory info = _reexecutionInfo();
        info.verifier = address(verifier);
        _expectRejected(
            info,
            abi.encodeWithSelector(IModelRegistry.VerifierOnReexecutionModel.selector, address(verifier))
        );
        info = _reexecutionInfo();
        info.batchSize = 4;
        _expectRejected(info, abi.encodeWithSelector(IModelRegistry.BadBatchSize.selector, 4));
        info = _reexecutionInfo();
        info.instanceCount = 3;
        info.outputLength = 1;
        _expectRejected(info, _badLayout(info));
        info = _reexecutionInfo();
        info.inputBinding = INPUT_POLYCOMMIT;
        _expectRejected(info, _badLayout(info));
        info = _reexecutionInfo();
        info.auditRateBps = 10_001;
        _expectRejected(info, abi.encodeWithSelector(IModelRegistry.BadAuditRate.selector, 10_001));
    }

    function test_register_revertsOnBadAuditRate() public {
        _expectRejected(
            _modelInfo(3, 10_001), abi.encodeWithSelector(IModelRegistry.BadAuditRate.selector, 10_001)
        );
    }

    function test_model_revertsWhenUnknown() public {
        bytes32 id = keccak256("nope");
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.UnknownModel.selector, id));
        registry.model(id);
        vm.expectRevert(abi.encodeWithSelector(IModelRegistry.UnknownModel.selector, id));
        registry.layoutOf(id);
        assertFalse(registry.isRegistered(id));
        assertEq(registry.proofModesOf(id), 0);
    }

    /// @dev The word the quote market keeps in a job is the registry's record, field for field, whatever the
    /// layout (a storage-packing change would break delivery: this pins it); an unknown model's word is 0.
    function testFuzz_recordWordAndModesOf_isTheLayoutAndModes(
        uint8 ci,
        uint8 ol,
        uint16 audit,
        uint8 modes,
        uint8 batch
    ) public {
        batch = uint8(bound(batch, 1, 4));
        ol = uint8(bound(ol, 1, 20));
        ci = uint8(bound(ci, 0, 3));
        ModelInfo memory info = _modelInfo(uint8(bound(modes, 1, 3)), uint16(bound(audit, 0, 10_000)));
        (info.commitmentIndex, info.outputOffset, info.outputLength, info.batchSize) =
        (ci, ci + batch, ol, batch);
        info.instanceCount = uint16(ci) + batch + uint16(ol) * batch + 1;
        vm.prank(stranger);
        bytes32 id = registry.register(info);
        (uint256 word, uint8 proofModes) = registry.recordWordAndModesOf(id);
        assertEq(proofModes, registry.proofModesOf(id));
        assertEq(word, LayoutWord.pack(registry.layoutOf(id), proofModes));
        ModelLayout memory back = LayoutWord.unpack(word);
        assertEq(keccak256(abi.encode(back)), keccak256(abi.encode(registry.layoutOf(id))));
        (word, proofModes) = registry.recordWordAndModesOf(keccak256("nope"));
        assertEq(word, 0);
        assertEq(proofModes, 0);
    }

    function testFuzz_register_acceptsExactlyFittingLayouts(uint8 ci, uint8 oo, uint16 ol, uint16 ic) public {
        ic = uint16(bound(ic, 0, 600));
        ModelInfo memory info = _modelInfo(3, 0);
        (info.commitmentIndex, info.outputOffset, info.outputLength, info.instanceCount) = (ci, oo, ol, ic);
        uint256 end = uint256(oo) + ol;
        bool ok = ol > 0 && ci < ic && end <= ic && !(ci >= oo && ci < end);
        vm.prank(stranger);
        if (!ok) vm.expectRevert(_badLayout(info));
        registry.register(info);
    }

    function testFuzz_register_acceptsExactlyFittingLayoutsForEveryBinding(
        uint8 binding,
        uint8 ci,
        uint8 oo,
        uint16 ol,
        uint16 ic
    ) public {
        // mostly the two known bindings, sometimes an unknown one
        binding = uint8(binding % 4 == 3 ? binding : binding % 2);
        ic = uint16(bound(ic, 0, 600));
        // the commitment index at 0 often, so that polycommit layouts can pass
        if (ci % 2 == 0) ci = 0;
        ModelInfo memory info = _modelInfo(3, 0);
        (info.inputBinding, info.commitmentIndex, info.outputOffset, info.outputLength, info.instanceCount) =
            (binding, ci, oo, ol, ic);
        uint256 end = uint256(oo) + ol;
        bool fits = ol > 0 && end <= ic;
        bool ok = binding == INPUT_HASHED
            ? fits && ci < ic && !(ci >= oo && ci < end)
            : binding == INPUT_POLYCOMMIT && fits && ci == 0;
        vm.prank(stranger);
        if (!ok) vm.expectRevert(_badLayout(info));
        bytes32 id = registry.register(info);
        if (ok) assertEq(registry.layoutOf(id).inputBinding, binding);
    }

    // ------------------------------------------------------------------ batch models (issue #17)

    /// @dev The MLP's batch layouts (L = 10 outputs per job, 4 jobs): hashed commitments at 0..3 and outputs
    /// from 4; polycommit outputs from 0.
    function _batchInfo(uint8 binding) internal view returns (ModelInfo memory info) {
        info = _modelInfo(1, 0);
        bool hashed = binding == INPUT_HASHED;
        (info.inputBinding, info.commitmentIndex, info.outputOffset, info.outputLength, info.instanceCount) =
            (binding, 0, hashed ? 4 : 0, 10, hashed ? 44 : 40);
        info.batchSize = 4;
    }

    function test_register_batchModelKeepsItsLayout() public {
        uint8[2] memory bindings = [INPUT_HASHED, INPUT_POLYCOMMIT];
        for (uint256 b; b < 2; ++b) {
            ModelInfo memory info = _batchInfo(bindings[b]);
            vm.prank(stranger);
            bytes32 id = registry.register(info);
            assertEq(registry.model(id).batchSize, 4);
            ModelLayout memory l = registry.layoutOf(id);
            assertEq(l.batchSize, 4);
            assertEq(l.outputLength, 10);
            assertEq(l.instanceCount, info.instanceCount);
        }
    }

    function test_register_refusesBatchSizeZero() public {
        ModelInfo memory info = _modelInfo(1, 0);
        info.batchSize = 0;
        _expectRejected(info, abi.encodeWithSelector(IModelRegistry.BadBatchSize.selector, uint8(0)));
    }

    /// @dev Every job's outputs and (hashed) commitment must fit, apart: a layout valid for one job is not
    /// for four.
    function test_register_refusesBatchLayoutThatDoesNotFit() public {
        ModelInfo[4] memory bad;
        bad[0] = _batchInfo(INPUT_POLYCOMMIT);
        bad[0].instanceCount = 39; // 4 x 10 outputs need 40
        bad[1] = _batchInfo(INPUT_HASHED);
        bad[1].outputOffset = 3; // job 3's commitment (index 3) inside job 0's outputs
        bad[2] = _batchInfo(INPUT_HASHED);
        bad[2].commitmentIndex = 41; // commitments 41..44 past the vector
        bad[3] = _modelInfo(1, 0); // commitment 0, outputs 1..2 of 3: fine alone
        bad[3].batchSize = 2;
        for (uint256 i; i < bad.length; ++i) {
            _expectRejected(bad[i], _badLayout(bad[i]));
        }
    }
}
