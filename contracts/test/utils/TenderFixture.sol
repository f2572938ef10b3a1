// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Test} from "./Test.sol";
import {TermsRecorder} from "./Terms.sol";
import {IntentBuilder} from "./IntentBuilder.sol";
import {MockVerifier} from "../mocks/MockVerifier.sol";
import {TestToken} from "../../src/TestToken.sol";
import {ModelRegistry} from "../../src/ModelRegistry.sol";
import {Staking} from "../../src/Staking.sol";
import {ModelInfo, INPUT_HASHED, INPUT_POLYCOMMIT} from "../../src/interfaces/IModelRegistry.sol";
import {MarketParams} from "../../src/MarketStructs.sol";

/// @notice Shared deployment: token, registry (three models), staking, funded actors.
abstract contract TenderFixture is Test, TermsRecorder {
    uint64 internal constant UNSTAKING = 1 days;
    uint256 internal constant STAKE = 100e18;
    uint256 internal constant FUNDS = 1000e18;

    TestToken internal token;
    ModelRegistry internal registry;
    Staking internal staking;
    MockVerifier internal verifier;

    address internal owner = makeAddr("owner");
    address internal treasury = makeAddr("treasury");
    address internal requester;
    uint256 internal requesterKey;
    address internal provider = makeAddr("provider");
    address internal provider2 = makeAddr("provider2");
    address internal provider3 = makeAddr("provider3");
    address internal solver = makeAddr("solver");
    address internal challenger = makeAddr("challenger");
    address internal stranger = makeAddr("stranger");

    /// zk + optimistic, no audits; instances = [commitment, out0, out1]
    bytes32 internal modelId;
    /// zk + optimistic, every optimistic delivery audited
    bytes32 internal auditedModelId;
    /// zk only
    bytes32 internal zkOnlyModelId;

    function _deployCore() internal {
        // the reverse jobs' terms are read back from `IntentPosted` (`TermsRecorder`)
        vm.recordLogs();
        (requester, requesterKey) = makeKey("requester");
        token = new TestToken("Tender USD", "TUSD", 18);
        registry = new ModelRegistry();
        verifier = new MockVerifier();
        staking = new Staking(token, owner, UNSTAKING, 1e15);
        modelId = registry.register(_modelInfo(3, 0));
        auditedModelId = registry.register(_modelInfo(3, 10_000));
        zkOnlyModelId = registry.register(_modelInfo(1, 0));

        address[6] memory actors = [requester, provider, provider2, provider3, challenger, stranger];
        for (uint256 i; i < actors.length; ++i) {
            token.mint(actors[i], FUNDS);
        }
        address[3] memory providers = [provider, provider2, provider3];
        for (uint256 i; i < providers.length; ++i) {
            vm.startPrank(providers[i]);
            token.approve(address(staking), type(uint256).max);
            staking.stake(STAKE);
            staking.setSolver(solver, true);
            vm.stopPrank();
        }
    }

    function _modelInfo(uint8 proofModes, uint16 auditRateBps) internal view returns (ModelInfo memory) {
        return ModelInfo({
            onnxSha256: keccak256("model.onnx"),
            settingsHash: keccak256("settings.json"),
            verifier: address(verifier),
            inputBinding: INPUT_HASHED,
            commitmentIndex: 0,
            outputOffset: 1,
            outputLength: 2,
            instanceCount: 3,
            proofModes: proofModes,
            auditRateBps: auditRateBps,
            batchSize: 1,
            owner: address(0)
        });
    }

    function _defaultParams() internal pure returns (MarketParams memory) {
        return MarketParams({
            feeBps: 100,
            stakeMultiple: 2,
            challengerRewardBps: 2000,
            challengeWindow: 1800,
            proofWindow: 900,
            maxCallbackGas: 500_000,
            challengeBond: 1e17
        });
    }

    /// @dev A market added after the first stake waits MARKET_DELAY: skip to when it is active.
    function _activate(Staking s, address market) internal {
        uint256 activeAt = s.marketActiveAt(market);
        if (activeAt > block.timestamp) vm.warp(activeAt);
    }

    function _output() internal pure returns (uint256[] memory out) {
        out = new uint256[](2);
        out[0] = 7;
        out[1] = 11;
    }

    /// @dev The mock verifier's proof for the default layout.
    function _proof(uint256 commitment, uint256[] memory output) internal pure returns (bytes memory) {
        uint256[] memory instances = new uint256[](3);
        instances[0] = commitment;
        instances[1] = output[0];
        instances[2] = output[1];
        return abi.encode(instances);
    }
}
