// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {TokenFixture} from "../utils/TokenFixture.sol";
import {TokenHandler} from "./handlers/TokenHandler.sol";
import {TokenJob, JobState} from "../../src/interfaces/ITokenMarket.sol";

/// @notice Invariants of the token market under `TokenHandler`: the market holds exactly what came in minus what
/// went out, and that covers every credit plus the escrows and bonds of open jobs; a job never pays more than its
/// escrow; Staking's lock is exactly the stakes of jobs not yet terminal; a faithful vote never slashes.
/// forge-config: default.invariant.runs = 24
/// forge-config: default.invariant.depth = 200
/// forge-config: deep.invariant.runs = 512
/// forge-config: deep.invariant.depth = 128
contract TokenInvariantsTest is TokenFixture {
    TokenHandler internal handler;

    function setUp() public {
        _deploy();
        // half the deliveries audited: a model of the registry's re-execution tier with that share
        bytes32 halfAudited = registry.register(_tokenModel(5000));
        vm.startPrank(owner);
        market.setTokenModel(halfAudited, _config(5000));
        for (uint256 i; i < reexecutors.length; ++i) {
            market.setReexecutor(halfAudited, reexecutors[i], true);
        }
        vm.stopPrank();
        handler = new TokenHandler(
            token, staking, market, requester, provider, providerKey, challenger, reexecutors, halfAudited
        );
        bytes4[] memory selectors = new bytes4[](10);
        selectors[0] = TokenHandler.open.selector;
        selectors[1] = TokenHandler.deliver.selector;
        selectors[2] = TokenHandler.challenge.selector;
        selectors[3] = TokenHandler.vote.selector;
        selectors[4] = TokenHandler.drawAudit.selector;
        selectors[5] = TokenHandler.finalize.selector;
        selectors[6] = TokenHandler.expire.selector;
        selectors[7] = TokenHandler.withdraw.selector;
        selectors[8] = TokenHandler.warp.selector;
        selectors[9] = TokenHandler.open.selector;
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    function invariant_tokensConserved() public view {
        assertEq(token.balanceOf(address(market)), handler.ghost_in() - handler.ghost_out());
    }

    function invariant_holdingsCoverCreditsEscrowsAndBonds() public view {
        uint256 held;
        uint256 locked;
        for (uint256 i; i < handler.jobCount(); ++i) {
            TokenJob memory j = market.job(handler.jobs(i));
            bool open = j.state == JobState.Awarded || j.state == JobState.Delivered
                || j.state == JobState.Challenged;
            if (open) {
                held += j.escrow + j.bond;
                locked += j.stakeLocked;
            }
            assertGe(j.escrow, uint256(j.pricePer1k) * j.delivered / 1000);
            assertGe(j.maxTokens, j.delivered);
        }
        uint256 credits = market.owed(requester) + market.owed(provider) + market.owed(challenger);
        assertEq(token.balanceOf(address(market)), held + credits);
        assertEq(staking.lockedOf(provider), locked);
    }

    /// @dev The handler's actions reach a settlement (a long campaign reaches every end; a short run may not).
    function test_handlerReachesSettlement() public {
        handler.open(64, 2e16);
        assertEq(handler.jobCount(), 1);
        handler.deliver(0, 0, 0);
        assertTrue(market.job(handler.jobs(0)).state == JobState.Delivered);
        handler.warp(240);
        handler.warp(240);
        handler.warp(240);
        handler.finalize(0);
        handler.finalize(1);
        JobState s = market.job(handler.jobs(0)).state;
        assertTrue(s == JobState.Settled || s == JobState.Challenged);
    }

    function invariant_faithfulVoteNeverSlashes() public view {
        assertEq(handler.ghost_slashedWithoutQuorum(), 0);
    }
}
