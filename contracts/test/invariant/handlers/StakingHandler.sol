// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Test} from "../../utils/Test.sol";
import {TestToken} from "../../../src/TestToken.sol";
import {Staking} from "../../../src/Staking.sol";

/// @notice Drives Staking directly, playing both the providers and a registered market: stake,
/// unstake, redeem, and lock / unlock / slash with amounts that sometimes exceed what is
/// available or locked. Without the markets in the way, the bounds on slashing and unstaking are hit
/// head-on. Breaches are counted, not asserted (see `StakingInvariants`).
contract StakingHandler is Test {
    uint256 internal constant JOBS = 8;

    TestToken public immutable token;
    Staking public immutable staking;
    address[3] public providers;
    address public immutable recipient;

    uint256 public now_;
    /// @dev What the handler locked per provider and job, net of unlocks and slashes.
    mapping(address provider => mapping(bytes32 jobId => uint256)) public ghost_lock;
    mapping(address provider => uint256) public ghost_lockedTotal;

    uint256 public ghost_staked;
    uint256 public ghost_redeemed;
    uint256 public ghost_slashed;
    uint256 public ghost_claimed;

    uint256 public violations;
    string public firstViolation;

    constructor(TestToken token_, Staking staking_) {
        token = token_;
        staking = staking_;
        recipient = makeAddr("stk-recipient");
        now_ = block.timestamp;
        for (uint256 i; i < 3; ++i) {
            providers[i] =
                makeAddr(string.concat("stk-provider-", string(abi.encodePacked(bytes1(uint8(48 + i))))));
        }
    }

    modifier tick() {
        vm.warp(now_);
        _;
    }

    function stake(uint256 who, uint256 amount) external tick {
        address p = providers[who % 3];
        amount = bound(amount, 1, 100e18);
        token.mint(p, amount);
        vm.startPrank(p);
        token.approve(address(staking), amount);
        staking.stake(amount);
        vm.stopPrank();
        ghost_staked += amount;
    }

    function unstake(uint256 who, uint256 amount) external tick {
        address p = providers[who % 3];
        uint256 avail = staking.availableOf(p);
        amount = bound(amount, 1, avail + 10e18);
        vm.prank(p);
        try staking.unstake(amount) {
            if (amount > avail) _fail("unstaked more than the available stake");
        } catch {}
    }

    function redeem(uint256 who) external tick {
        address p = providers[who % 3];
        (uint256 pending, uint64 readyAt) = staking.unstakingOf(p);
        uint256 lockedBefore = staking.lockedOf(p);
        vm.prank(p);
        try staking.redeem() returns (uint256 got) {
            ghost_redeemed += got;
            if (pending == 0 || now_ < readyAt) _fail("withdrew before the unstaking delay");
            if (got != pending) _fail("withdrew other than the unstaking amount");
            if (staking.lockedOf(p) != lockedBefore || staking.stakeOf(p) < lockedBefore) {
                _fail("redeem reached locked stake");
            }
        } catch {}
    }

    function lock(uint256 who, uint256 job, uint256 amount) external tick {
        address p = providers[who % 3];
        bytes32 id = bytes32(job % JOBS);
        uint256 lockable = staking.lockableOf(p);
        amount = bound(amount, 1, lockable + 10e18);
        try staking.lock(p, id, amount, 1e16) {
            if (amount > lockable) _fail("locked more than the available and unstaking stake");
            if (ghost_lock[p][id] != 0) _fail("locked a job twice");
            ghost_lock[p][id] = amount;
            ghost_lockedTotal[p] += amount;
        } catch {}
    }

    function unlock(uint256 who, uint256 job) external tick {
        address p = providers[who % 3];
        bytes32 id = bytes32(job % JOBS);
        try staking.unlock(p, id, 1e16) returns (uint256 released) {
            if (released != ghost_lock[p][id]) _fail("released other than the lock");
            ghost_lockedTotal[p] -= ghost_lock[p][id];
            ghost_lock[p][id] = 0;
        } catch {}
    }

    /// @notice Slashes up to twice the job's lock: anything above the lock must be refused.
    function slash(uint256 who, uint256 job, uint256 amount) external tick {
        address p = providers[who % 3];
        bytes32 id = bytes32(job % JOBS);
        uint256 locked = ghost_lock[p][id];
        amount = bound(amount, 0, locked * 2 + 1);
        uint256 stakeBefore = staking.stakeOf(p);
        uint256 availBefore = staking.availableOf(p);
        uint256 claimBefore = staking.claimable(recipient);
        uint256 balBefore = token.balanceOf(recipient);
        try staking.slash(p, id, amount, recipient) {
            if (locked == 0) _fail("slashed a job without a lock");
            if (amount > locked) _fail("slashed more than the job's lock");
            if (staking.stakeOf(p) != stakeBefore - amount) _fail("stake fell by other than the slash");
            if (staking.availableOf(p) != availBefore) _fail("unlocked stake was slashed");
            if (staking.claimable(recipient) != claimBefore + amount) {
                _fail("slash not credited to the recipient");
            }
            if (token.balanceOf(recipient) != balBefore) _fail("a slash moved tokens");
            ghost_slashed += amount;
            ghost_lock[p][id] = locked - amount;
            ghost_lockedTotal[p] -= amount;
        } catch {}
    }

    /// @notice Penalises up to twice what the provider has free: only free and unstaking stake is taken.
    function penalize(uint256 who, uint256 job, uint256 amount) external tick {
        address p = providers[who % 3];
        bytes32 id = bytes32(job % JOBS);
        uint256 lockable = staking.lockableOf(p);
        amount = bound(amount, 0, lockable * 2 + 1);
        uint256 stakeBefore = staking.stakeOf(p);
        uint256 lockedBefore = staking.lockedOf(p);
        uint256 claimBefore = staking.claimable(recipient);
        try staking.penalize(p, id, amount, recipient) returns (uint256 taken) {
            if (taken != (amount < lockable ? amount : lockable)) {
                _fail("penalty other than min(amount, free)");
            }
            if (staking.lockedOf(p) != lockedBefore) _fail("a penalty touched locked stake");
            if (staking.stakeOf(p) != stakeBefore - taken) _fail("stake fell by other than the penalty");
            if (staking.claimable(recipient) != claimBefore + taken) _fail("penalty not credited");
            ghost_slashed += taken;
        } catch {
            _fail("penalize reverted");
        }
    }

    /// @notice The recipient claims what slashes and penalties credited it.
    function claim() external tick {
        uint256 owed = staking.claimable(recipient);
        uint256 before = token.balanceOf(recipient);
        vm.prank(recipient);
        try staking.claim() returns (uint256 got) {
            if (got != owed || token.balanceOf(recipient) != before + owed) {
                _fail("claim paid other than owed");
            }
            ghost_claimed += got;
        } catch {
            if (owed != 0) _fail("claim refused with something owed");
        }
    }

    function warp(uint256 dt) external {
        now_ += bound(dt, 1, 2 days);
        vm.warp(now_);
    }

    function providerList() external view returns (address[3] memory) {
        return providers;
    }

    function _fail(string memory why) internal {
        if (violations++ == 0) firstViolation = why;
    }
}
