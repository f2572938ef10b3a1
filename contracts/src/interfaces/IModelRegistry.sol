// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @dev How a model's proofs bind the input (`ModelInfo.inputBinding`).
/// INPUT_HASHED: the EZKL Poseidon hash of the input is the public instance at `commitmentIndex`; an
/// intent's `inputCommitment` is that field element.
/// INPUT_POLYCOMMIT: the input is an EZKL `polycommit` column whose KZG commitment is the proof's first
/// G1 point (bytes 0..63, x and y big-endian); an intent's `inputCommitment` is
/// `uint256(keccak256(proof[0:64]))`, and the instances hold the output only (`commitmentIndex` is 0 and
/// unused). Cheaper to verify: no Poseidon chip in the circuit (see docs/MODELS.md).
uint8 constant INPUT_HASHED = 0;
uint8 constant INPUT_POLYCOMMIT = 1;

/// @dev The verification tiers, bits of `ModelInfo.proofModes`. MODES_ZK and MODES_OPTIMISTIC (`1 << proofMode` of
/// an intent) are proof tiers: the model's verifier checks an EZKL proof, at every delivery or on an audit or a
/// challenge. MODES_REEXECUTION is the re-execution tier, alone: a token model served on `TokenMarket`, whose
/// deliveries are checked by staked re-executors running the ONNX file `onnxSha256` pins (no verifier, no instances).
uint8 constant MODES_ZK = 1;
uint8 constant MODES_OPTIMISTIC = 2;
uint8 constant MODES_REEXECUTION = 4;

/// @notice A registered model. Immutable once registered: a new version is a new id.
struct ModelInfo {
    // sha256 of the ONNX file providers run
    bytes32 onnxSha256;
    // hash of the EZKL settings (circuit parameters, visibility) the verifier was built for; for the re-execution
    // tier, of what else fixes the token ids re-executors compare (tokenizer and config files)
    bytes32 settingsHash;
    // the IVerifier (e.g. EZKL Halo2Verifier) that checks proofs for this model (none for the re-execution tier)
    address verifier;
    // INPUT_HASHED or INPUT_POLYCOMMIT: where the input commitment sits
    uint8 inputBinding;
    // INPUT_HASHED: index of the input commitment in the public instance vector (else 0)
    uint8 commitmentIndex;
    // index of the first output element in the public instance vector
    uint8 outputOffset;
    // number of output elements
    uint16 outputLength;
    // length of the public instance vector; positions not named above are zero
    uint16 instanceCount;
    // bitmask of verification tiers: 1 = zk, 2 = optimistic (1 | 2 both), or 4 = re-execution alone (MODES_*)
    uint8 proofModes;
    // share (bps) of optimistic deliveries that must be proven anyway; of re-execution deliveries audited
    uint16 auditRateBps;
    // jobs per proof: 1 for a single-job model (`deliver`), N > 1 for a batch model (`QuoteMarket.deliverBatch`),
    // whose proof holds job i's input commitment at instance `commitmentIndex + i` (hashed) or as the proof's
    // point i, `keccak256(proof[64*i : 64*i + 64])` (polycommit), and its `outputLength` outputs at
    // `outputOffset + outputLength*i`; `instanceCount` is the whole batch's
    uint8 batchSize;
    // who registered the model (informational; models have no mutable state)
    address owner;
}

/// @notice The part of a model a market needs to verify a delivery (one storage slot).
struct ModelLayout {
    address verifier;
    uint8 inputBinding;
    uint8 commitmentIndex;
    uint8 outputOffset;
    uint16 outputLength;
    uint16 instanceCount;
    uint16 auditRateBps;
    uint8 batchSize;
}

/// @title IModelRegistry
/// @notice Models a market can serve: the ONNX and settings hashes that pin what runs, the verifier
/// that checks it and where the input commitment and output sit in the verifier's public instances.
interface IModelRegistry {
    /// @notice Emitted once per model, with everything needed to rebuild the record.
    event ModelRegistered(bytes32 indexed modelId, address indexed owner, ModelInfo info);

    /// @notice The id is not registered.
    error UnknownModel(bytes32 modelId);
    /// @notice The same registrant already registered the same record.
    error DuplicateModel(bytes32 modelId);
    /// @notice The verifier is the zero address.
    error ZeroVerifier();
    /// @notice The verifier has no code.
    error VerifierHasNoCode(address verifier);
    /// @notice Commitments and outputs (`batchSize` of each) do not fit, or overlap, in `instanceCount`
    /// instances, or the binding is unknown (a polycommit layout must have `commitmentIndex` 0).
    error BadLayout(
        uint8 inputBinding,
        uint8 commitmentIndex,
        uint8 outputOffset,
        uint16 outputLength,
        uint16 instanceCount
    );
    /// @notice `batchSize` must be at least 1.
    error BadBatchSize(uint8 batchSize);
    /// @notice `proofModes` must be 1, 2, 3 (proof tiers) or 4 (the re-execution tier alone).
    error BadProofModes(uint8 proofModes);
    /// @notice A re-execution model has no verifier (its deliveries are re-executed, not proven).
    error VerifierOnReexecutionModel(address verifier);
    /// @notice `auditRateBps` above 10000.
    error BadAuditRate(uint16 auditRateBps);

    /// @notice Registers a model. The caller becomes its owner (the `owner` field is ignored). A proof-tier model
    /// needs a verifier with code and an instance layout that fits; a re-execution model (`proofModes` 4) has no
    /// verifier, an all-zero layout and `batchSize` 1.
    /// @return modelId keccak256(abi.encode(msg.sender, info with owner = msg.sender)).
    function register(ModelInfo calldata info) external returns (bytes32 modelId);

    /// @notice The id `register` would return for `info` sent by `registrant`.
    function computeModelId(address registrant, ModelInfo calldata info) external pure returns (bytes32);

    /// @notice The record of a model; reverts `UnknownModel` if none.
    function model(bytes32 modelId) external view returns (ModelInfo memory);

    /// @notice Whether `modelId` is registered.
    function isRegistered(bytes32 modelId) external view returns (bool);

    /// @notice The supported proof-mode bitmask, 0 if the model is unknown (one slot read).
    function proofModesOf(bytes32 modelId) external view returns (uint8);

    /// @notice What a market needs to verify a delivery (one slot read); reverts `UnknownModel` for an unknown
    /// model and for a re-execution model (nothing to verify).
    function layoutOf(bytes32 modelId) external view returns (ModelLayout memory);

    /// @notice `layoutOf` and the proof-mode bitmask in one word (`LayoutWord`), and the bitmask, from one slot
    /// read; both 0 if the model is unknown (the quote market's award: it checks the modes and keeps the word in the job).
    function recordWordAndModesOf(bytes32 modelId) external view returns (uint256 word, uint8 proofModes);
}
