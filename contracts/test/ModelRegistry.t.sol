// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {TenderFixture} from "./utils/TenderFixture.sol";
import {ModelRegistry} from "../src/ModelRegistry.sol";
import {IModelRegistry, ModelInfo, ModelLayout} from "../src/interfaces/IModelRegistry.sol";

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
        assertEq(registry.proofModesOf(id), 2);
        ModelLayout memory l = registry.layoutOf(id);
        assertEq(l.verifier, address(verifier));
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
                    bad[i].commitmentIndex,
                    bad[i].outputOffset,
                    bad[i].outputLength,
                    bad[i].instanceCount
                )
            );
        }
    }

    function test_register_revertsOnBadProofModes() public {
        _expectRejected(_modelInfo(0, 0), abi.encodeWithSelector(IModelRegistry.BadProofModes.selector, 0));
        _expectRejected(_modelInfo(4, 0), abi.encodeWithSelector(IModelRegistry.BadProofModes.selector, 4));
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

    function testFuzz_register_acceptsExactlyFittingLayouts(uint8 ci, uint8 oo, uint16 ol, uint16 ic) public {
        ic = uint16(bound(ic, 0, 600));
        ModelInfo memory info = _modelInfo(3, 0);
        (info.commitmentIndex, info.outputOffset, info.outputLength, info.instanceCount) = (ci, oo, ol, ic);
        uint256 end = uint256(oo) + ol;
        bool ok = ol > 0 && ci < ic && end <= ic && !(ci >= oo && ci < end);
        vm.prank(stranger);
        if (!ok) vm.expectRevert(abi.encodeWithSelector(IModelRegistry.BadLayout.selector, ci, oo, ol, ic));
        registry.register(info);
    }
}
