// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @dev Auction types, as carried in `Intent.auctionType`. A market accepts only its own type.
uint8 constant AUCTION_REVERSE = 0;
uint8 constant AUCTION_DUTCH = 1;
/// @dev Request for quotes: opened and awarded in one transaction from a provider-signed quote (`QuoteMarket`).
uint8 constant AUCTION_QUOTE = 2;
/// @dev A reverse-auction bid book side is one storage word (provider, price, latency and an order bit), so a
/// reverse intent's maxPrice is below 2**80 (1.2M tokens of 18 decimals) and a bid promises at most 2**15 - 1
/// seconds (9 h 6 min) of latency.
uint256 constant MAX_BOOK_PRICE = 2 ** 80 - 1;
uint256 constant MAX_BOOK_LATENCY = 2 ** 15 - 1;

/// @dev Proof modes, as carried in `Intent.proofMode`. The registry's `proofModes` bitmask has bit
/// `1 << proofMode` set for every mode a model supports (1 = zk, 2 = optimistic).
uint8 constant PROOF_ZK = 0;
uint8 constant PROOF_OPTIMISTIC = 1;

/// @notice What a requester wants. Signed with EIP-712 (see `IntentLib`); its digest is the job id.
struct Intent {
    // pays the escrow; receives refunds, compensation and the callback
    address requester;
    // the registered model (fixes the ONNX file, EZKL settings, verifier and instance layout)
    bytes32 modelId;
    // EZKL Poseidon hash of the input, a field element; placed at instances[commitmentIndex]
    uint256 inputCommitment;
    // where providers fetch the input (URI or, for small inputs, the bytes themselves)
    bytes inputLocation;
    // the most the requester pays a provider, in payment-token units (escrowed with the fee on it)
    uint256 maxPrice;
    // Dutch: the price at submission, rising linearly to maxPrice at the window's end; reverse: 0
    uint256 startPrice;
    // AUCTION_REVERSE, AUCTION_DUTCH or AUCTION_QUOTE; must match the market it is sent to
    uint8 auctionType;
    // seconds from submission during which bids or fills are accepted
    uint32 auctionWindow;
    // absolute latest delivery time for any provider, failover included
    uint64 deadline;
    // PROOF_ZK (proof verified at delivery) or PROOF_OPTIMISTIC (challenge window, proof on demand)
    uint8 proofMode;
    // least stake the winning provider must lock for this job
    uint256 minStake;
    // region hint for solvers (0x0000 = any); not enforced on chain, operator records are self-declared
    bytes2 region;
    // 1..10000: weight of price against promised latency in the reverse-auction score
    uint16 priceWeightBps;
    // on expiry, re-award to the runner-up if time remains
    bool allowFailover;
    // > 0: settlement calls requester.onTenderResult with this much gas
    uint32 callbackGasLimit;
    // Permit2-style bitmap nonce: word = nonce >> 8, bit = nonce & 0xff
    uint256 nonce;
    // the intent must be posted or submitted strictly before this time
    uint64 expiry;
}

/// @notice A provider's offer in the reverse auction. 20 + 12 + 4 bytes: price and latency are sized so
/// that a stored bid costs two slots and two bids three (see `ReverseAuctionMarket`).
struct Bid {
    // the staked provider that does the work and is paid; may be submitted by an authorised solver
    address provider;
    // asked price in payment-token units, 0 < price <= maxPrice
    uint96 price;
    // promised seconds from award to delivery
    uint32 latency;
}

/// @notice What a reverse-auction job was posted with, as its bids check and score it. While the job is Open the
/// market stores only the hash of these terms beside its state (`post` writes one word of job storage); `bid`,
/// `award`, `refund` and the auction views take the terms back as calldata and check them against that hash.
/// Everyone rebuilds them from `IntentPosted` (the intent, `auctionEnd`, `feeBps`, `stakeMultiple`).
struct AuctionTerms {
    // the intent's maxPrice (at most MAX_BOOK_PRICE)
    uint96 maxPrice;
    // the intent's minStake
    uint96 minStake;
    // bids accepted while now < auctionEnd (the posting block's time + the intent's auctionWindow)
    uint40 auctionEnd;
    // the intent's deadline
    uint40 deadline;
    // the intent's price weight in the score
    uint16 priceWeightBps;
    // the market's stake multiple at posting
    uint16 stakeMultiple;
    // keccak256(abi.encode(JobTerms)): the rest of the terms, which only the award and the refund read
    bytes32 jobTerms;
}

