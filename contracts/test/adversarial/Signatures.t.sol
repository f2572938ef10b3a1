// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {AdversarialBase} from "./AdversarialBase.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {IMarket, IMarketEvents} from "../../src/interfaces/IMarket.sol";
import {Intent, JobState} from "../../src/MarketStructs.sol";

/// @notice Forged signatures. The fixed cases (high-s twin of a valid signature, recovery to the zero
/// address, another key, malformed bytes) are unit tests in BaseMarket.t.sol (`test_submitSigned_*`);
/// this fuzzes arbitrary (r, s, v) and the malleable twin of every valid signature.
contract SignaturesTest is AdversarialBase {
    using IntentBuilder for Intent;

    uint256 internal constant SECP256K1_N =
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    World internal w;

    function setUp() public {
        _deployCore();
        w = _world(IERC20(address(token)), token.mint);
    }

    /// forge-config: default.fuzz.runs = 256
    /// forge-config: deep.fuzz.runs = 20000
    function testFuzz_submitSigned_refusesArbitrarySignature(bytes32 r, bytes32 s, uint8 v, uint256 nonce)
        public
    {
        Intent memory intent = _dutchIntent().withNonce(nonce);
        bytes32 digest = w.dutch.hashIntent(intent);
        vm.assume(ecrecover(digest, v, r, s) != requester);
        _expectRefused(intent, abi.encodePacked(r, s, v));
    }

    /// forge-config: default.fuzz.runs = 256
    /// forge-config: deep.fuzz.runs = 20000
    function testFuzz_submitSigned_refusesMalleableTwin(uint256 nonce) public {
        Intent memory intent = _dutchIntent().withNonce(nonce);
        bytes32 digest = w.dutch.hashIntent(intent);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(requesterKey, digest);
        bytes32 highS = bytes32(SECP256K1_N - uint256(s));
        uint8 flipped = v == 27 ? 28 : 27;
        assertEq(ecrecover(digest, flipped, r, highS), requester, "twin recovers the signer");
        _expectRefused(intent, abi.encodePacked(r, highS, flipped));
        // the canonical one still works, once
        w.dutch.submitSigned(intent, abi.encodePacked(r, s, v));
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NonceAlreadyUsed.selector, requester, nonce));
        w.dutch.submitSigned(intent, abi.encodePacked(r, s, v));
    }

    function _expectRefused(Intent memory intent, bytes memory sig) internal {
        bytes32 digest = w.dutch.hashIntent(intent);
        uint256 before = token.balanceOf(requester);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidSignature.selector, requester, digest));
        w.dutch.submitSigned(intent, sig);
        assertEq(uint256(w.dutch.job(digest).state), uint256(JobState.None));
        assertEq(token.balanceOf(requester), before);
        assertFalse(w.dutch.isNonceUsed(requester, intent.nonce));
    }
}
