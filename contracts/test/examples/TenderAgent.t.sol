// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {TenderFixture} from "../utils/TenderFixture.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {TenderAgent} from "../../src/examples/TenderAgent.sol";
import {ReverseAuctionMarket} from "../../src/ReverseAuctionMarket.sol";
import {IMarket} from "../../src/interfaces/IMarket.sol";
import {Bid, Intent, JobState} from "../../src/MarketStructs.sol";

contract TenderAgentTest is TenderFixture {
    using IntentBuilder for Intent;

    ReverseAuctionMarket internal market;
    TenderAgent internal agent;

    function setUp() public {
        _deployCore();
        market = new ReverseAuctionMarket(token, registry, staking, treasury, owner, _defaultParams());
        vm.prank(owner);
        staking.setMarket(address(market), true);
        agent = new TenderAgent(market, owner);
        token.mint(address(agent), 10e18);
    }

    function _ask() internal returns (bytes32 jobId, Intent memory intent) {
        intent = IntentBuilder.init(address(agent), modelId).withCallbackGas(150_000);
        vm.prank(owner);
        jobId = agent.ask(intent);
    }

    function test_ask_postsAndReceivesResult() public {
        (bytes32 jobId, Intent memory intent) = _ask();
        assertEq(market.job(jobId).requester, address(agent));
        vm.prank(provider);
        market.bid(jobId, Bid(provider, 5e17, 60));
        vm.warp(block.timestamp + 60);
        uint256[] memory out = _output();
        vm.prank(provider);
        market.deliver(jobId, out, _proof(intent.inputCommitment, out));
        assertEq(uint8(market.job(jobId).state), uint8(JobState.Settled));
        assertTrue(agent.answered(jobId));
        assertEq(agent.result(jobId)[0], 7);
        assertEq(agent.result(jobId)[1], 11);
        // refund of the unspent escrow came back to the agent
        assertEq(token.balanceOf(address(agent)), 10e18 - 5e17 - 5e15);
    }

    function test_ask_revertsForOtherRequester() public {
        Intent memory intent = IntentBuilder.init(requester, modelId);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(TenderAgent.NotRequester.selector, requester));
        agent.ask(intent);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        agent.ask(intent.withRequester(address(agent)));
    }

    function test_onTenderResult_onlyMarket() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(TenderAgent.NotMarket.selector, stranger));
        agent.onTenderResult(bytes32(0), _output());
    }

    function test_result_revertsBeforeSettlement() public {
        (bytes32 jobId,) = _ask();
        vm.expectRevert(abi.encodeWithSelector(TenderAgent.NoResult.selector, jobId));
        agent.result(jobId);
    }

    function test_withdraw_onlyOwner() public {
        vm.prank(owner);
        agent.withdraw(owner, 1e18);
        assertEq(token.balanceOf(owner), 1e18);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        agent.withdraw(stranger, 1);
    }
}