/// @notice The rest of a reverse-auction job's terms: who pays and what is computed (see `AuctionTerms`).
struct JobTerms {
    // the intent's requester
    address requester;
    // the intent's model and input commitment
    bytes32 modelId;
    uint256 inputCommitment;
    // the posting block's time (auctionEnd - the intent's auctionWindow)
    uint40 postedAt;
    // the market's fee at posting
    uint16 feeBps;
    // the intent's proof mode, failover flag and callback gas
    uint8 proofMode;
    bool allowFailover;
    uint32 callbackGasLimit;
}

/// @notice Where a job is. Transitions only move forward (see docs/PROTOCOL.md); the last four are terminal.
enum JobState {
    None, // no such job
    Open, // escrowed, auction running or awaiting award
    Awarded, // a provider is chosen and its stake locked
    Delivered, // optimistic output handed in; challenge window running
    Challenged, // optimistic output disputed; the provider must prove
    ProofRequired, // optimistic output picked for audit; the provider must prove
    Settled, // terminal: provider paid, rest refunded, stake unlocked
    Refunded, // terminal: never awarded (or nobody could lock stake); escrow returned
    Expired, // terminal: the provider missed its deadline; stake slashed to the requester, escrow returned
    Slashed // terminal: the provider failed to prove; stake slashed, escrow returned, challenger rewarded
}

/// @notice A job's record as `IMarket.job` returns it. The field order is part of the ABI (off-chain
/// decoders read it); the market stores the same fields as a `JobRecord`, packed for gas.
struct Job {
    // the intent's requester: pays, is refunded, compensated and called back
    address requester;
    // where the job is
    JobState state;
    // PROOF_ZK or PROOF_OPTIMISTIC
    uint8 proofMode;
    // copied from the intent
    bool allowFailover;
    // copied from the intent: score weight of price
    uint16 priceWeightBps;
    // the protocol fee in force at posting; the escrow holds the fee on maxPrice
    uint16 feeBps;
    // copied from the intent: gas for the consumer callback (0 = none)
    uint32 callbackGasLimit;
    // most the provider can be paid
    uint96 maxPrice;
    // least stake the provider locks
    uint96 minStake;
    // block time of posting; the Dutch price starts here
    uint40 postedAt;
    // the stake multiple in force at posting (lock = max(minStake, bidPrice * stakeMultiple))
    uint16 stakeMultiple;
    // bids/fills accepted while postedAt <= now < auctionEnd
    uint40 auctionEnd;
    // latest delivery time for any provider
    uint40 deadline;
    // when the current provider was awarded (0 while open)
    uint40 awardedAt;
    // when the output was handed in (0 until then)
    uint40 deliveredAt;
    // Delivered: end of the challenge window; Challenged/ProofRequired: the proof deadline
    uint40 disputeEnd;
    // the current provider's promised latency (seconds from award)
    uint32 latency;
    // the provider awarded the job (paid on settlement, slashed on failure)
    address provider;
    // the price the provider is paid (second-score price in the reverse auction)
    uint96 price;
    // what is computed: the model and the input commitment
    bytes32 modelId;
    uint256 inputCommitment;
    // Dutch: the price at postedAt
    uint96 startPrice;
    // stake locked for this job in Staking (the most it can be slashed)
    uint96 stakeLocked;
    // who challenged an optimistic delivery (0 if none)
    address challenger;
    // the bond the challenger posted
    uint96 challengeBond;
    // keccak256(abi.encode(output)) of an optimistic delivery
    bytes32 outputHash;
}

