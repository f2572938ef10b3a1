// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Test} from "../utils/Test.sol";
import {StakingHandler} from "./handlers/StakingHandler.sol";
import {TestToken} from "../../src/TestToken.sol";
import {Staking} from "../../src/Staking.sol";

/// @notice Staking on its own, with `StakingHandler` as both the providers and a registered market, so
/// locks, unlocks and slashes come in any order and any size (the markets only ever ask for valid ones).
/// forge-config: default.invariant.runs = 64
/// forge-config: default.invariant.depth = 64
/// forge-config: deep.invariant.runs = 512
/// forge-config: deep.invariant.depth = 128
contract StakingInvariantsTest is Test {
    TestToken internal token;
    Staking internal staking;
    StakingHandler internal handler;

    function setUp() public {
        address owner = makeAddr("stk-owner");
        token = new TestToken("Tender USD", "TUSD", 18);
        staking = new Staking(token, owner, 1 days, 1e15);
        handler = new StakingHandler(token, staking);
        vm.prank(owner);
        staking.setMarket(address(handler), true);

        bytes4[] memory selectors = new bytes4[](9);
        selectors[0] = StakingHandler.stake.selector;
        selectors[1] = StakingHandler.unstake.selector;
        selectors[2] = StakingHandler.redeem.selector;
        selectors[3] = StakingHandler.lock.selector;
        selectors[4] = StakingHandler.unlock.selector;
        selectors[5] = StakingHandler.slash.selector;
        selectors[6] = StakingHandler.warp.selector;
        selectors[7] = StakingHandler.penalize.selector;
        selectors[8] = StakingHandler.claim.selector;
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @notice (3) No slash exceeded its job's lock or touched unlocked stake; each provider's total lock
    /// is exactly what its live job locks add up to.
    function invariant_slashBoundedByJobLock() public view {
        address[3] memory ps = handler.providerList();
        for (uint256 i; i < 3; ++i) {
            assertEq(
                staking.lockedOf(ps[i]), handler.ghost_lockedTotal(ps[i]), "lockedOf != sum of job locks"
            );
        }
        assertEq(handler.violations(), 0, handler.firstViolation());
    }

    /// @notice (5) Stake always covers locked plus unstaking stake, so nothing locked can be redeemed;
    /// redemptions came only after the unstaking delay (checked per call).
    function invariant_unstakingRespected() public view {
        address[3] memory ps = handler.providerList();
        for (uint256 i; i < 3; ++i) {
            (uint256 unstaking,) = staking.unstakingOf(ps[i]);
            assertGe(
                staking.stakeOf(ps[i]), staking.lockedOf(ps[i]) + unstaking, "stake < locked + unstaking"
            );
            assertEq(
                staking.availableOf(ps[i]),
                staking.stakeOf(ps[i]) - staking.lockedOf(ps[i]) - unstaking,
                "available != stake - locked - unstaking"
            );
        }
        assertEq(handler.violations(), 0, handler.firstViolation());
    }

    /// @notice (1) Staking holds exactly the sum of stakes plus what slashes and penalties credited and
    /// nobody claimed yet; the stakes are what went in minus redemptions, slashes and penalties.
    function invariant_stakingConservation() public view {
        address[3] memory ps = handler.providerList();
        uint256 sum;
        for (uint256 i; i < 3; ++i) {
            sum += staking.stakeOf(ps[i]);
        }
        uint256 credited = staking.claimable(handler.recipient());
        assertEq(token.balanceOf(address(staking)), sum + credited, "balance != stakes + claimable");
        assertEq(sum, handler.ghost_staked() - handler.ghost_redeemed() - handler.ghost_slashed(), "ghost");
        assertEq(
            credited, handler.ghost_slashed() - handler.ghost_claimed(), "claimable != slashed - claimed"
        );
    }
}
