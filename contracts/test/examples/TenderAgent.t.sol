// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {TenderFixture} from "../utils/TenderFixture.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {TenderAgent} from "../../src/examples/TenderAgent.sol";
import {Staking} from "../../src/Staking.sol";
import {TestToken} from "../../src/TestToken.sol";
import {ReverseAuctionMarket} from "../../src/ReverseAuctionMarket.sol";
import {DutchAuctionMarket} from "../../src/DutchAuctionMarket.sol";
import {IMarket, IMarketEvents} from "../../src/interfaces/IMarket.sol";
import {
    Bid,
    Intent,
    JobState,
    AUCTION_DUTCH,
    AUCTION_REVERSE,
    PROOF_OPTIMISTIC
} from "../../src/MarketStructs.sol";

contract TenderAgentTest is TenderFixture {
    using IntentBuilder for Intent;

    ReverseAuctionMarket internal market;
    DutchAuctionMarket internal dutch;
    TenderAgent internal agent;

    function setUp() public {
        _deployCore();
        market = new ReverseAuctionMarket(token, registry, staking, treasury, owner, _defaultParams());
        dutch = new DutchAuctionMarket(token, registry, staking, treasury, owner, _defaultParams());
        vm.startPrank(owner);
        staking.setMarket(address(market), true);
        _activate(staking, address(market));
        staking.setMarket(address(dutch), true);
        _activate(staking, address(dutch));
        vm.stopPrank();
        agent = new TenderAgent(market, owner);
        token.mint(address(agent), 10e18);
    }

    function _ask() internal returns (bytes32 jobId, Intent memory intent) {
        intent = IntentBuilder.init(address(agent), modelId).withCallbackGas(150_000);
        vm.prank(owner);
        jobId = agent.ask(intent);
    }

    function test_constructor_registersTheMarketOfItsAuctionType() public view {
        assertEq(address(agent.token()), address(token));
        assertEq(address(agent.marketFor(AUCTION_REVERSE)), address(market));
        assertEq(address(agent.marketFor(AUCTION_DUTCH)), address(0));
        assertTrue(agent.isMarket(address(market)));
        assertFalse(agent.isMarket(address(dutch)));
    }

    function test_ask_postsAndReceivesResult() public {
        (bytes32 jobId, Intent memory intent) = _ask();
        assertEq(_jobTerms(jobId).requester, address(agent));
        _bidOn(market, jobId, provider, Bid(provider, 5e17, 60));
        vm.warp(block.timestamp + 60);
        _awardOn(market, jobId);
        uint256[] memory out = _output();
        vm.prank(provider);
        market.deliver(jobId, out, _proof(intent.inputCommitment, out));
        assertEq(uint8(market.job(jobId).state), uint8(JobState.Settled));
        assertTrue(agent.answered(jobId));
        assertEq(agent.result(jobId)[0], 7);
        assertEq(agent.result(jobId)[1], 11);
        // the unspent escrow is the agent's balance in the market until withdrawn into it
        uint256 refund = market.escrowFor(1e18) - 5e17 - 5e15;
        assertEq(market.owed(address(agent)), refund);
        assertEq(token.balanceOf(address(agent)), 10e18 - market.escrowFor(1e18));
        vm.prank(owner);
        assertEq(agent.withdrawFrom(market), refund);
        assertEq(token.balanceOf(address(agent)), 10e18 - 5e17 - 5e15);
    }

    /// @dev An ask with no bids, refunded: the agent is owed its escrow.
    function _refundedAsk(uint256 maxPrice) internal returns (uint256 owed) {
        Intent memory intent = IntentBuilder.init(address(agent), modelId).withCallbackGas(150_000)
            .withMaxPrice(maxPrice).withNonce(99);
        vm.prank(owner);
        bytes32 jobId = agent.ask(intent);
        vm.warp(_terms(jobId).auctionEnd);
        _refundOn(market, jobId);
        owed = market.owed(address(agent));
        assertEq(owed, market.escrowFor(maxPrice));
    }

    function test_withdrawFrom_movesOwedIntoTheAgent() public {
        uint256 owed = _refundedAsk(2e18);
        uint256 before = token.balanceOf(address(agent));
        vm.expectEmit(address(market));
        emit IMarketEvents.Withdrawn(address(agent), owed);
        vm.prank(owner);
        assertEq(agent.withdrawFrom(market), owed);
        assertEq(token.balanceOf(address(agent)), before + owed);
        assertEq(token.balanceOf(address(agent)), 10e18);
        assertEq(market.owed(address(agent)), 0);
        // nothing left: the market's refusal bubbles up
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NothingOwed.selector, address(agent)));
        agent.withdrawFrom(market);
    }

    /// @dev A provider misses the agent's deadline: the compensation is claimable in Staking, and the owner
    /// moves it into the agent with `claimFrom`.
    function test_claimFrom_movesSlashedStakeIntoTheAgent() public {
        Intent memory intent =
            IntentBuilder.init(address(agent), modelId).withCallbackGas(150_000).withNonce(7);
        vm.prank(owner);
        bytes32 jobId = agent.ask(intent);
        _bidOn(market, jobId, provider, Bid(provider, 5e17, 60));
        vm.warp(_terms(jobId).auctionEnd);
        _awardOn(market, jobId);
        uint256 locked = market.job(jobId).stakeLocked;
        vm.warp(market.providerDeadline(jobId) + 1);
        market.expire(jobId);
        assertEq(staking.claimable(address(agent)), locked);
        uint256 before = token.balanceOf(address(agent));
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        agent.claimFrom(market);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(TenderAgent.NotMarket.selector, address(dutch)));
        agent.claimFrom(dutch);
        vm.prank(owner);
        assertEq(agent.claimFrom(market), locked);
        assertEq(token.balanceOf(address(agent)), before + locked);
        assertEq(staking.claimable(address(agent)), 0);
    }

    function test_withdrawFrom_revertsForAnUnknownMarketOrAStranger() public {
        _refundedAsk(2e18);
        uint256 before = token.balanceOf(address(agent));
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(TenderAgent.NotMarket.selector, address(dutch)));
        agent.withdrawFrom(dutch);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        agent.withdrawFrom(market);
        assertEq(token.balanceOf(address(agent)), before);
        assertEq(market.owed(address(agent)), market.escrowFor(2e18));
    }

    function test_ask_paysEscrowFromTheMarketBalance() public {
        uint256 owed = _refundedAsk(2e18);
        // the agent's own tokens go, so that only its balance in the market can pay
        uint256 budget = token.balanceOf(address(agent));
        vm.prank(owner);
        agent.sweep(owner, budget);
        assertEq(token.balanceOf(address(agent)), 0);
        (bytes32 jobId,) = _ask();
        assertEq(_jobTerms(jobId).requester, address(agent));
        assertEq(market.owed(address(agent)), owed - market.escrowFor(1e18));
        assertEq(token.allowance(address(agent), address(market)), 0, "nothing approved");
        assertEq(token.balanceOf(address(agent)), 0);
    }

    function test_ask_pullsFromTheAgentWhenTheMarketBalanceFallsShort() public {
        uint256 owed = _refundedAsk(5e17);
        uint256 before = token.balanceOf(address(agent));
        (bytes32 jobId,) = _ask();
        assertEq(_jobTerms(jobId).requester, address(agent));
        assertEq(market.owed(address(agent)), owed, "market balance untouched");
        assertEq(token.balanceOf(address(agent)), before - market.escrowFor(1e18));
    }

    function test_ask_optimisticResultArrivesAtFinalize() public {
        Intent memory intent = IntentBuilder.init(address(agent), modelId).withCallbackGas(150_000)
            .withProofMode(PROOF_OPTIMISTIC);
        vm.prank(owner);
        bytes32 jobId = agent.ask(intent);
        _bidOn(market, jobId, provider, Bid(provider, 5e17, 60));
        vm.warp(block.timestamp + 60);
        _awardOn(market, jobId);
        vm.prank(provider);
        market.deliver(jobId, _output(), "");
        assertFalse(agent.answered(jobId));
        vm.warp(block.timestamp + 1801);
        vm.prank(stranger);
        market.finalize(jobId);
        assertTrue(agent.answered(jobId));
        assertEq(agent.result(jobId)[1], 11);
    }

    function test_addMarket_asksTheMarketOfTheIntentsAuctionType() public {
        vm.prank(owner);
        vm.expectEmit(true, true, false, false, address(agent));
        emit TenderAgent.MarketAdded(address(dutch), AUCTION_DUTCH);
        agent.addMarket(dutch);
        Intent memory intent = IntentBuilder.init(address(agent), modelId).withCallbackGas(150_000)
            .withAuctionType(AUCTION_DUTCH).withStartPrice(1e17);
        vm.prank(owner);
        bytes32 jobId = agent.ask(intent);
        assertEq(dutch.job(jobId).requester, address(agent));
        vm.prank(provider);
        dutch.fill(jobId, provider, 60);
        uint256[] memory out = _output();
        vm.prank(provider);
        dutch.deliver(jobId, out, _proof(intent.inputCommitment, out));
        assertTrue(agent.answered(jobId));
        assertEq(agent.result(jobId)[0], 7);
    }

    function test_addMarket_revertsForAnotherTokenOrAStranger() public {
        TestToken other = new TestToken("Other", "OTH", 18);
        Staking otherStaking = new Staking(other, owner, UNSTAKING, 1e15);
        DutchAuctionMarket foreign =
            new DutchAuctionMarket(other, registry, otherStaking, treasury, owner, _defaultParams());
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(TenderAgent.WrongToken.selector, address(foreign), address(other))
        );
        agent.addMarket(foreign);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        agent.addMarket(dutch);
    }

    function test_ask_revertsForOtherRequester() public {
        Intent memory intent = IntentBuilder.init(requester, modelId).withCallbackGas(150_000);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(TenderAgent.NotRequester.selector, requester));
        agent.ask(intent);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        agent.ask(intent.withRequester(address(agent)));
    }

    function test_ask_revertsWithoutCallbackGas() public {
        Intent memory intent = IntentBuilder.init(address(agent), modelId);
        vm.prank(owner);
        vm.expectRevert(TenderAgent.NoCallbackGas.selector);
        agent.ask(intent);
    }

    function test_ask_revertsForAnAuctionTypeWithoutMarket() public {
        Intent memory intent = IntentBuilder.init(address(agent), modelId).withCallbackGas(150_000)
            .withAuctionType(AUCTION_DUTCH);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(TenderAgent.NoMarket.selector, AUCTION_DUTCH));
        agent.ask(intent);
    }

    function test_ask_revertsWhenTheBudgetIsShort() public {
        Intent memory intent =
            IntentBuilder.init(address(agent), modelId).withCallbackGas(150_000).withMaxPrice(20e18);
        uint256 escrow = market.escrowFor(20e18);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(TenderAgent.InsufficientBalance.selector, 10e18, escrow));
        agent.ask(intent);
    }

    function test_ask_marketRevertsBubbleUp() public {
        Intent memory intent = IntentBuilder.init(address(agent), modelId).withCallbackGas(600_000);
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(
                IMarketEvents.CallbackGasTooHigh.selector, uint32(600_000), uint32(500_000)
            )
        );
        agent.ask(intent);
    }

    function test_fund_pullsFromTheCaller() public {
        vm.startPrank(stranger);
        token.approve(address(agent), 3e18);
        vm.expectEmit(true, false, false, true, address(agent));
        emit TenderAgent.Funded(stranger, 3e18);
        agent.fund(3e18);
        vm.expectRevert(TenderAgent.ZeroAmount.selector);
        agent.fund(0);
        vm.stopPrank();
        assertEq(token.balanceOf(address(agent)), 13e18);
    }

    function test_onTenderResult_onlyMarket() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(TenderAgent.NotMarket.selector, stranger));
        agent.onTenderResult(bytes32(0), _output());
        vm.prank(address(dutch)); // not added: its callbacks are refused too
        vm.expectRevert(abi.encodeWithSelector(TenderAgent.NotMarket.selector, address(dutch)));
        agent.onTenderResult(bytes32(0), _output());
    }

    function test_result_revertsBeforeSettlement() public {
        (bytes32 jobId,) = _ask();
        vm.expectRevert(abi.encodeWithSelector(TenderAgent.NoResult.selector, jobId));
        agent.result(jobId);
    }

    function test_sweep_onlyOwner() public {
        vm.prank(owner);
        agent.sweep(owner, 1e18);
        assertEq(token.balanceOf(owner), 1e18);
        vm.prank(owner);
        vm.expectRevert(TenderAgent.ZeroAddress.selector);
        agent.sweep(address(0), 1);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        agent.sweep(stranger, 1);
    }
}
