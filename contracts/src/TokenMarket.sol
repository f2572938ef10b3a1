// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IStaking} from "./interfaces/IStaking.sol";
import {IModelRegistry, ModelInfo, MODES_REEXECUTION} from "./interfaces/IModelRegistry.sol";
import {ITokenMarket, TokenJob, JobState, TokenModelConfig, TokenQuote} from "./interfaces/ITokenMarket.sol";
import {IResultCommitments} from "./interfaces/IResultCommitments.sol";
import {ResultCommitment} from "./libraries/ResultCommitment.sol";

/// @title TokenMarket
/// @notice Token jobs priced per 1,000 tokens, paid for the tokens delivered, checked by sampled re-execution
/// decided by a quorum of staked re-executors. Shares `Staking` (and so the payment token) with the auction
/// markets; the owner authorises it there like any market.
contract TokenMarket is ITokenMarket, EIP712, Ownable2Step, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    bytes32 private constant QUOTE_TYPEHASH = keccak256(
        "TokenQuote(address requester,address provider,bytes32 modelId,bytes32 requestHash,uint32 maxTokens,"
        "uint96 pricePer1k,uint32 latency,uint64 expiry,uint256 salt)"
    );

    IERC20 private immutable _token;
    IStaking private immutable _staking;
    IModelRegistry private immutable _registry;
    uint32 private immutable _challengeWindow;
    uint32 private immutable _voteWindow;
    uint96 private immutable _challengeBond;
    uint16 private immutable _challengerRewardBps;

    mapping(bytes32 modelId => TokenModelConfig) private _models;
    mapping(bytes32 modelId => mapping(address account => bool)) private _reexecutors;
    // written through a storage pointer (`_record`, the state transitions): slither does not see those writes
    // slither-disable-next-line uninitialized-state
    mapping(bytes32 jobId => TokenJob) private _jobs;
    mapping(bytes32 jobId => mapping(address account => bool)) private _voted;
    mapping(address account => uint256) private _owed;

    error TokenMismatch(address stakingToken, address token);
    error BadRewardBps(uint16 bps);

    constructor(
        IERC20 token_,
        IStaking staking_,
        IModelRegistry registry_,
        address owner_,
        uint32 challengeWindow_,
        uint32 voteWindow_,
        uint96 challengeBond_,
        uint16 challengerRewardBps_
    ) EIP712("Tender", "1") Ownable(owner_) {
        if (
            address(token_) == address(0) || address(staking_) == address(0)
                || address(registry_) == address(0)
        ) {
            revert ZeroAddress();
        }
        if (staking_.token() != address(token_)) revert TokenMismatch(staking_.token(), address(token_));
        if (challengerRewardBps_ > 10_000) revert BadRewardBps(challengerRewardBps_);
        _token = token_;
        _staking = staking_;
        _registry = registry_;
        _challengeWindow = challengeWindow_;
        _voteWindow = voteWindow_;
        _challengeBond = challengeBond_;
        _challengerRewardBps = challengerRewardBps_;
    }

    // ---------------------------------------------------------------- owner

    /// @inheritdoc ITokenMarket
    function setTokenModel(bytes32 modelId, TokenModelConfig calldata config) external onlyOwner {
        // the registry's re-execution tier: the model id pins the ONNX file and its audit share is the tier's
        uint8 modes = _registry.proofModesOf(modelId);
        if (modes != MODES_REEXECUTION) revert NotReexecutionModel(modelId, modes);
        ModelInfo memory info = _registry.model(modelId);
        if (config.auditRateBps != info.auditRateBps) {
            revert AuditRateMismatch(info.auditRateBps, config.auditRateBps);
        }
        if (
            config.vocabSize == 0 || config.eosId >= config.vocabSize || config.quorum == 0
                || config.auditRateBps > 10_000 || config.maxTokens == 0
        ) revert BadTokenModel(config.vocabSize, config.eosId, config.quorum, config.auditRateBps);
        _models[modelId] = config;
        emit TokenModelSet(modelId, config);
    }

    /// @inheritdoc ITokenMarket
    function registry() external view returns (IModelRegistry) {
        return _registry;
    }

    /// @inheritdoc ITokenMarket
    function setReexecutor(bytes32 modelId, address account, bool allowed) external onlyOwner {
        if (account == address(0)) revert ZeroAddress();
        if (_models[modelId].vocabSize == 0) revert UnknownTokenModel(modelId);
        _reexecutors[modelId][account] = allowed;
        emit ReexecutorSet(modelId, account, allowed);
    }

    // ---------------------------------------------------------------- lifecycle

    /// @inheritdoc ITokenMarket
    function open(TokenQuote calldata quote, bytes calldata signature)
        external
        nonReentrant
        returns (bytes32 jobId)
    {
        if (msg.sender != quote.requester) revert NotRequester(msg.sender, quote.requester);
        TokenModelConfig memory model = _models[quote.modelId];
        if (model.vocabSize == 0) revert UnknownTokenModel(quote.modelId);
        if (block.timestamp >= quote.expiry) revert TokenQuoteExpired(quote.expiry, block.timestamp);
        if (quote.maxTokens == 0 || quote.maxTokens > model.maxTokens) {
            revert BadBudget(quote.maxTokens, model.maxTokens);
        }
        if (quote.pricePer1k == 0) revert ZeroPrice();
        if (quote.latency == 0) revert ZeroLatency();
        jobId = _hashTypedDataV4(_structHash(quote));
        // the error and its argument are not needed: a failed recovery gives address(0), refused below
        // slither-disable-next-line unused-return
        (address signer,,) = ECDSA.tryRecover(jobId, signature);
        if (
            signer == address(0)
                || (signer != quote.provider && !_staking.isAuthorized(quote.provider, signer))
        ) {
            revert InvalidQuoteSigner(quote.provider, signer);
        }
        if (_jobs[jobId].state != JobState.None) revert JobExists(jobId);

        uint256 escrow = escrowFor(quote.pricePer1k, quote.maxTokens);
        // escrow <= 2^96 * 2^32 / 1000 + 1 < 2^118; times stakeMultiple (< 2^16) < 2^134: no overflow in 0.8
        uint256 stakeLocked = escrow * model.stakeMultiple;
        if (stakeLocked == 0) stakeLocked = 1;
        _record(jobId, quote, escrow, stakeLocked);
        _staking.lock(quote.provider, jobId, stakeLocked, 0);
        _pull(escrow);
    }

    /// @inheritdoc ITokenMarket
    function deliver(bytes32 jobId, bytes calldata tokens) external nonReentrant {
        TokenJob storage j = _jobs[jobId];
        if (j.state != JobState.Awarded) revert WrongState(jobId, j.state);
        address provider = j.provider;
        if (msg.sender != provider && !_staking.isAuthorized(provider, msg.sender)) {
            revert NotProviderOrSolver(msg.sender, provider);
        }
        if (block.timestamp > j.due) revert PastDue(j.due, block.timestamp);
        uint256 n = tokens.length / 4;
        if (n == 0 || tokens.length % 4 != 0) revert BadTokenEncoding(tokens.length);
        uint32 maxTokens = j.maxTokens;
        if (n > maxTokens) revert TooManyTokens(n, maxTokens);
        TokenModelConfig storage model = _models[j.modelId];
        uint32 eos = model.eosId;
        uint32 vocab = model.vocabSize;
        for (uint256 i; i < n; ++i) {
            uint32 id = uint32(bytes4(tokens[4 * i:4 * i + 4]));
            if (id >= vocab) revert TokenOutsideVocab(i, id, vocab);
            if (id == eos && i + 1 < n) revert TokenAfterEos(i + 1);
        }
        // a short sequence must end with EOS
        if (n < maxTokens && uint32(bytes4(tokens[4 * n - 4:4 * n])) != eos) revert Truncated(n, maxTokens);
        bytes32 outputHash = keccak256(tokens);
        j.state = JobState.Delivered;
        j.deliveredBlock = uint40(block.number);
        j.deliveredAt = uint40(block.timestamp);
        // n <= maxTokens < 2^32
        j.delivered = uint32(n);
        j.outputHash = outputHash;
        emit TokenDelivered(jobId, provider, uint32(n), outputHash, tokens);
    }

    /// @inheritdoc ITokenMarket
    function drawAudit(bytes32 jobId) external returns (bool audited) {
        TokenJob storage j = _jobs[jobId];
        if (j.state != JobState.Delivered || j.auditDrawn) revert WrongState(jobId, j.state);
        return _draw(jobId, j);
    }

    /// @inheritdoc ITokenMarket
    function challenge(bytes32 jobId) external nonReentrant {
        TokenJob storage j = _jobs[jobId];
        if (j.state != JobState.Delivered) revert WrongState(jobId, j.state);
        uint256 closesAt = uint256(j.deliveredAt) + _challengeWindow;
        if (block.timestamp > closesAt) revert ChallengeWindowClosed(closesAt, block.timestamp);
        uint96 bond = _challengeBond;
        _dispute(jobId, j, msg.sender, bond);
        _pull(bond);
    }

    /// @inheritdoc ITokenMarket
    function vote(bytes32 jobId, bool faithful) external nonReentrant {
        TokenJob storage j = _jobs[jobId];
        if (j.state != JobState.Challenged) revert WrongState(jobId, j.state);
        if (block.timestamp > j.voteDeadline) revert VoteClosed(j.voteDeadline, block.timestamp);
        TokenModelConfig storage model = _models[j.modelId];
        if (!_reexecutors[j.modelId][msg.sender]) revert NotReexecutor(msg.sender, j.modelId);
        if (msg.sender == j.provider || msg.sender == j.requester || msg.sender == j.challenger) {
            revert OwnJob(msg.sender);
        }
        uint256 stake = _staking.stakeOf(msg.sender);
        if (stake < model.minReexecutorStake) {
            revert ReexecutorStakeTooLow(msg.sender, stake, model.minReexecutorStake);
        }
        if (_voted[jobId][msg.sender]) revert AlreadyVoted(jobId, msg.sender);
        _voted[jobId][msg.sender] = true;
        // at most one vote per registered account; fewer than 2^16 before the quorum (< 2^16) decides
        uint16 count;
        if (faithful) count = ++j.votesFaithful;
        else count = ++j.votesUnfaithful;
        emit ReexecutionVoted(jobId, msg.sender, faithful);
        if (count >= model.quorum) {
            if (faithful) _settle(jobId, j);
            else _slash(jobId, j);
        }
    }

    /// @inheritdoc ITokenMarket
    function finalize(bytes32 jobId) external nonReentrant {
        TokenJob storage j = _jobs[jobId];
        if (j.state == JobState.Delivered) {
            uint256 closesAt = uint256(j.deliveredAt) + _challengeWindow;
            if (block.timestamp <= closesAt) revert WindowOpen(closesAt, block.timestamp);
            if (!j.auditDrawn && _draw(jobId, j)) return;
            _settle(jobId, j);
        } else if (j.state == JobState.Challenged) {
            if (block.timestamp <= j.voteDeadline) revert WindowOpen(j.voteDeadline, block.timestamp);
            _settle(jobId, j);
        } else {
            revert WrongState(jobId, j.state);
        }
    }

    /// @inheritdoc ITokenMarket
    function expire(bytes32 jobId) external nonReentrant {
        TokenJob storage j = _jobs[jobId];
        if (j.state != JobState.Awarded) revert WrongState(jobId, j.state);
        if (block.timestamp <= j.due) revert NotDue(j.due, block.timestamp);
        j.state = JobState.Expired;
        address requester = j.requester;
        _owed[requester] += j.escrow;
        emit TokenJobExpired(jobId, j.provider, j.stakeLocked);
        _staking.recordExpiry(j.provider, jobId);
        _staking.slash(j.provider, jobId, j.stakeLocked, requester);
    }

    /// @inheritdoc ITokenMarket
    function slashCommitment(bytes32 jobId, bytes32 committedHash, bytes calldata signature)
        external
        nonReentrant
    {
        TokenJob storage j = _jobs[jobId];
        JobState state = j.state;
        if (state != JobState.Delivered && state != JobState.Challenged && state != JobState.Settled) {
            revert WrongState(jobId, state);
        }
        bytes32 deliveredHash = j.outputHash;
        if (committedHash == deliveredHash) revert CommitmentMatches(jobId);
        address provider = j.provider;
        bytes32 digest = _hashTypedDataV4(ResultCommitment.structHash(jobId, committedHash));
        // the error and its argument are not needed: a failed recovery gives address(0), refused below
        // slither-disable-next-line unused-return
        (address signer,,) = ECDSA.tryRecover(digest, signature);
        if (signer == address(0) || (signer != provider && !_staking.isAuthorized(provider, signer))) {
            revert InvalidCommitmentSigner(provider, signer);
        }
        uint256 taken;
        if (state == JobState.Settled) {
            // paid already and its lock released: the penalty comes from its free (or unstaking) stake
            j.state = JobState.Slashed;
            taken = _staking.penalize(provider, jobId, j.stakeLocked, j.requester);
        } else {
            taken = j.stakeLocked;
            _slash(jobId, j);
        }
        emit CommitmentSlashed(jobId, provider, committedHash, deliveredHash, taken);
    }

    /// @inheritdoc ITokenMarket
    function withdraw() external nonReentrant returns (uint256 amount) {
        amount = _owed[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        _owed[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        _token.safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc ITokenMarket
    function hashQuote(TokenQuote calldata quote) external view returns (bytes32) {
        return _hashTypedDataV4(_structHash(quote));
    }

    /// @inheritdoc ITokenMarket
    function escrowFor(uint96 pricePer1k, uint32 tokens) public pure returns (uint256) {
        // < 2^96 * 2^32: no overflow; rounded up so that the escrow always covers the delivered pay
        return (uint256(pricePer1k) * tokens + 999) / 1000;
    }

    /// @inheritdoc IResultCommitments
    function hashCommitment(bytes32 jobId, bytes32 outputHash) external view returns (bytes32) {
        return _hashTypedDataV4(ResultCommitment.structHash(jobId, outputHash));
    }

    /// @inheritdoc ITokenMarket
    function job(bytes32 jobId) external view returns (TokenJob memory) {
        return _jobs[jobId];
    }

    /// @inheritdoc ITokenMarket
    function tokenModel(bytes32 modelId) external view returns (TokenModelConfig memory) {
        return _models[modelId];
    }

    /// @inheritdoc ITokenMarket
    function isReexecutor(bytes32 modelId, address account) external view returns (bool) {
        return _reexecutors[modelId][account];
    }

    /// @inheritdoc ITokenMarket
    function hasVoted(bytes32 jobId, address account) external view returns (bool) {
        return _voted[jobId][account];
    }

    /// @inheritdoc ITokenMarket
    function owed(address account) external view returns (uint256) {
        return _owed[account];
    }

    /// @inheritdoc ITokenMarket
    function challengeWindow() external view returns (uint32) {
        return _challengeWindow;
    }

    /// @inheritdoc ITokenMarket
    function voteWindow() external view returns (uint32) {
        return _voteWindow;
    }

    /// @inheritdoc ITokenMarket
    function challengeBond() external view returns (uint96) {
        return _challengeBond;
    }

    /// @inheritdoc ITokenMarket
    function challengerRewardBps() external view returns (uint16) {
        return _challengerRewardBps;
    }

    /// @inheritdoc ITokenMarket
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc ITokenMarket
    function staking() external view returns (address) {
        return address(_staking);
    }

    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- internals

    function _structHash(TokenQuote calldata q) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                QUOTE_TYPEHASH,
                q.requester,
                q.provider,
                q.modelId,
                q.requestHash,
                q.maxTokens,
                q.pricePer1k,
                q.latency,
                q.expiry,
                q.salt
            )
        );
    }

    /// @dev Writes a new Awarded job and logs it.
    function _record(bytes32 jobId, TokenQuote calldata quote, uint256 escrow, uint256 stakeLocked) private {
        TokenJob storage j = _jobs[jobId];
        // uint40 holds timestamps until the year 36812
        uint40 due = uint40(block.timestamp + quote.latency);
        j.requester = quote.requester;
        j.provider = quote.provider;
        j.openedAt = uint40(block.timestamp);
        j.due = due;
        j.state = JobState.Awarded;
        j.modelId = quote.modelId;
        j.maxTokens = quote.maxTokens;
        j.pricePer1k = quote.pricePer1k;
        // both checked below 2^96 (Staking bounds stake the same way)
        j.stakeLocked = _u96(stakeLocked);
        j.escrow = _u96(escrow);
        emit TokenJobOpened(
            jobId,
            quote.requester,
            quote.provider,
            quote.modelId,
            quote.requestHash,
            quote.maxTokens,
            quote.pricePer1k,
            uint96(escrow),
            uint96(stakeLocked),
            due
        );
    }

    /// @dev The optimistic mode's draw: the hash of the block after the delivery, unknown when it was sent; a
    /// draw more than 256 blocks later sees 0 and audits (letting the hash lapse never helps the provider).
    function _draw(bytes32 jobId, TokenJob storage j) private returns (bool audited) {
        uint256 drawableAt = uint256(j.deliveredBlock) + 2;
        if (block.number < drawableAt) revert AuditTooEarly(drawableAt, block.number);
        bytes32 h = blockhash(uint256(j.deliveredBlock) + 1);
        uint16 rate = _models[j.modelId].auditRateBps;
        audited = rate != 0 && (h == 0 || uint256(keccak256(abi.encode(h, jobId))) % 10_000 < rate);
        j.auditDrawn = true;
        emit TokenAuditDrawn(jobId, audited);
        if (audited) _dispute(jobId, j, address(0), 0);
    }

    function _dispute(bytes32 jobId, TokenJob storage j, address challenger, uint96 bond) private {
        j.state = JobState.Challenged;
        j.auditDrawn = true;
        j.challenger = challenger;
        j.bond = bond;
        uint40 deadline = uint40(block.timestamp + _voteWindow);
        j.voteDeadline = deadline;
        if (challenger != address(0)) emit TokenChallenged(jobId, challenger, bond, deadline);
    }

    /// @dev Pays the delivered tokens, refunds the rest, unlocks the stake; a bond goes to the provider when a
    /// quorum found the work faithful, back to the challenger when nobody decided.
    function _settle(bytes32 jobId, TokenJob storage j) private {
        bool decided = j.state == JobState.Challenged && j.votesFaithful >= _models[j.modelId].quorum;
        j.state = JobState.Settled;
        address provider = j.provider;
        // pricePer1k * delivered / 1000 <= escrow (rounded up): the refund never underflows
        uint256 paid = uint256(j.pricePer1k) * j.delivered / 1000;
        uint256 refund = j.escrow - paid;
        _owed[provider] += paid;
        _owed[j.requester] += refund;
        if (j.bond != 0) _owed[decided ? provider : j.challenger] += j.bond;
        emit TokenJobSettled(jobId, provider, j.delivered, paid, refund);
        // what it released is the job's lock, logged by Staking's StakeUnlocked
        // slither-disable-next-line unused-return
        _staking.unlock(provider, jobId, 0);
    }

    function _slash(bytes32 jobId, TokenJob storage j) private {
        j.state = JobState.Slashed;
        address challenger = j.challenger;
        address requester = j.requester;
        uint256 lock = j.stakeLocked;
        uint256 toChallenger = challenger == address(0) ? 0 : lock * _challengerRewardBps / 10_000;
        uint256 toRequester = lock - toChallenger;
        _owed[requester] += j.escrow;
        if (j.bond != 0) _owed[challenger] += j.bond;
        emit TokenJobSlashed(jobId, j.provider, toRequester, toChallenger);
        if (toRequester != 0) _staking.slash(j.provider, jobId, toRequester, requester);
        if (toChallenger != 0) _staking.slash(j.provider, jobId, toChallenger, challenger);
    }

    /// @dev Takes `amount` from the caller (the requester in `open`, the challenger in `challenge`) and refuses a
    /// fee-on-transfer token (the market must hold what it owes).
    function _pull(uint256 amount) private {
        if (amount == 0) return;
        uint256 before = _token.balanceOf(address(this));
        _token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = _token.balanceOf(address(this)) - before;
        if (received != amount) revert FeeOnTransferToken(amount, received);
    }

    function _u96(uint256 x) private pure returns (uint96) {
        if (x > type(uint96).max) revert AmountTooLarge(x);
        return uint96(x);
    }
}
