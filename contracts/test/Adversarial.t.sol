// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {TenderFixture} from "./utils/TenderFixture.sol";
import {IntentBuilder} from "./utils/IntentBuilder.sol";
import {FeeOnTransferToken} from "./mocks/FeeOnTransferToken.sol";
import {ReentrantToken} from "./mocks/ReentrantToken.sol";
import {ReverseAuctionMarket} from "../src/ReverseAuctionMarket.sol";
import {DutchAuctionMarket} from "../src/DutchAuctionMarket.sol";
import {Staking} from "../src/Staking.sol";
import {IMarket, IMarketEvents} from "../src/interfaces/IMarket.sol";
import {Bid, Intent, JobState, AUCTION_DUTCH, PROOF_OPTIMISTIC} from "../src/MarketStructs.sol";

/// @notice Hostile tokens and edge timing.
contract AdversarialTest is TenderFixture {
    using IntentBuilder for Intent;

    function setUp() public {
        _deployCore();
    }

    function test_post_refusesFeeOnTransferToken() public {
        FeeOnTransferToken fot = new FeeOnTransferToken();
        Staking s = new Staking(fot, owner, UNSTAKING, 1e15);
        ReverseAuctionMarket m = new ReverseAuctionMarket(fot, registry, s, treasury, owner, _defaultParams());
        fot.mint(requester, 10e18);
        vm.prank(requester);
        fot.approve(address(m), type(uint256).max);
        Intent memory intent = IntentBuilder.init(requester, modelId);
        vm.prank(requester);
        vm.expectRevert(
            abi.encodeWithSelector(IMarketEvents.FeeOnTransferToken.selector, 101e16, 101e16 - 101e14)
        );
        m.post(intent);
        assertEq(uint8(m.job(m.hashIntent(intent)).state), uint8(JobState.None));
        assertEq(fot.balanceOf(requester), 10e18);
    }

    /// @dev Settlement moves no token (it credits), so a token hook has nothing to ride on there; the
    /// payout is `withdraw`, and a token that re-enters the market from inside that transfer is stopped by
    /// the guard while the withdrawal itself completes, once.
    function test_deliver_hostileTokenCannotReenter() public {
        ReentrantToken hostile = new ReentrantToken();
        Staking s = new Staking(hostile, owner, UNSTAKING, 1e15);
        ReverseAuctionMarket m =
            new ReverseAuctionMarket(hostile, registry, s, treasury, owner, _defaultParams());
        vm.prank(owner);
        s.setMarket(address(m), true);
        _activate(s, address(m));
        hostile.mint(requester, 10e18);
        hostile.mint(provider, STAKE);
        vm.prank(requester);
        hostile.approve(address(m), type(uint256).max);
        vm.startPrank(provider);
        hostile.approve(address(s), type(uint256).max);
        s.stake(STAKE);
        vm.stopPrank();

        Intent memory intent = IntentBuilder.init(requester, modelId);
        vm.prank(requester);
        bytes32 jobId = m.post(intent);
        _bidOn(m, jobId, provider, Bid(provider, 5e17, 60));
        vm.warp(block.timestamp + 60);
        _awardOn(m, jobId);

        // arm: on the next transfer, try to expire the job from inside the market
        hostile.arm(address(m), abi.encodeCall(IMarket.expire, (jobId)));
        uint256[] memory out = _output();
        vm.prank(provider);
        m.deliver(jobId, out, _proof(intent.inputCommitment, out));
        assertFalse(hostile.attempted(), "settlement moved a token");
        assertEq(uint8(m.job(jobId).state), uint8(JobState.Settled));

        // the payout: the provider's withdrawal transfers, and the hook tries to withdraw again
        hostile.arm(address(m), abi.encodeCall(IMarket.withdraw, ()));
        uint256 before = hostile.balanceOf(provider);
        vm.prank(provider);
        m.withdraw();
        assertTrue(hostile.attempted());
        assertFalse(hostile.succeeded());
        assertEq(bytes4(hostile.revertData()), ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector);
        assertEq(hostile.balanceOf(provider), before + 5e17, "provider paid other than once");
        assertEq(m.owed(provider), 0);
        vm.prank(requester);
        m.withdraw();
        assertEq(hostile.balanceOf(address(m)), m.feesOwed());
    }

    /// @dev An honest optimistic delivery that is challenged: the provider proves and takes the bond.
    function test_challenge_againstHonestDeliveryLosesBond() public {
        DutchAuctionMarket m =
            new DutchAuctionMarket(token, registry, staking, treasury, owner, _defaultParams());
        vm.prank(owner);
        staking.setMarket(address(m), true);
        _activate(staking, address(m));
        vm.prank(requester);
        token.approve(address(m), type(uint256).max);
        vm.prank(challenger);
        token.approve(address(m), type(uint256).max);
        Intent memory intent = IntentBuilder.init(requester, modelId).withAuctionType(AUCTION_DUTCH)
            .withStartPrice(5e17).withProofMode(PROOF_OPTIMISTIC);
        vm.prank(requester);
        bytes32 jobId = m.post(intent);
        vm.prank(provider);
        m.fill(jobId, provider, 60);
        vm.prank(provider);
        m.deliver(jobId, _output(), "");
        uint256 chal = token.balanceOf(challenger);
        vm.prank(challenger);
        m.challenge(jobId);
        uint256 prov = token.balanceOf(provider);
        vm.prank(provider);
        m.prove(jobId, _proof(intent.inputCommitment, _output()));
        assertEq(token.balanceOf(challenger), chal - 1e17);
        assertEq(m.owed(challenger), 0, "the bond is lost");
        assertEq(m.owed(provider), 5e17 + 1e17);
        vm.prank(provider);
        m.withdraw();
        assertEq(token.balanceOf(provider), prov + 5e17 + 1e17);
        vm.prank(requester);
        m.withdraw();
        assertEq(token.balanceOf(address(m)), m.feesOwed());
    }

    /// @dev Every path ends with the market holding nothing for the job.
    function testFuzz_lifecycle_marketEndsEmpty(uint8 path, uint32 delay) public {
        ReverseAuctionMarket m =
            new ReverseAuctionMarket(token, registry, staking, treasury, owner, _defaultParams());
        vm.prank(owner);
        staking.setMarket(address(m), true);
        _activate(staking, address(m));
        vm.prank(requester);
        token.approve(address(m), type(uint256).max);
        vm.prank(challenger);
        token.approve(address(m), type(uint256).max);
        Intent memory intent =
            IntentBuilder.init(requester, modelId).withProofMode(PROOF_OPTIMISTIC).withFailover(true);
        vm.prank(requester);
        bytes32 jobId = m.post(intent);
        path = uint8(bound(path, 0, 5));
        delay = uint32(bound(delay, 0, 5000));
        if (path == 0) {
            vm.warp(block.timestamp + 60 + delay);
            _refundOn(m, jobId);
        } else {
            _bidOn(m, jobId, provider2, Bid(provider2, 6e17, 60));
            _bidOn(m, jobId, provider, Bid(provider, 5e17, 60));
            vm.warp(block.timestamp + 60);
            _awardOn(m, jobId);
            if (path == 1) {
                vm.warp(block.timestamp + 61 + delay % 200);
                m.expire(jobId); // fails over to provider2
                vm.warp(block.timestamp + 61 + delay % 100);
                if (block.timestamp < intent.deadline + 1) vm.warp(intent.deadline + 1);
                m.expire(jobId);
            } else {
                vm.prank(provider);
                m.deliver(jobId, _output(), "");
                if (path == 2) {
                    vm.warp(block.timestamp + 1800 + delay);
                    m.finalize(jobId);
                } else {
                    vm.prank(challenger);
                    m.challenge(jobId);
                    if (path == 3) {
                        vm.prank(provider);
                        m.prove(jobId, _proof(intent.inputCommitment, _output()));
                    } else {
                        vm.warp(block.timestamp + 901 + delay);
                        m.expire(jobId);
                    }
                }
            }
        }
        JobState s = m.job(jobId).state;
        assertTrue(uint8(s) >= uint8(JobState.Settled), "terminal");
        // what the market holds is the fees plus exactly what it owes; once everyone withdraws, the fees
        address[4] memory parties = [requester, provider, provider2, challenger];
        uint256 owedTotal;
        for (uint256 i; i < parties.length; ++i) {
            owedTotal += m.owed(parties[i]);
        }
        assertEq(token.balanceOf(address(m)), m.feesOwed() + owedTotal, "market holds fees + owed");
        for (uint256 i; i < parties.length; ++i) {
            uint256 owed = m.owed(parties[i]);
            if (owed == 0) continue;
            uint256 before = token.balanceOf(parties[i]);
            vm.prank(parties[i]);
            assertEq(m.withdraw(), owed);
            assertEq(token.balanceOf(parties[i]), before + owed);
        }
        assertEq(token.balanceOf(address(m)), m.feesOwed(), "market holds only fees");
        m.withdrawFees();
        assertEq(token.balanceOf(address(m)), 0, "market ends empty");
        assertEq(staking.lockedOf(provider) + staking.lockedOf(provider2), 0, "no stake locked");
    }
}
