// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Test} from "./Test.sol";
import {TestToken} from "../../src/TestToken.sol";
import {Staking} from "../../src/Staking.sol";
import {TokenMarket} from "../../src/TokenMarket.sol";
import {ModelRegistry} from "../../src/ModelRegistry.sol";
import {ModelInfo, MODES_REEXECUTION} from "../../src/interfaces/IModelRegistry.sol";
import {TokenModelConfig, TokenQuote} from "../../src/interfaces/ITokenMarket.sol";

/// @notice A token, Staking and a TokenMarket authorised in it; a staked provider with a known key, three staked
/// re-executors (quorum 2), a funded requester and challenger. The token model: bytes + EOS (vocab 257, EOS 256).
abstract contract TokenFixture is Test {
    uint256 internal constant STAKE = 100e18;
    uint256 internal constant FUNDS = 1000e18;
    uint32 internal constant EOS = 256;
    uint32 internal constant CHALLENGE_WINDOW = 600;
    uint32 internal constant VOTE_WINDOW = 600;
    uint96 internal constant BOND = 1e18;
    // the registry's ids of the token model, served unaudited and audited (set by `_deploy`)
    bytes32 internal MODEL;
    bytes32 internal AUDITED;

    TestToken internal token;
    Staking internal staking;
    TokenMarket internal market;
    ModelRegistry internal registry;

    address internal owner = makeAddr("owner");
    address internal requester = makeAddr("requester");
    address internal challenger = makeAddr("challenger");
    address internal stranger = makeAddr("stranger");
    address internal provider;
    uint256 internal providerKey;
    address[3] internal reexecutors;

    function _deploy() internal {
        (provider, providerKey) = makeKey("token-provider");
        reexecutors = [makeAddr("reexecutor1"), makeAddr("reexecutor2"), makeAddr("reexecutor3")];
        token = new TestToken("Tender USD", "TUSD", 18);
        staking = new Staking(token, owner, 7 days, 1e15);
        registry = new ModelRegistry();
        market = new TokenMarket(token, staking, registry, owner, CHALLENGE_WINDOW, VOTE_WINDOW, BOND, 5000);
        MODEL = registry.register(_tokenModel(0));
        AUDITED = registry.register(_tokenModel(10_000));
        vm.startPrank(owner);
        staking.setMarket(address(market), true);
        market.setTokenModel(MODEL, _config(0));
        market.setTokenModel(AUDITED, _config(10_000));
        for (uint256 i; i < 3; ++i) {
            market.setReexecutor(MODEL, reexecutors[i], true);
            market.setReexecutor(AUDITED, reexecutors[i], true);
        }
        vm.stopPrank();
        address[4] memory stakers = [provider, reexecutors[0], reexecutors[1], reexecutors[2]];
        for (uint256 i; i < stakers.length; ++i) {
            token.mint(stakers[i], STAKE);
            vm.startPrank(stakers[i]);
            token.approve(address(staking), type(uint256).max);
            staking.stake(STAKE);
            vm.stopPrank();
        }
        address[3] memory payers = [requester, challenger, stranger];
        for (uint256 i; i < payers.length; ++i) {
            token.mint(payers[i], FUNDS);
            vm.prank(payers[i]);
            token.approve(address(market), type(uint256).max);
        }
    }

    /// @dev The token model's registry record: the re-execution tier, its ONNX file and audit share.
    function _tokenModel(uint16 auditRateBps) internal pure returns (ModelInfo memory) {
        return ModelInfo({
            onnxSha256: sha256("lm.onnx"),
            settingsHash: keccak256("bytes + EOS tokenizer"),
            verifier: address(0),
            inputBinding: 0,
            commitmentIndex: 0,
            outputOffset: 0,
            outputLength: 0,
            instanceCount: 0,
            proofModes: MODES_REEXECUTION,
            auditRateBps: auditRateBps,
            batchSize: 1,
            owner: address(0)
        });
    }

    function _config(uint16 auditRateBps) internal pure returns (TokenModelConfig memory) {
        return TokenModelConfig({
            eosId: EOS,
            vocabSize: 257,
            maxTokens: 1024,
            auditRateBps: auditRateBps,
            stakeMultiple: 19,
            quorum: 2,
            minReexecutorStake: 10e18
        });
    }

    /// @dev 64 tokens at 0.02 token per 1k (escrow 0.00128 token).
    function _quote() internal view returns (TokenQuote memory) {
        return TokenQuote({
            requester: requester,
            provider: provider,
            modelId: MODEL,
            requestHash: keccak256("prompt"),
            maxTokens: 64,
            pricePer1k: 2e16,
            latency: 60,
            expiry: uint64(block.timestamp + 30),
            salt: 1
        });
    }

    function _sign(TokenQuote memory q, uint256 key) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, market.hashQuote(q));
        return abi.encodePacked(r, s, v);
    }

    function _open(TokenQuote memory q) internal returns (bytes32 jobId) {
        bytes memory sig = _sign(q, providerKey);
        vm.prank(q.requester);
        jobId = market.open(q, sig);
    }

    /// @dev `n` ids (uint32 big-endian each): 97, 98, ... with EOS last when `eos`.
    function _tokens(uint256 n, bool eos) internal pure returns (bytes memory out) {
        for (uint256 i; i < n; ++i) {
            uint32 id = eos && i + 1 == n ? EOS : uint32(97 + i % 26);
            out = abi.encodePacked(out, id);
        }
    }

    function _deliver(bytes32 jobId, bytes memory tokens) internal {
        vm.prank(provider);
        market.deliver(jobId, tokens);
    }
}
