// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ITenderConsumer} from "../../src/interfaces/ITenderConsumer.sol";
import {IMarket} from "../../src/interfaces/IMarket.sol";
import {IDutchAuctionMarket} from "../../src/interfaces/IDutchAuctionMarket.sol";
import {IReverseAuctionMarket} from "../../src/interfaces/IReverseAuctionMarket.sol";
import {AuctionTerms, Intent, JobTerms, MarketParams, AUCTION_DUTCH} from "../../src/MarketStructs.sol";
import {TermsBuilder} from "../utils/Terms.sol";

/// @notice A requester contract whose callback behaves as told: records, reverts, burns all gas, returns
/// a huge revert payload, or tries to re-enter the market (a refund of its job: the Dutch market's takes the job
/// id, the reverse market's the job's terms too, which this consumer keeps from its posting).
contract MockConsumer is ITenderConsumer {
    enum Behaviour {
        Record,
        Revert,
        BurnGas,
        ReturnBomb,
        Reenter
    }

    Behaviour public behaviour;
    bytes32 public lastJobId;
    uint256[] public lastOutput;
    uint256 public calls;
    bool public reentryFailed;
    mapping(bytes32 jobId => AuctionTerms) internal _terms;
    mapping(bytes32 jobId => JobTerms) internal _jobTerms;

    function setBehaviour(Behaviour b) external {
        behaviour = b;
    }

    function post(IMarket market, IERC20 token, Intent calldata intent) external returns (bytes32 jobId) {
        token.approve(address(market), type(uint256).max);
        jobId = market.post(intent);
        // a reverse job's terms, as its bids, award and refund pass them back
        MarketParams memory p = market.params();
        (_terms[jobId], _jobTerms[jobId]) =
            TermsBuilder.build(intent, block.timestamp, p.feeBps, p.stakeMultiple);
    }

    function onTenderResult(bytes32 jobId, uint256[] calldata output) external {
        Behaviour b = behaviour;
        if (b == Behaviour.Revert) revert("consumer says no");
        if (b == Behaviour.BurnGas) {
            while (true) {}
        }
        if (b == Behaviour.ReturnBomb) {
            assembly {
                revert(0, 100000)
            }
        }
        if (b == Behaviour.Reenter) {
            if (IMarket(msg.sender).auctionType() == AUCTION_DUTCH) {
                try IDutchAuctionMarket(msg.sender).refund(jobId) {}
                catch {
                    reentryFailed = true;
                }
            } else {
                try IReverseAuctionMarket(msg.sender).refund(jobId, _terms[jobId], _jobTerms[jobId]) {}
                catch {
                    reentryFailed = true;
                }
            }
        }
        lastJobId = jobId;
        lastOutput = output;
        ++calls;
    }

    function outputLength() external view returns (uint256) {
        return lastOutput.length;
    }
}
