// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Test} from "../../utils/Test.sol";
import {IntentBuilder} from "../../utils/IntentBuilder.sol";
import {TermsBuilder} from "../../utils/Terms.sol";
import {TestToken} from "../../../src/TestToken.sol";
import {Staking} from "../../../src/Staking.sol";
import {IMarket, IMarketEvents} from "../../../src/interfaces/IMarket.sol";
import {IReverseAuctionMarket} from "../../../src/interfaces/IReverseAuctionMarket.sol";
import {IDutchAuctionMarket} from "../../../src/interfaces/IDutchAuctionMarket.sol";
import {
    AuctionTerms,
    Bid,
    DisputeTerms,
    Intent,
    Job,
    JobState,
    JobTerms,
    MarketParams,
    AUCTION_REVERSE,
    AUCTION_DUTCH,
    PROOF_ZK,
    PROOF_OPTIMISTIC
} from "../../../src/MarketStructs.sol";

/// @notice Drives both markets and the shared Staking through bounded, mostly valid call sequences:
/// post / submitSigned, bids and fills from three providers (directly or through their solver), award,
/// deliveries with valid, invalid or no proofs, challenge / prove / finalize, expire, refund, staking,
/// nonce cancellation, parameter changes and time warps.
///
/// After every successful call it predicts, from the job before and after, exactly how many tokens each
/// tracked account must have gained or lost, how much the market must owe it more or less (settlements,
/// refunds and returned bonds are credits, paid out by `withdraw`; an escrow or bond is taken from the
/// credit when that covers it, else from the allowance) and how much stake each provider must have lost,
/// and records any difference. The fuzzer ignores reverts (`fail_on_revert = false`), so the handler never asserts:
/// it counts breaches per invariant and `MarketInvariants` asserts the counts are zero.
contract MarketHandler is Test {
    using IntentBuilder for Intent;

    uint256 internal constant BPS = 10_000;
    uint256 internal constant MAX_JOBS = 40;
    uint256 internal constant MAX_PRICE = 5e18;
    uint256 internal constant MAX_MIN_STAKE = 20e18;
    /// @dev Nonces drawn from three bitmap words, so that reuse is frequent.
    uint256 internal constant NONCE_SPAN = 768;

    // tracked accounts: [reverse, dutch, staking, treasury, r0, r1, r2, p0, p1, p2, c0, c1, solver, stranger]
    uint256 internal constant N = 14;
    uint256 internal constant I_STAKING = 2;
    uint256 internal constant I_TREASURY = 3;
    uint256 internal constant I_REQ = 4;
    uint256 internal constant I_PROV = 7;
    uint256 internal constant I_CHAL = 10;

    /// @dev One counter per invariant of `MarketInvariants`.
    enum Inv {
        Conservation,
        PayOnce,
        Slash,
        Terminal,
        Unstake,
        Auction,
        Transition,
        HonestProver,
        Split,
        Nonce,
        Time,
        Terms,
        Reputation
    }

    /// @dev What a call needs of the job it is aimed at (see `_fits`).
    enum Want {
        Any,
        Live,
        Bid,
        Fill,
        Award,
        Deliver,
        Challenge,
        Prove,
        Finalize,
        Expire,
        Refund
    }

    enum Act {
        Post,
        Bid,
        Award,
        Fill,
        Deliver,
        Challenge,
        Prove,
        Finalize,
        Expire,
        Refund,
        Grief
    }

    /// @dev What the handler remembers about a job beyond the market's own record.
    struct JobInfo {
        IMarket market;
        bool reverse;
        // index into `requesters`
        uint8 requesterIdx;
        // the state seen after the last call (the fuzzer's view of the state machine)
        JobState prev;
        // copied from the job, to aim calls without reading the market
        uint40 auctionEnd;
        // the optimistic output handed in is the true one (its provider can prove it)
        bool honest;
        // the provider had a valid proof accepted before its deadline (deliver or prove)
        bool validProof;
        // times the job moved into Settled
        uint8 payouts;
        uint256 commitment;
        // pulled from the requester at posting
        uint256 escrow;
        // escrow handed back to the requester (refund part of a settlement, or all of it)
        uint256 refunded;
        // stake slashed for this job from the provider that holds it (every recipient together; a failover
        // to the runner-up starts again from 0)
        uint256 slashed;
        // largest lock any one provider held for this job
        uint256 maxLock;
        // reverse auction: the best score among all accepted bids, and who bid it first
        uint256 minScore;
        address minScorer;
        // the terms fixed at posting: fee, stake multiple and (optimistic) dispute terms
        uint16 feeBps;
        uint16 stakeMultiple;
        DisputeTerms terms;
    }

    /// @dev Everything a call may change, read just before it.
    struct Snap {
        IMarket m;
        uint256 mi;
        uint256 now_;
        Job job;
        MarketParams p;
        uint256[N] bal;
        // what the call's market owes each tracked account
        uint256[N] owed;
        uint256[3] stakeOf;
        uint256[3] avail;
        uint256[3] locked;
        uint256 reqClaimable;
        DisputeTerms terms;
        uint256 lockedForJob;
        Bid best;
        Bid runner;
        uint256 bestAvail;
        uint256 runnerAvail;
        uint256 clearing;
    }

    /// @dev Expected changes of a call: token balances, and what the call's market owes.
    struct Flows {
        int256[N] tok;
        int256[N] owed;
    }

    TestToken public immutable token;
    Staking public immutable staking;
    IReverseAuctionMarket public immutable reverse;
    IDutchAuctionMarket public immutable dutch;
    address public immutable owner;
    address public immutable treasury;
    address public immutable solver;
    address public immutable stranger;

    bytes32[3] public models; // zk + optimistic, audited (zk + optimistic), zk only
    address[3] public requesters;
    uint256[3] internal requesterKeys;
    address[3] public providers;
    address[2] public challengers;
    address[N] internal tracked;

    /// @dev The handler's clock: the fuzzer does not carry `vm.warp` across calls reliably.
    uint256 public now_;

    bytes32[] public jobIds;
    mapping(bytes32 jobId => JobInfo) internal _info;
    mapping(bytes32 jobId => Intent) internal _intents;
    /// @dev A reverse job's terms, rebuilt at its posting from the intent, the time and the parameters in force
    /// (as every role rebuilds them from `IntentPosted`): its bids, award and refund pass them back.
    mapping(bytes32 jobId => AuctionTerms) internal _auctionTerms;
    mapping(bytes32 jobId => JobTerms) internal _jobTerms;
    /// @dev Mirror of each market's nonce bitmap: bits only ever get set.
    mapping(address market => mapping(address owner => mapping(uint256 word => uint256))) public
        ghost_nonceBits;

    uint256[13] public violations;
    string[13] public firstViolation;

    // ghost totals (token units)
    uint256 public ghost_escrowed; // escrowed by post / submitSigned (from credit or allowance)
    uint256 public ghost_bondsIn; // bonds taken by challenge (from credit or allowance)
    uint256 public ghost_pulled; // tokens pulled into the markets (escrows and bonds not paid by credit)
    uint256 public ghost_owedSpent; // credit spent on escrows and bonds instead of a pull
    uint256 public ghost_paid; // prices credited to providers
    uint256 public ghost_fees; // fees accrued by settlements (owed to the treasury until withdrawn)
    uint256 public ghost_feesWithdrawn; // fees paid out to the treasury by withdrawFees
    uint256 public ghost_refunded; // escrow credited back to requesters
    uint256 public ghost_bondsOut; // bonds credited to provers or back to challengers
    uint256 public ghost_owedWithdrawn; // credits paid out by the markets' withdraw
    uint256 public ghost_staked; // pulled into Staking
    uint256 public ghost_redeemed; // paid out of Staking by redeem
    uint256 public ghost_slashed; // stake taken by slashes and penalties (credited to claims in Staking)
    uint256 public ghost_compensated; // slashed stake credited to requesters and challengers (claimable)
    uint256 public ghost_claimed; // claims paid out of Staking
    uint256 public ghost_minted;

    // coverage counters (how often each path actually happened)
    mapping(bytes32 what => uint256) public calls;

    bytes32 internal _target;
    /// @dev The handler's block height: one block per call (the audit draw needs later blocks).
    uint256 public block_;
    /// @dev Awards and settlements whose fee reached Staking's minCountedFee, per provider.
    mapping(address provider => uint256) public ghost_countedWins;
    mapping(address provider => uint256) public ghost_countedSettles;

    struct Deps {
        TestToken token;
        Staking staking;
        IReverseAuctionMarket reverse;
        IDutchAuctionMarket dutch;
        bytes32[3] models;
        address[3] providers;
        address solver;
        address owner;
        address treasury;
    }

    constructor(Deps memory d) {
        token = d.token;
        staking = d.staking;
        reverse = d.reverse;
        dutch = d.dutch;
        models = d.models;
        providers = d.providers;
        solver = d.solver;
        owner = d.owner;
        treasury = d.treasury;
        stranger = makeAddr("inv-stranger");
        now_ = block.timestamp;
        block_ = block.number;

        tracked[0] = address(d.reverse);
        tracked[1] = address(d.dutch);
        tracked[I_STAKING] = address(d.staking);
        tracked[I_TREASURY] = d.treasury;
        for (uint256 i; i < 3; ++i) {
            (address r, uint256 key) = makeKey(string.concat("inv-requester-", _str(i)));
            requesters[i] = r;
            requesterKeys[i] = key;
            tracked[I_REQ + i] = r;
            tracked[I_PROV + i] = d.providers[i];
            _mint(r, 1e30);
            vm.startPrank(r);
            token.approve(address(d.reverse), type(uint256).max);
            token.approve(address(d.dutch), type(uint256).max);
            vm.stopPrank();
            ghost_staked += d.staking.stakeOf(d.providers[i]);
        }
        for (uint256 i; i < 2; ++i) {
            address c = makeAddr(string.concat("inv-challenger-", _str(i)));
            challengers[i] = c;
            tracked[I_CHAL + i] = c;
            _mint(c, 1e24);
            vm.startPrank(c);
            token.approve(address(d.reverse), type(uint256).max);
            token.approve(address(d.dutch), type(uint256).max);
            vm.stopPrank();
        }
        tracked[12] = d.solver;
        tracked[13] = stranger;
    }

    modifier tick() {
        vm.warp(now_);
        vm.roll(++block_);
        calls[bytes32(msg.sig)]++;
        _target = bytes32(0);
        _;
        _checkTransitions();
    }

    // ================================================================== intents

    function post(uint256 actorSeed, uint256 cfg, uint256 maxPrice, uint256 nonce) external tick {
        _open(actorSeed, cfg, maxPrice, nonce, false);
    }

    function submitSigned(uint256 actorSeed, uint256 cfg, uint256 maxPrice, uint256 nonce) external tick {
        _open(actorSeed, cfg, maxPrice, nonce, true);
    }

    /// @notice Re-sends a posted intent, as is or with another price but the same nonce: must be refused.
    function reuseNonce(uint256 jobSeed, uint256 priceSeed, bool signed) external tick {
        (bool has, bytes32 id) = _pick(jobSeed, Want.Any);
        if (!has) return;
        JobInfo storage info = _info[id];
        Intent memory intent = _intents[id];
        if (priceSeed % 2 == 1) intent.maxPrice = bound(priceSeed, 1e6, MAX_PRICE);
        if (intent.startPrice > intent.maxPrice) intent.startPrice = intent.maxPrice;
        // re-timed so that it is valid now: only the nonce can refuse it
        intent.deadline = uint64(now_ + intent.auctionWindow + 600);
        intent.expiry = uint64(now_ + 1);
        bool ok = _send(info.market, intent, info.requesterIdx, signed);
        calls["reuseNonce"]++;
        if (ok) _fail(Inv.Nonce, "a used nonce opened a second job");
    }

    function invalidateNonces(uint256 actorSeed, bool onDutch, uint256 word, uint256 maskSeed) external tick {
        address r = requesters[actorSeed % 3];
        IMarket m = onDutch ? IMarket(address(dutch)) : IMarket(address(reverse));
        word = bound(word, 0, NONCE_SPAN / 256 - 1);
        uint256 mask = maskSeed % 8 == 0 ? maskSeed : uint256(1) << ((maskSeed >> 8) & 0xff);
        vm.prank(r);
        m.invalidateNonces(word, mask);
        ghost_nonceBits[address(m)][r][word] |= mask;
        calls["invalidateNonces"]++;
    }

    // ================================================================== auctions

    function bid(uint256 jobSeed, uint256 provSeed, uint256 price, uint256 latency, bool viaSolver)
        external
        tick
    {
        (bool has, bytes32 id) = _pick(jobSeed, Want.Bid);
        if (!has || !_info[id].reverse) return;
        Job memory j = _jobOf(IMarket(address(reverse)), id);
        address p = providers[provSeed % 3];
        price = bound(price, 1, j.maxPrice);
        latency = bound(latency, 1, j.deadline - j.auctionEnd);
        Snap memory s = _snap(id);
        AuctionTerms memory t = _auctionTerms[id];
        vm.prank(viaSolver ? solver : p);
        try reverse.bid(id, t, Bid(p, uint96(price), uint32(latency))) {
            calls["bid"]++;
            _afterCall(id, s, Act.Bid);
            _recordBid(id, j, p, price, latency);
        } catch {}
    }

    function award(uint256 jobSeed) external tick {
        (bool has, bytes32 id) = _pick(jobSeed, Want.Award);
        if (!has || !_info[id].reverse) return;
        Snap memory s = _snap(id);
        (AuctionTerms memory t, JobTerms memory jt) = (_auctionTerms[id], _jobTerms[id]);
        vm.prank(stranger);
        try reverse.award(id, t, jt) {
            calls["award"]++;
            _afterCall(id, s, Act.Award);
        } catch {}
    }

    function fill(uint256 jobSeed, uint256 provSeed, uint256 latency, bool viaSolver) external tick {
        (bool has, bytes32 id) = _pick(jobSeed, Want.Fill);
        if (!has || _info[id].reverse) return;
        Job memory j = dutch.job(id);
        address p = providers[provSeed % 3];
        latency = bound(latency, 1, j.deadline > now_ ? j.deadline - now_ : 1);
        Snap memory s = _snap(id);
        vm.prank(viaSolver ? solver : p);
        try dutch.fill(id, p, uint32(latency)) returns (uint256 price) {
            calls["fill"]++;
            _afterCall(id, s, Act.Fill);
            if (price != dutch.job(id).price) {
                _fail(Inv.Auction, "fill returned another price than recorded");
            }
        } catch {}
    }

    // ================================================================== delivery and disputes

    /// @param mode 0: true output, valid proof; 1: true output, proof of another output; 2: true output,
    /// no proof; 3: wrong output, no proof (a dishonest optimistic provider).
    function deliver(uint256 jobSeed, uint256 mode, bool viaSolver) external tick {
        (bool has, bytes32 id) = _pick(jobSeed, Want.Deliver);
        if (!has) return;
        JobInfo storage info = _info[id];
        // zk: mostly valid proofs; optimistic: mostly no proof, honest two times in three
        mode = _intents[id].proofMode == PROOF_ZK
            ? [0, 0, 0, 0, 0, 1, 2, 3][mode % 8]
            : [0, 1, 2, 2, 2, 2, 3, 3][mode % 8];
        address p = _deliverer(id, mode);
        uint256[] memory out = _output(info.commitment, mode != 3);
        bytes memory proof;
        if (mode == 0) proof = _proof(info.commitment, out);
        if (mode == 1) proof = _proof(info.commitment, _output(info.commitment, false));
        Snap memory s = _snap(id);
        vm.prank(viaSolver ? solver : p);
        try info.market.deliver(id, out, proof) {
            calls[mode == 0 ? bytes32("deliver.valid") : bytes32("deliver.optimistic")]++;
            if (mode == 1) _fail(Inv.HonestProver, "a proof of another output was accepted");
            info.honest = mode != 3;
            _afterCall(id, s, Act.Deliver);
            if (mode == 0) {
                info.validProof = true;
                if (info.market.job(id).state != JobState.Settled) {
                    _fail(Inv.HonestProver, "valid proof not settled");
                }
            }
        } catch {
            bool inTime =
                s.job.state == JobState.Awarded && now_ <= _providerDeadline(s.job) && p == s.job.provider;
            if (mode == 0 && inTime) _fail(Inv.HonestProver, "a valid delivery in time was refused");
        }
    }

    function challenge(uint256 jobSeed, uint256 who) external tick {
        (bool has, bytes32 id) = _pick(jobSeed, Want.Challenge);
        if (!has) return;
        Snap memory s = _snap(id);
        vm.prank(challengers[who % 2]);
        try _info[id].market.challenge(id) {
            calls[_info[id].honest ? bytes32("challenge.honest") : bytes32("challenge.dishonest")]++;
            _afterCall(id, s, Act.Challenge);
        } catch {}
    }

    /// @notice An honest provider proves its output (mostly); a dishonest one can only offer a proof of the
    /// true output, which the market must reject against the stored one.
    function prove(uint256 jobSeed, uint256 seed, bool viaSolver) external tick {
        (bool has, bytes32 id) = _pick(jobSeed, Want.Prove);
        if (!has) return;
        JobInfo storage info = _info[id];
        bool valid = info.honest && seed % 4 != 0;
        bytes memory proof = valid
            ? _proof(info.commitment, _output(info.commitment, true))
            : _proof(info.commitment, _output(info.commitment, !info.honest));
        Snap memory s = _snap(id);
        vm.prank(viaSolver ? solver : s.job.provider);
        try info.market.prove(id, proof) {
            calls["prove"]++;
            if (!valid) _fail(Inv.HonestProver, "an invalid proof was accepted by prove");
            info.validProof = true;
            _afterCall(id, s, Act.Prove);
        } catch {
            bool disputed = s.job.state == JobState.Challenged || s.job.state == JobState.ProofRequired;
            if (valid && disputed && now_ <= s.job.disputeEnd) {
                _fail(Inv.HonestProver, "a valid proof in time was refused");
            }
        }
    }

    function finalize(uint256 jobSeed) external tick {
        _permissionless(jobSeed, Act.Finalize);
    }

    function expire(uint256 jobSeed) external tick {
        _permissionless(jobSeed, Act.Expire);
    }

    function refund(uint256 jobSeed) external tick {
        _permissionless(jobSeed, Act.Refund);
    }

    /// @notice Someone who is neither the provider nor its solver tries the provider-only calls.
    function grief(uint256 jobSeed, uint256 op) external tick {
        (bool has, bytes32 id) = _pick(jobSeed, Want.Live);
        if (!has) return;
        JobInfo storage info = _info[id];
        uint256[] memory out = _output(info.commitment, true);
        bytes memory proof = _proof(info.commitment, out);
        Snap memory s = _snap(id);
        bool ok;
        vm.startPrank(stranger);
        op %= 3;
        if (op == 0) {
            try info.market.deliver(id, out, proof) {
                ok = true;
            } catch {}
        } else if (op == 1) {
            try info.market.prove(id, proof) {
                ok = true;
            } catch {}
        } else if (info.reverse) {
            ok = _tryBid(id, Bid(providers[jobSeed % 3], 1, 1));
        } else {
            try dutch.fill(id, providers[jobSeed % 3], 1) {
                ok = true;
            } catch {}
        }
        vm.stopPrank();
        if (ok) {
            _fail(Inv.HonestProver, "an unauthorised caller acted for a provider");
            _afterCall(id, s, Act.Grief);
        }
    }

    /// @dev Bids `b` on reverse job `id` with its posted terms (as the current caller); whether it went through.
    function _tryBid(bytes32 id, Bid memory b) internal returns (bool ok) {
        try reverse.bid(id, _auctionTerms[id], b) {
            ok = true;
        } catch {}
    }

    /// @notice Takes every live job one natural step further, from a random first job: bid or fill in
    /// the window; then award, deliver or refund; then challenge, finalize, prove or expire. One call in
    /// four may also jump the clock to the deadline a step needs. Independent calls alone rarely reach
    /// the deep states within a run's depth.
    function progress(uint256 jobSeed, uint256 seed) external {
        calls["progress"]++;
        uint256 n = jobIds.length;
        if (n == 0) return;
        bool jump = seed % 4 == 0;
        for (uint256 k; k < n; ++k) {
            bytes32 id = jobIds[(jobSeed % n + k) % n];
            if (_terminal(_info[id].prev)) continue;
            // at most one jump per call: a jump for one job ends others' windows early
            if (_step(id, uint256(keccak256(abi.encode(seed, k))), jump)) jump = false;
        }
    }

    /// @dev Returns whether it jumped the clock.
    function _step(bytes32 id, uint256 seed, bool jump) internal returns (bool jumped) {
        uint256 idx = _indexOf(id);
        JobInfo storage info = _info[id];
        JobState st = info.prev;
        uint256 r = seed % 8;
        if (st == JobState.Open && now_ < info.auctionEnd) {
            if (info.reverse) this.bid(idx, seed, seed >> 64, seed >> 128, r == 0);
            else this.fill(idx, seed, seed >> 64, r == 0);
            jumped = jump && r < 4;
            if (jumped) _jumpTo(info.auctionEnd);
        } else if (st == JobState.Open) {
            if (!info.reverse || info.minScorer == address(0)) this.refund(idx);
            else if (r < 7) this.award(idx);
            // the best bidder's delivery before the award: refused (the award writes the record first)
            else this.deliver(idx, seed >> 8, false);
        } else if (st == JobState.Awarded) {
            if (r == 0) {
                jumped = jump;
                if (jump) _jumpTo(info.market.providerDeadline(id) + 1);
                this.expire(idx);
            } else {
                this.deliver(idx, seed >> 8, r == 1);
            }
        } else if (st == JobState.Delivered) {
            if (r < 3) {
                this.challenge(idx, seed >> 8);
            } else {
                jumped = jump;
                if (jump) _jumpTo(info.market.job(id).disputeEnd);
                this.finalize(idx);
            }
        } else if (st == JobState.Challenged || st == JobState.ProofRequired) {
            // a dishonest provider cannot prove: its dispute can only expire
            if (r < 2 || !info.honest) {
                jumped = jump;
                if (jump) _jumpTo(info.market.job(id).disputeEnd + 1);
                this.expire(idx);
            } else {
                this.prove(idx, seed >> 8, r == 2);
            }
        }
    }

    // ================================================================== staking

    function stake(uint256 provSeed, uint256 amount) external tick {
        address p = providers[provSeed % 3];
        amount = bound(amount, 1, 50e18);
        _mint(p, amount);
        uint256 before = staking.stakeOf(p);
        vm.prank(p);
        staking.stake(amount);
        ghost_staked += amount;
        if (staking.stakeOf(p) != before + amount) _fail(Inv.Conservation, "stake credited wrongly");
        calls["stake"]++;
    }

    function unstake(uint256 provSeed, uint256 amount) external tick {
        address p = providers[provSeed % 3];
        uint256 avail = staking.availableOf(p);
        amount = bound(amount, 1, avail + 10e18);
        (uint256 pending,) = staking.unstakingOf(p);
        vm.prank(p);
        try staking.unstake(amount) {
            calls["unstake"]++;
            if (amount > avail) _fail(Inv.Unstake, "unstaked more than the available stake");
            (uint256 total, uint64 readyAt) = staking.unstakingOf(p);
            if (total != pending + amount || readyAt != now_ + staking.unstakingDelay()) {
                _fail(Inv.Unstake, "unstaking recorded wrongly");
            }
        } catch {
            if (amount <= avail) _fail(Inv.Unstake, "an unstake within the available stake was refused");
        }
    }

    function redeem(uint256 provSeed) external tick {
        address p = providers[provSeed % 3];
        (uint256 pending, uint64 readyAt) = staking.unstakingOf(p);
        uint256 stakeBefore = staking.stakeOf(p);
        uint256 lockedBefore = staking.lockedOf(p);
        uint256 balBefore = token.balanceOf(p);
        vm.prank(p);
        try staking.redeem() returns (uint256 got) {
            calls["redeem"]++;
            ghost_redeemed += got;
            if (pending == 0 || now_ < readyAt) _fail(Inv.Unstake, "redeemed before unstaking ended");
            if (got != pending || token.balanceOf(p) != balBefore + got) {
                _fail(Inv.Unstake, "redeemed a wrong amount");
            }
            if (staking.stakeOf(p) != stakeBefore - got || staking.lockedOf(p) != lockedBefore) {
                _fail(Inv.Unstake, "redeem touched locked stake");
            }
            if (staking.stakeOf(p) < staking.lockedOf(p)) _fail(Inv.Unstake, "locked stake redeemed");
        } catch {
            if (pending != 0 && now_ >= readyAt) _fail(Inv.Unstake, "a ready redemption was refused");
        }
    }

    /// @notice Anyone pays the accrued fees to the treasury: exactly feesOwed moves, and it resets.
    function withdrawFees(bool onDutch) external tick {
        IMarket m = onDutch ? IMarket(address(dutch)) : IMarket(address(reverse));
        uint256 owed = m.feesOwed();
        uint256 marketBefore = token.balanceOf(address(m));
        uint256 treasuryBefore = token.balanceOf(treasury);
        vm.prank(stranger);
        try m.withdrawFees() returns (uint256 got) {
            calls["withdrawFees"]++;
            ghost_feesWithdrawn += got;
            if (
                got != owed || m.feesOwed() != 0 || token.balanceOf(treasury) != treasuryBefore + got
                    || token.balanceOf(address(m)) != marketBefore - got
            ) _fail(Inv.Conservation, "withdrawFees moved a wrong amount");
        } catch {
            _fail(Inv.Conservation, "withdrawFees reverted");
        }
    }

    /// @notice An account withdraws what one market owes it: exactly that moves, once, and the balance
    /// resets; an account owed nothing is refused with `NothingOwed` and nothing changes.
    function withdrawOwed(uint256 actorSeed, bool onDutch) external tick {
        IMarket m = onDutch ? IMarket(address(dutch)) : IMarket(address(reverse));
        // mostly the requesters, providers and challengers (who are owed), sometimes anyone tracked
        uint256 i = actorSeed % 16 < 14 ? I_REQ + (actorSeed >> 8) % 8 : I_TREASURY + (actorSeed >> 8) % 11;
        address who = tracked[i];
        uint256[N] memory owedBefore;
        for (uint256 k; k < N; ++k) {
            owedBefore[k] = m.owed(tracked[k]);
        }
        uint256 marketBefore = token.balanceOf(address(m));
        uint256 balBefore = token.balanceOf(who);
        vm.prank(who);
        try m.withdraw() returns (uint256 got) {
            calls["withdrawOwed"]++;
            ghost_owedWithdrawn += got;
            if (
                got == 0 || got != owedBefore[i] || m.owed(who) != 0
                    || token.balanceOf(who) != balBefore + got
                    || token.balanceOf(address(m)) != marketBefore - got
            ) _fail(Inv.Conservation, "withdraw paid other than what was owed");
        } catch (bytes memory err) {
            calls["withdrawOwed.nothing"]++;
            if (owedBefore[i] != 0) _fail(Inv.Conservation, "a withdrawal of a credit was refused");
            if (keccak256(err) != keccak256(abi.encodeWithSelector(IMarketEvents.NothingOwed.selector, who)))
            {
                _fail(Inv.Conservation, "withdraw refused with another error than NothingOwed");
            }
            if (token.balanceOf(address(m)) != marketBefore) _fail(Inv.Conservation, "refusal moved tokens");
        }
        for (uint256 k; k < N; ++k) {
            if (k != i && m.owed(tracked[k]) != owedBefore[k]) {
                _fail(Inv.Conservation, "withdraw changed another account's credit");
            }
        }
    }

    // ================================================================== owner and time

    function setParams(bool onDutch, uint256 feeSeed, uint256 rewardSeed, uint256 multipleSeed)
        external
        tick
    {
        IMarket m = onDutch ? IMarket(address(dutch)) : IMarket(address(reverse));
        MarketParams memory p = m.params();
        p.feeBps = uint16(bound(feeSeed, 0, 500));
        p.stakeMultiple = uint16(bound(multipleSeed, 1, 3));
        // (10^4 - reward) * multiple >= 10^4: a self-challenge never recovers more than 1 - 1/multiple
        p.challengerRewardBps = uint16(bound(rewardSeed, 0, BPS - BPS / p.stakeMultiple));
        vm.prank(owner);
        m.setParams(p);
        calls["setParams"]++;
        // sometimes the delay has already passed for an earlier schedule: apply what is due
        (, uint40 at) = m.pendingParams();
        if (feeSeed % 8 == 0) {
            _jumpTo(at);
            vm.prank(stranger);
            m.applyParams();
            calls["applyParams"]++;
        }
    }

    /// @notice Anyone draws the audit of a delivered optimistic job (the seed block must have passed).
    function drawAudit(uint256 jobSeed) external tick {
        (bool has, bytes32 id) = _pick(jobSeed, Want.Finalize);
        if (!has) return;
        Snap memory s = _snap(id);
        vm.prank(stranger);
        try _info[id].market.drawAudit(id) {
            calls["drawAudit"]++;
            _afterCall(id, s, Act.Finalize);
        } catch {}
    }

    /// @notice Mostly short steps; one in 64 jumps hours ahead, past every live deadline.
    function warp(uint256 dt) external {
        now_ += dt % 64 == 0 ? bound(dt, 1 hours, 2 days) : bound(dt, 1, 120);
        vm.warp(now_);
        calls["warp"]++;
    }

    /// @notice Jumps to one second before, at or after one of a job's deadlines (never backwards).
    function warpToBoundary(uint256 jobSeed, uint256 which, uint256 offset) external {
        (bool has, bytes32 id) = _pick(jobSeed, Want.Live);
        if (!has) return;
        Job memory j = _jobOf(_info[id].market, id);
        uint256 t;
        which %= 4;
        if (which == 0) t = j.auctionEnd;
        else if (which == 1) t = j.awardedAt == 0 ? j.deadline : _providerDeadline(j);
        else if (which == 2) t = j.disputeEnd;
        else t = j.deadline;
        if (t == 0) return;
        t = t + (offset % 3) - 1;
        if (t > now_) now_ = t;
        vm.warp(now_);
        calls["warpToBoundary"]++;
    }

    // ================================================================== views for the invariants

    function jobCount() external view returns (uint256) {
        return jobIds.length;
    }

    function jobInfo(bytes32 id) external view returns (JobInfo memory) {
        return _info[id];
    }

    /// @notice The terms reverse job `id` was posted with (as its award and refund take them).
    function termsOf(bytes32 id) external view returns (AuctionTerms memory, JobTerms memory) {
        return (_auctionTerms[id], _jobTerms[id]);
    }

    /// @notice Job `id`'s record as the invariants read it (see `_jobOf`).
    function jobOf(bytes32 id) external view returns (Job memory) {
        return _jobOf(_info[id].market, id);
    }

    function trackedAccounts() external view returns (address[N] memory) {
        return tracked;
    }

    function requesterList() external view returns (address[3] memory) {
        return requesters;
    }

    function providerList() external view returns (address[3] memory) {
        return providers;
    }

    /// @notice What the markets must hold according to the ghost flows: every token pulled in and every
    /// slashed stake received from Staking, less the fees and credits paid out.
    function ghostMarketBalance() external view returns (uint256) {
        return ghost_pulled - ghost_owedWithdrawn - ghost_feesWithdrawn;
    }

    /// @notice What the markets must owe all accounts together: every credit (prices, refunds, bonds,
    /// slash compensation), less what was spent on escrows and bonds and what was withdrawn.
    function ghostOwed() external view returns (uint256) {
        return ghost_paid + ghost_refunded + ghost_bondsOut - ghost_owedSpent - ghost_owedWithdrawn;
    }

    /// @notice What Staking must hold: stakes in, less redemptions and paid claims (slashed stake stays as
    /// claims until claimed).
    function ghostStakingBalance() external view returns (uint256) {
        return ghost_staked - ghost_redeemed - ghost_claimed;
    }

    /// @notice What the providers' stakes must add up to.
    function ghostStakes() external view returns (uint256) {
        return ghost_staked - ghost_redeemed - ghost_slashed;
    }

    // ================================================================== internals: intents

    function _open(uint256 actorSeed, uint256 cfg, uint256 maxPrice, uint256 nonce, bool signed) internal {
        if (jobIds.length >= MAX_JOBS) return;
        uint8 r = uint8(actorSeed % 3);
        bool isReverse = cfg & 1 == 0;
        Intent memory intent = _buildIntent(requesters[r], cfg, maxPrice, nonce, isReverse);
        IMarket m = isReverse ? IMarket(address(reverse)) : IMarket(address(dutch));
        bytes32 id = m.hashIntent(intent);
        bool used = _ghostNonceUsed(address(m), intent.requester, intent.nonce);
        Snap memory s = _snap(m, id);
        bool ok = _send(m, intent, r, signed);
        if (!ok) {
            if (!used) _fail(Inv.Nonce, "a valid intent with a fresh nonce was refused");
            return;
        }
        calls[signed ? bytes32("submitSigned") : bytes32("post")]++;
        if (used) _fail(Inv.Nonce, "a used or cancelled nonce was accepted");
        ghost_nonceBits[address(m)][intent.requester][intent.nonce >> 8] |= uint256(1)
        << (intent.nonce & 0xff);
        jobIds.push(id);
        JobInfo storage info = _info[id];
        info.market = m;
        info.reverse = isReverse;
        info.requesterIdx = r;
        info.commitment = intent.inputCommitment;
        info.auctionEnd = uint40(now_ + intent.auctionWindow);
        _intents[id] = intent;
        if (isReverse) {
            MarketParams memory q = m.params();
            (_auctionTerms[id], _jobTerms[id]) =
                TermsBuilder.build(intent, block.timestamp, q.feeBps, q.stakeMultiple);
            // the market stored the hash of exactly these terms: a view taking them accepts them
            try reverse.clearingPrice(id, _auctionTerms[id]) {}
            catch {
                _fail(Inv.Terms, "the terms rebuilt from the posting do not match the job's");
            }
        }
        Job memory posted = _jobOf(m, id);
        (info.feeBps, info.stakeMultiple) = (posted.feeBps, posted.stakeMultiple);
        info.terms = m.disputeTerms(id);
        MarketParams memory p = m.params();
        if (
            posted.feeBps != p.feeBps || posted.stakeMultiple != p.stakeMultiple
                || (intent.proofMode == PROOF_OPTIMISTIC
                    && (info.terms.challengeBond != p.challengeBond
                        || info.terms.proofWindow != p.proofWindow
                        || info.terms.challengeWindow != p.challengeWindow
                        || info.terms.challengerRewardBps != p.challengerRewardBps))
        ) _fail(Inv.Terms, "a job did not fix the parameters in force at posting");
        _afterCall(id, s, Act.Post);
    }

    function _send(IMarket m, Intent memory intent, uint8 r, bool signed) internal returns (bool ok) {
        bytes32 id = m.hashIntent(intent);
        if (signed) {
            (uint8 v, bytes32 rr, bytes32 ss) = vm.sign(requesterKeys[r], id);
            vm.prank(stranger);
            try m.submitSigned(intent, abi.encodePacked(rr, ss, v)) returns (bytes32 got) {
                ok = true;
                if (got != id) _fail(Inv.Nonce, "job id is not the intent digest");
            } catch {}
        } else {
            vm.prank(intent.requester);
            try m.post(intent) returns (bytes32 got) {
                ok = true;
                if (got != id) _fail(Inv.Nonce, "job id is not the intent digest");
            } catch {}
        }
    }

    /// @dev `cfg` bits: 0 auction type, 1-2 model, 3 proof mode, 4 failover, 8-23 price weight,
    /// 24-63 window, 64-103 deadline span, 104-143 min stake, 144-183 start price, 184-223 expiry.
    function _buildIntent(address requester, uint256 cfg, uint256 maxPrice, uint256 nonce, bool isReverse)
        internal
        view
        returns (Intent memory intent)
    {
        // half the jobs on the plain model, a quarter audited, a quarter zk only
        uint256 modelIdx = [0, 0, 1, 2][(cfg >> 1) % 4];
        intent = IntentBuilder.init(requester, models[modelIdx]);
        intent.inputCommitment = uint256(keccak256(abi.encode(cfg, nonce))) >> 8;
        intent.maxPrice = bound(maxPrice, 1e6, MAX_PRICE);
        intent.auctionType = isReverse ? AUCTION_REVERSE : AUCTION_DUTCH;
        intent.proofMode = modelIdx == 2 || (cfg >> 3) & 1 == 0 ? PROOF_ZK : PROOF_OPTIMISTIC;
        intent.allowFailover = (cfg >> 4) & 1 == 1;
        intent.priceWeightBps = uint16(bound((cfg >> 8) & 0xffff, 1, BPS));
        intent.auctionWindow = uint32(bound((cfg >> 24) & 0xffffffffff, 1, 240));
        intent.deadline = uint64(now_ + intent.auctionWindow + bound((cfg >> 64) & 0xffffffffff, 60, 1800));
        intent.minStake = bound((cfg >> 104) & 0xffffffffff, 0, MAX_MIN_STAKE);
        intent.startPrice = isReverse ? 0 : bound((cfg >> 144) & 0xffffffffff, 1, intent.maxPrice);
        intent.expiry = uint64(now_ + bound((cfg >> 184) & 0xffffffffff, 1, 3600));
        intent.nonce = bound(nonce, 0, NONCE_SPAN - 1);
    }

    function _ghostNonceUsed(address m, address owner_, uint256 nonce) internal view returns (bool) {
        return ghost_nonceBits[m][owner_][nonce >> 8] & (uint256(1) << (nonce & 0xff)) != 0;
    }

    function _recordBid(bytes32 id, Job memory j, address p, uint256 price, uint256 latency) internal {
        JobInfo storage info = _info[id];
        uint256 score = _score(j, price, latency);
        if (info.minScorer == address(0) || score < info.minScore) {
            info.minScore = score;
            info.minScorer = p;
        }
        if (reverse.bestBid(id).provider != info.minScorer) {
            _fail(Inv.Auction, "the book's best is not the best score bid so far");
        }
    }

    // ================================================================== internals: checks

    function _permissionless(uint256 jobSeed, Act act) internal {
        Want w = act == Act.Finalize ? Want.Finalize : act == Act.Expire ? Want.Expire : Want.Refund;
        (bool has, bytes32 id) = _pick(jobSeed, w);
        if (!has) return;
        IMarket m = _info[id].market;
        Snap memory s = _snap(id);
        vm.prank(stranger);
        bool ok;
        if (act == Act.Finalize) {
            try m.finalize(id) {
                ok = true;
            } catch {}
        } else if (act == Act.Expire) {
            try m.expire(id) {
                ok = true;
            } catch {}
        } else if (_info[id].reverse) {
            try reverse.refund(id, _auctionTerms[id], _jobTerms[id]) {
                ok = true;
            } catch {}
        } else {
            try dutch.refund(id) {
                ok = true;
            } catch {}
        }
        if (!ok) return;
        calls[
            act == Act.Finalize
                ? bytes32("finalize")
                : act == Act.Expire ? bytes32("expire") : bytes32("refund")
        ]++;
        _afterCall(id, s, act);
    }

    function _snap(bytes32 id) internal view returns (Snap memory s) {
        return _snap(_info[id].market, id);
    }

    function _snap(IMarket m, bytes32 id) internal view returns (Snap memory s) {
        s.m = m;
        s.mi = address(m) == address(reverse) ? 0 : 1;
        s.now_ = now_;
        s.job = _jobOf(m, id);
        s.p = m.params();
        for (uint256 i; i < N; ++i) {
            s.bal[i] = token.balanceOf(tracked[i]);
            s.owed[i] = m.owed(tracked[i]);
        }
        for (uint256 i; i < 3; ++i) {
            s.stakeOf[i] = staking.stakeOf(providers[i]);
            s.avail[i] = staking.availableOf(providers[i]);
            s.locked[i] = staking.lockedOf(providers[i]);
        }
        if (s.job.requester != address(0)) s.reqClaimable = staking.claimable(s.job.requester);
        s.terms = m.disputeTerms(id);
        if (s.job.provider != address(0)) s.lockedForJob = staking.lockedFor(s.job.provider, id);
        if (s.mi == 0 && s.job.state != JobState.None) {
            s.best = reverse.bestBid(id);
            s.runner = reverse.runnerUp(id);
            // an award releases the book's reservations before it locks (`_releaseBook`): while Open, what the
            // book's bidders can lock at the award includes their reservation of the job's largest lock
            uint256 reserved;
            if (s.job.state == JobState.Open) {
                reserved = uint256(s.job.maxPrice) * s.job.stakeMultiple;
                if (reserved < s.job.minStake) reserved = s.job.minStake;
            }
            if (s.best.provider != address(0)) s.bestAvail = staking.lockableOf(s.best.provider) + reserved;
            if (s.runner.provider != address(0)) {
                s.runnerAvail = staking.lockableOf(s.runner.provider) + reserved;
            }
            if (s.job.state == JobState.Open) s.clearing = reverse.clearingPrice(id, _auctionTerms[id]);
        }
    }

    /// @dev Everything checked after a successful call on job `id`.
    function _afterCall(bytes32 id, Snap memory s, Act act) internal {
        _target = id;
        _checkRecord(s.m, id);
        Job memory a = _jobOf(s.m, id);
        Flows memory f = _expectedFlows(id, s, a);
        _checkFlows(s, f, act);
        _checkStake(id, s, a);
        if (s.job.state == JobState.Open && a.state != JobState.Open) _checkAward(id, s, a, act);
        if (s.job.state == JobState.Awarded && a.state != JobState.Settled) _checkFailover(id, s, a);
        JobInfo storage info = _info[id];
        if (a.state == JobState.Settled && s.job.state != JobState.Settled) {
            if (++info.payouts > 1) _fail(Inv.PayOnce, "a job settled twice");
        }
        if (a.stakeLocked > info.maxLock) info.maxLock = a.stakeLocked;
        uint256 minFee = staking.minCountedFee();
        if (a.provider != address(0) && a.provider != s.job.provider) {
            // a new award (or failover): it must leave the provider all the time it promised
            if (uint256(a.awardedAt) + a.latency > a.deadline) {
                _fail(Inv.Time, "awarded with less time than the provider promised");
            }
            if (uint256(a.price) * a.feeBps / BPS >= minFee) ghost_countedWins[a.provider]++;
        }
        if (a.state == JobState.Settled && s.job.state != JobState.Settled) {
            if (uint256(a.price) * a.feeBps / BPS >= minFee) ghost_countedSettles[a.provider]++;
        }
    }

    /// @dev The token flows and credits the protocol documents for the transition s.job.state -> a.state.
    function _expectedFlows(bytes32 id, Snap memory s, Job memory a) internal returns (Flows memory f) {
        JobState from = s.job.state;
        JobState to = a.state;
        if (from == to && a.provider == s.job.provider) return f;
        JobInfo storage info = _info[id];
        uint256 escrow = uint256(a.maxPrice) + uint256(a.maxPrice) * a.feeBps / BPS;
        uint256 req = I_REQ + info.requesterIdx;
        if (from == JobState.None) {
            info.escrow = escrow;
            ghost_escrowed += escrow;
            _expectCollect(s, f, req, escrow);
            if (a.feeBps != s.p.feeBps) _fail(Inv.Split, "job did not record the fee in force");
        } else if (to == JobState.Settled) {
            _expectSettle(id, s, a, f, escrow);
        } else if (to == JobState.Refunded) {
            _payRefund(info, f, req, escrow);
        } else if (to == JobState.Challenged) {
            uint256 bond = a.challengeBond;
            ghost_bondsIn += bond;
            _expectCollect(s, f, _idx(a.challenger), bond);
            if (bond != s.terms.challengeBond) {
                _fail(Inv.Terms, "challenge bond differs from the job's terms");
            }
            if (a.disputeEnd != now_ + s.terms.proofWindow) _fail(Inv.Terms, "proof window not the job's");
        } else if (to == JobState.Expired || to == JobState.Slashed || (to == JobState.Awarded && from == to))
        {
            _expectSlash(id, s, a, f, escrow);
        }
    }

    /// @dev An escrow or bond of `amount` from account `i`: from its credit when that covers all of it
    /// (no token moves), else all of it from its allowance.
    function _expectCollect(Snap memory s, Flows memory f, uint256 i, uint256 amount) internal {
        if (s.owed[i] >= amount) {
            calls["collect.fromOwed"]++;
            ghost_owedSpent += amount;
            f.owed[i] -= int256(amount);
        } else {
            calls["collect.pulled"]++;
            ghost_pulled += amount;
            f.tok[s.mi] += int256(amount);
            f.tok[i] -= int256(amount);
        }
    }

    function _expectSettle(bytes32 id, Snap memory s, Job memory a, Flows memory f, uint256 escrow) internal {
        JobInfo storage info = _info[id];
        uint256 price = a.price;
        uint256 fee = price * a.feeBps / BPS;
        if (price > a.maxPrice || price + fee > escrow) {
            _fail(Inv.Split, "paid more than the escrow");
            return;
        }
        uint256 back = escrow - price - fee;
        // rounding: the fee is floored, so any dust stays with the requester
        if (fee * BPS > price * a.feeBps || back + price + fee != escrow) {
            _fail(Inv.Split, "split rounds wrongly");
        }
        uint256 bond = s.job.state == JobState.Challenged ? s.job.challengeBond : 0;
        ghost_paid += price;
        ghost_fees += fee;
        ghost_bondsOut += bond;
        // no token moves: the provider and the requester are credited, the fee accrues for the treasury
        f.owed[_idx(a.provider)] += int256(price + bond);
        _payRefund(info, f, I_REQ + info.requesterIdx, back);
        // what the requester paid in the end
        if (escrow - back > uint256(a.maxPrice) + uint256(a.maxPrice) * a.feeBps / BPS) {
            _fail(Inv.PayOnce, "requester paid more than max price plus fee");
        }
    }

    /// @dev Expiry (with or without failover) and failed proofs: the lock is slashed in full.
    function _expectSlash(bytes32 id, Snap memory s, Job memory a, Flows memory f, uint256 escrow) internal {
        JobInfo storage info = _info[id];
        uint256 req = I_REQ + info.requesterIdx;
        uint256 locked = s.job.stakeLocked;
        uint256 toChallenger;
        if (a.state == JobState.Slashed && s.job.challenger != address(0)) {
            toChallenger = locked * s.terms.challengerRewardBps / BPS;
            uint256 bond = s.job.challengeBond;
            ghost_bondsOut += bond;
            // the bond is credited here, the reward in Staking
            f.owed[_idx(s.job.challenger)] += int256(bond);
        }
        ghost_slashed += locked;
        ghost_compensated += locked;
        // the job's slashes of the provider that holds it now: a failover (the job Awarded again, to the
        // runner-up) leaves the slashed provider behind, and the new one may prove
        if (a.state == JobState.Awarded) info.slashed = 0;
        else info.slashed += locked;
        // the lock is credited to the requester (and challenger) in Staking: no token moves
        if (staking.claimable(tracked[req]) < s.reqClaimable + locked - toChallenger) {
            _fail(Inv.Split, "compensation not credited to the requester in Staking");
        }
        if (a.state != JobState.Awarded) {
            // terminal: the escrow is credited back in full
            _payRefund(info, f, req, escrow);
        }
    }

    function _payRefund(JobInfo storage info, Flows memory f, uint256 req, uint256 amount) internal {
        info.refunded += amount;
        ghost_refunded += amount;
        f.owed[req] += int256(amount);
        if (info.refunded > info.escrow) _fail(Inv.PayOnce, "refunded more than the escrow");
    }

    function _checkFlows(Snap memory s, Flows memory f, Act act) internal {
        bool wasTerminal = _terminal(s.job.state);
        for (uint256 i; i < N; ++i) {
            int256 actual = int256(token.balanceOf(tracked[i])) - int256(s.bal[i]);
            int256 credited = int256(s.m.owed(tracked[i])) - int256(s.owed[i]);
            if (actual == f.tok[i] && credited == f.owed[i]) continue;
            if (wasTerminal) {
                _fail(Inv.PayOnce, string.concat("tokens moved for a finished job, account ", _str(i)));
            } else if (i <= I_STAKING) {
                _fail(Inv.Conservation, string.concat("contract balance off, account ", _str(i)));
            } else {
                _fail(
                    Inv.Split, string.concat("split off, account ", _str(i), " action ", _str(uint256(act)))
                );
            }
        }
    }

    function _checkStake(bytes32 id, Snap memory s, Job memory a) internal {
        bool slashing = (s.job.state == JobState.Awarded && a.state == JobState.Expired)
            || (s.job.state == JobState.Awarded
                && a.state == JobState.Awarded
                && a.provider != s.job.provider) || (!_terminal(s.job.state) && a.state == JobState.Slashed);
        for (uint256 i; i < 3; ++i) {
            address p = providers[i];
            uint256 afterStake = staking.stakeOf(p);
            if (afterStake > s.stakeOf[i]) {
                _fail(Inv.Slash, "a market call raised a stake");
                continue;
            }
            uint256 drop = s.stakeOf[i] - afterStake;
            bool victim = slashing && p == s.job.provider;
            bool candidate = s.job.state == JobState.Open && (p == s.best.provider || p == s.runner.provider);
            if (candidate && drop != 0) {
                // an award skipped this bidder for lack of stake: it lost free stake only, to the requester
                if (staking.lockedOf(p) < s.locked[i]) _fail(Inv.Slash, "a penalty touched locked stake");
                ghost_slashed += drop;
                ghost_compensated += drop;
                calls["penalty"]++;
            } else if (drop != (victim ? s.job.stakeLocked : 0)) {
                _fail(Inv.Slash, "slashed other than the job's lock");
            }
            if (victim) {
                if (drop > s.lockedForJob) _fail(Inv.Slash, "slashed more than was locked for the job");
                if (staking.availableOf(p) != s.avail[i]) _fail(Inv.Slash, "unlocked stake was slashed");
                if (staking.lockedFor(p, id) != 0) _fail(Inv.Slash, "a slashed lock was left behind");
            }
        }
        if (_terminal(a.state) && a.provider != address(0) && staking.lockedFor(a.provider, id) != 0) {
            _fail(Inv.Slash, "a finished job still locks stake");
        }
        if (uint8(a.state) >= uint8(JobState.Awarded) && !_terminal(a.state)) {
            if (staking.lockedFor(a.provider, id) != a.stakeLocked) {
                _fail(Inv.Slash, "lock differs from the job");
            }
        }
    }

    /// @dev Open -> anything: who won, at what price.
    function _checkAward(bytes32 id, Snap memory s, Job memory a, Act act) internal {
        if (a.state == JobState.Refunded) {
            if (act == Act.Refund) {
                if (s.mi == 0 && s.best.provider != address(0) && now_ < s.job.deadline) {
                    _fail(Inv.Auction, "refunded while an award was possible");
                }
            } else if (_bestCanWin(s) || _runnerCanLock(s)) {
                _fail(Inv.Auction, "award refunded although a bidder could lock in time");
            }
            return;
        }
        uint256 floor = uint256(a.price) * a.stakeMultiple;
        if (a.stakeLocked < floor || a.stakeLocked < a.minStake) {
            _fail(Inv.Auction, "lock below price * stakeMultiple");
        }
        if (a.price > a.maxPrice || a.price == 0) _fail(Inv.Auction, "awarded price outside (0, maxPrice]");
        if (s.mi == 1) {
            uint256 start = s.job.startPrice;
            uint256 expected = start + (uint256(s.job.maxPrice) - start) * (now_ - s.job.postedAt)
                / (s.job.auctionEnd - s.job.postedAt);
            if (a.price != expected || a.price < start) {
                _fail(Inv.Auction, "fill price is not the Dutch price");
            }
            return;
        }
        JobInfo storage info = _info[id];
        if (a.provider == s.best.provider) {
            if (a.provider != info.minScorer) _fail(Inv.Auction, "winner does not hold the best score");
            if (a.price < s.best.price) _fail(Inv.Auction, "winner paid below its own bid");
            // the clearing price, cut to what the winner's lockable stake covers (never below its bid)
            uint256 cap = s.bestAvail / s.job.stakeMultiple;
            uint256 expected = s.clearing;
            if (expected > cap) expected = cap < s.best.price ? s.best.price : cap;
            if (a.price != expected) {
                _fail(Inv.Auction, "winner not paid the clearing price its stake covers");
            }
        } else if (a.provider == s.runner.provider && a.provider != address(0)) {
            if (_bestCanWin(s)) _fail(Inv.Auction, "runner-up won over a lockable, timely best");
            if (a.price != s.runner.price) _fail(Inv.Auction, "runner-up not paid its own bid");
        } else {
            _fail(Inv.Auction, "awarded to a provider outside the book");
        }
    }

    /// @dev Awarded -> Awarded (failover) or Expired / Slashed.
    function _checkFailover(bytes32, Snap memory s, Job memory a) internal {
        if (a.state == JobState.Awarded && a.provider != s.job.provider) {
            calls["failover"]++;
            if (s.mi != 0 || !s.job.allowFailover) _fail(Inv.Auction, "failover without permission");
            if (a.provider != s.runner.provider || a.price != s.runner.price) {
                _fail(Inv.Auction, "failover not to the runner-up at its bid");
            }
        }
        if (a.state == JobState.Expired && s.mi == 0 && s.job.allowFailover && _runnerCanLock(s)) {
            _fail(Inv.Auction, "failover skipped although possible");
        }
    }

    function _runnerCanLock(Snap memory s) internal view returns (bool) {
        return s.runner.provider != address(0) && s.runnerAvail >= _required(s, s.runner.price)
            && now_ + s.runner.latency <= s.job.deadline;
    }

    function _bestCanWin(Snap memory s) internal view returns (bool) {
        return s.best.provider != address(0) && s.bestAvail >= _required(s, s.best.price)
            && now_ + s.best.latency <= s.job.deadline;
    }

    function _required(Snap memory s, uint256 price) internal pure returns (uint256 r) {
        r = price * s.job.stakeMultiple;
        if (r < s.job.minStake) r = s.job.minStake;
    }

    /// @dev After every call: each job's state may only move along a documented edge, and only the
    /// job the call was about may move at all.
    function _checkTransitions() internal {
        uint256 n = jobIds.length;
        for (uint256 i; i < n; ++i) {
            bytes32 id = jobIds[i];
            JobInfo storage info = _info[id];
            JobState cur = info.market.job(id).state;
            JobState prev = info.prev;
            if (cur == prev) continue;
            if (!allowed(prev, cur)) {
                _fail(
                    Inv.Transition,
                    string.concat("illegal edge ", _str(uint256(prev)), " -> ", _str(uint256(cur)))
                );
            }
            if (id != _target) _fail(Inv.Transition, "a call moved another job");
            info.prev = cur;
            calls[keccak256(abi.encode("edge", prev, cur))]++;
        }
    }

    /// @notice The documented forward edges (docs/PROTOCOL.md; IMarket). Terminal states have none.
    function allowed(JobState from, JobState to) public pure returns (bool) {
        if (from == JobState.None) return to == JobState.Open;
        if (from == JobState.Open) {
            // award/fill (an award that finds nobody able refunds); refund. A delivery never awards an Open job.
            return to == JobState.Awarded || to == JobState.Refunded;
        }
        if (from == JobState.Awarded) {
            return to == JobState.Delivered || to == JobState.ProofRequired || to == JobState.Settled
                || to == JobState.Expired;
        }
        // the audit is drawn after delivery (drawAudit, or finalize when it was not drawn yet)
        if (from == JobState.Delivered) {
            return to == JobState.Challenged || to == JobState.Settled || to == JobState.ProofRequired;
        }
        if (from == JobState.Challenged || from == JobState.ProofRequired) {
            return to == JobState.Settled || to == JobState.Slashed;
        }
        return false;
    }

    // ================================================================== internals: helpers

    /// @dev A job for which the call makes sense now, scanning from a random start; one pick in eight (or
    /// when none fits) is any job, so that calls in the wrong state or at the wrong time are tried too.
    function _pick(uint256 seed, Want w) internal view returns (bool, bytes32) {
        uint256 n = jobIds.length;
        if (n == 0) return (false, bytes32(0));
        uint256 start = seed % n;
        if (w == Want.Any || (seed >> 128) % 8 == 0) return (true, jobIds[start]);
        for (uint256 k; k < n; ++k) {
            bytes32 id = jobIds[(start + k) % n];
            if (_fits(_info[id], w)) return (true, id);
        }
        return (true, jobIds[start]);
    }

    function _fits(JobInfo storage info, Want w) internal view returns (bool) {
        JobState st = info.prev;
        bool open = st == JobState.Open;
        bool windowOpen = now_ < info.auctionEnd;
        if (w == Want.Live) return !_terminal(st);
        if (w == Want.Bid) return open && info.reverse && windowOpen;
        if (w == Want.Fill) return open && !info.reverse && windowOpen;
        // an open reverse job past its window with bids is awarded by `award` (a delivery is refused until then)
        bool awardable = open && info.reverse && !windowOpen && info.minScorer != address(0);
        if (w == Want.Award) return awardable;
        if (w == Want.Deliver) return st == JobState.Awarded;
        if (w == Want.Challenge || w == Want.Finalize) return st == JobState.Delivered;
        if (w == Want.Prove) return st == JobState.Challenged || st == JobState.ProofRequired;
        if (w == Want.Expire) {
            return st == JobState.Awarded || st == JobState.Challenged || st == JobState.ProofRequired;
        }
        return open && !windowOpen; // Refund
    }

    function _indexOf(bytes32 id) internal view returns (uint256) {
        uint256 n = jobIds.length;
        for (uint256 i; i < n; ++i) {
            if (jobIds[i] == id) return i;
        }
        revert("MarketHandler: unknown job");
    }

    /// @dev Moves the handler's clock forward to `t` (never backwards).
    function _jumpTo(uint256 t) internal {
        if (t > now_) now_ = t;
        vm.warp(now_);
    }

    /// @dev Who hands in the output: the provider, or on an open reverse job the current best bidder (refused
    /// until the award).
    function _deliverer(bytes32 id, uint256 seed) internal view returns (address p) {
        JobInfo storage info = _info[id];
        p = info.market.job(id).provider;
        if (p == address(0) && info.reverse) p = reverse.bestBid(id).provider;
        if (p == address(0)) p = providers[seed % 3];
    }

    /// @dev `m.job(id)`, with what a reverse job's record does not hold filled in from its posted terms: an Open
    /// job stores only the hash of its terms beside its state, and a refund without an award writes the fields
    /// the refund reads (requester, proof mode, fee, callback gas, state, deadline, price cap) only. A record
    /// the award wrote (postedAt set) is returned as it is. `_checkRecord` checks what the record does hold.
    function _jobOf(IMarket m, bytes32 id) internal view returns (Job memory v) {
        v = m.job(id);
        if (address(m) != address(reverse) || v.state == JobState.None || v.postedAt != 0) return v;
        AuctionTerms memory t = _auctionTerms[id];
        JobTerms memory jt = _jobTerms[id];
        if (v.state == JobState.Open) {
            (v.requester, v.proofMode, v.feeBps, v.callbackGasLimit) =
            (jt.requester, jt.proofMode, jt.feeBps, jt.callbackGasLimit);
            (v.deadline, v.maxPrice) = (t.deadline, t.maxPrice);
        }
        (v.minStake, v.postedAt, v.auctionEnd, v.stakeMultiple) =
        (t.minStake, jt.postedAt, t.auctionEnd, t.stakeMultiple);
        (v.priceWeightBps, v.allowFailover, v.modelId, v.inputCommitment) =
        (t.priceWeightBps, jt.allowFailover, jt.modelId, jt.inputCommitment);
    }

    /// @dev What a reverse job's record holds of its terms is the posted terms: nothing but the state while Open;
    /// the refund's fields after a refund without an award; every term once the award wrote the record.
    function _checkRecord(IMarket m, bytes32 id) internal {
        if (address(m) != address(reverse)) return;
        Job memory v = m.job(id);
        AuctionTerms memory t = _auctionTerms[id];
        JobTerms memory jt = _jobTerms[id];
        if (v.state == JobState.Open) {
            Job memory open;
            open.state = JobState.Open;
            if (keccak256(abi.encode(v)) != keccak256(abi.encode(open))) {
                _fail(Inv.Terms, "an Open reverse job shows more than its state");
            }
            return;
        }
        bool refundFields = v.requester == jt.requester && v.proofMode == jt.proofMode
            && v.feeBps == jt.feeBps && v.callbackGasLimit == jt.callbackGasLimit && v.deadline == t.deadline
            && v.maxPrice == t.maxPrice;
        if (!refundFields) _fail(Inv.Terms, "a reverse job's record differs from its posted terms");
        if (v.postedAt == 0) return;
        bool awardFields = v.minStake == t.minStake && v.postedAt == jt.postedAt
            && v.auctionEnd == t.auctionEnd && v.stakeMultiple == t.stakeMultiple
            && v.priceWeightBps == t.priceWeightBps && v.allowFailover == jt.allowFailover
            && v.modelId == jt.modelId && v.inputCommitment == jt.inputCommitment;
        if (!awardFields) _fail(Inv.Terms, "the award wrote other terms than the posted ones");
    }

    function _idx(address a) internal view returns (uint256) {
        for (uint256 i; i < N; ++i) {
            if (tracked[i] == a) return i;
        }
        revert("MarketHandler: untracked account");
    }

    function _score(Job memory j, uint256 price, uint256 latency) internal pure returns (uint256) {
        uint256 maxLatency = j.deadline - j.auctionEnd;
        return j.priceWeightBps * price * maxLatency + (BPS - j.priceWeightBps) * latency * j.maxPrice;
    }

    function _providerDeadline(Job memory j) internal pure returns (uint256) {
        uint256 due = uint256(j.awardedAt) + j.latency;
        return due < j.deadline ? due : j.deadline;
    }

    /// @dev The true output of a job is derived from its commitment; the wrong one differs in one element.
    function _output(uint256 commitment, bool honest) internal pure returns (uint256[] memory out) {
        out = new uint256[](2);
        out[0] = commitment % 1_000_003;
        out[1] = honest ? 1 : 2;
    }

    /// @dev The MockVerifier proof for the fixture layout [commitment, out0, out1].
    function _proof(uint256 commitment, uint256[] memory out) internal pure returns (bytes memory) {
        uint256[] memory instances = new uint256[](3);
        instances[0] = commitment;
        instances[1] = out[0];
        instances[2] = out[1];
        return abi.encode(instances);
    }

    function _terminal(JobState s) internal pure returns (bool) {
        return uint8(s) >= uint8(JobState.Settled);
    }

    function _mint(address to, uint256 amount) internal {
        token.mint(to, amount);
        ghost_minted += amount;
    }

    function _fail(Inv k, string memory why) internal {
        if (violations[uint256(k)]++ == 0) firstViolation[uint256(k)] = why;
    }

    function _str(uint256 v) internal pure returns (string memory) {
        if (v == 0) return "0";
        bytes memory b;
        while (v != 0) {
            b = abi.encodePacked(bytes1(uint8(48 + v % 10)), b);
            v /= 10;
        }
        return string(b);
    }
}