/// @notice How a market stores a `Job`: the fields later steps need, packed so that the fields each step touches
/// share slots (the comment before each group says which slot it is). Nothing derivable is stored: the stake
/// locked is max(minStake, price * stakeMultiple) of the stored fields. Posting writes slots 0, 1, 3, 4 and 5
/// (Dutch: and 7); a bid reads slots 1 and 3 only (everything it checks, scores and reserves by) and writes none
/// of them: it writes one word of the reverse market's bid book, which holds its bids' latencies too; an award
/// writes slots 1 and 2 (and copies the model's layout, `MarketCore.layouts`); a zk delivery reads slots 0, 1, 2
/// and 5 and writes slot 1 alone (state and deliveredAt together); an optimistic delivery, a challenge and an
/// audit write slot 1 (state) and slot 0 (disputeEnd).
struct JobRecord {
    // -- slot 0: who pays, and how settlement treats the job (read by settlement, refund and expiry)
    // the intent's requester: pays, is refunded, compensated and called back
    address requester;
    // PROOF_ZK or PROOF_OPTIMISTIC
    uint8 proofMode;
    // the protocol fee in force at posting; the escrow holds the fee on maxPrice
    uint16 feeBps;
    // copied from the intent: gas for the consumer callback (0 = none)
    uint32 callbackGasLimit;
    // Delivered: end of the challenge window; Challenged/ProofRequired: the proof deadline
    uint40 disputeEnd;
    // -- slot 1: read by every step: the state, the clock and the price cap
    // where the job is
    JobState state;
    // the current provider's promised latency (seconds from award; 0 while Open)
    uint32 latency;
    // when the current provider was awarded (0 while open)
    uint40 awardedAt;
    // when the output was handed in (0 until then)
    uint40 deliveredAt;
    // latest delivery time for any provider
    uint40 deadline;
    // most the provider can be paid
    uint96 maxPrice;
    // -- slot 2: the award
    // the provider awarded the job (paid on settlement, slashed on failure)
    address provider;
    // the price the provider is paid (second-score price in the reverse auction)
    uint96 price;
    // -- slot 3: the auction's terms
    // least stake the provider locks
    uint96 minStake;
    // block time of posting; the Dutch price starts here
    uint40 postedAt;
    // bids/fills accepted while postedAt <= now < auctionEnd
    uint40 auctionEnd;
    // the stake multiple in force at posting (lock = max(minStake, bidPrice * stakeMultiple))
    uint16 stakeMultiple;
    // copied from the intent: score weight of price
    uint16 priceWeightBps;
    // copied from the intent
    bool allowFailover;
    // -- slot 4, 5: what is computed
    bytes32 modelId;
    uint256 inputCommitment;
    // -- slot 6: dispute
    // who challenged an optimistic delivery (0 if none)
    address challenger;
    // the bond the challenger posted
    uint96 challengeBond;
    // -- slot 7 (alone: a challenger packed beside it would cost a dispute a second slot)
    // Dutch: the price at postedAt
    uint96 startPrice;
    // -- slot 8
    // keccak256(abi.encode(output)) of an optimistic delivery
    bytes32 outputHash;
}

/// @notice The dispute terms of an optimistic job, fixed at posting from the market's parameters (so an
/// owner change never reaches a live job), plus the audit draw's state. One slot; zero for zk jobs.
struct DisputeTerms {
    // bond a challenger posts
    uint96 challengeBond;
    // seconds after delivery during which anyone may challenge
    uint32 challengeWindow;
    // seconds a challenged or audited provider has to prove
    uint32 proofWindow;
    // share of the slash paid to a successful challenger
    uint16 challengerRewardBps;
    // block of the optimistic delivery; the audit draw uses the hash of the block after it
    uint64 deliveredBlock;
    // whether the audit was drawn (it is drawn once)
    bool auditDrawn;
}

/// @notice Economic parameters of a market (owner-set; see docs/PROTOCOL.md for defaults and reasons).
struct MarketParams {
    // protocol fee on the paid price, to the treasury; at most MAX_FEE_BPS
    uint16 feeBps;
    // stake locked per unit of bid price: lock = max(minStake, bidPrice * stakeMultiple); >= 1
    uint16 stakeMultiple;
    // share of a slash paid to a successful challenger (the rest compensates the requester);
    // (10000 - challengerRewardBps) * stakeMultiple >= 10000, so self-challenge never pays
    uint16 challengerRewardBps;
    // seconds after an optimistic delivery during which anyone may challenge
    uint32 challengeWindow;
    // seconds a challenged or audited provider has to prove
    uint32 proofWindow;
    // cap on an intent's callbackGasLimit
    uint32 maxCallbackGas;
    // bond a challenger posts (returned with a reward if the provider fails, paid to it otherwise)
    uint96 challengeBond;
}
