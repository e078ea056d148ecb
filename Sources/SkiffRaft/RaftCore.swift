/// A Raft node as a pure state machine: no I/O, no clock, no threads, no randomness of its own.
///
/// Inputs: `tick()`, `step(_:)` for messages from peers, `propose(_:)`, membership changes, reads and
/// transfers. Output: `ready()`, one batch of entries and state to persist, messages to send and entries to
/// apply, acknowledged with `advance(_:)` once persisted; several may be out at once (see `Ready` for the
/// contract). Given the same inputs and the same seeded generator, it produces the same outputs.
///
/// Guarantees (Raft, §5 and §4 of Ongaro's dissertation): at most one leader per term; logs that agree on an
/// index and term agree on everything before; a committed entry is in every later leader's log.
/// Leaves out: moving messages and snapshot bytes, persisting, applying. Not `Sendable`: one owner drives it.
public struct RaftCore {
    public let configuration: RaftConfiguration
    public var id: NodeID { configuration.id }

    public internal(set) var term: UInt64
    var vote: NodeID
    public internal(set) var role: Role = .follower
    /// The leader this node knows of in its term, or `.none`.
    public internal(set) var leader: NodeID = .none
    var log: RaftLog
    var random: SplitMix64

    /// Membership: the configuration at the snapshot point, then each configuration entry after it (index,
    /// configuration). The latest appended one is in force (single-server changes take effect on append).
    var baseConfiguration: ClusterConfiguration
    var configurationEntries: [(index: UInt64, configuration: ClusterConfiguration)] = []
    public internal(set) var isRemoved = false

    var electionElapsed = 0
    var heartbeatElapsed = 0
    var randomizedElectionTimeout = 0

    // Candidate state.
    var votes: [NodeID: Bool] = [:]
    // Leader state.
    var progress: [NodeID: Progress] = [:]
    var pendingConfigurationIndex: UInt64 = 0
    var transferTarget: NodeID?
    var transferElapsed = 0
    var reads = ReadTracker()
    /// The last index of this leader's log that the external log holds (with `commitRequiresExternalLog`).
    var externalMatch: UInt64 = 0
    // External-tail step between a won pre-vote and the campaign.
    var externalTailTicksLeft: Int?
    var externalTailRequest: ExternalTailRequest?

    var messages: [Message] = []
    var messagesAfterPersist: [Message] = []
    var readStates: [ReadState] = []
    /// Followers a leader owes the current commit index (see `sendCommitNotices`).
    var commitNoticesOwed: Set<NodeID> = []
    /// A snapshot restored from the leader that no Ready carried yet.
    var pendingSnapshot: RaftSnapshot?
    /// A Ready that carries a snapshot is out and not yet advanced.
    var snapshotOutstanding = false
    /// The hard state as of the last Ready handed out, and as of the last one advanced (durable).
    var handedOutHardState: HardState
    var persistedHardState: HardState
    var readysHandedOut: UInt64 = 0
    var readysAdvanced: UInt64 = 0
    var readysOutstanding: UInt64 { readysHandedOut - readysAdvanced }

    public enum Role: Hashable, Sendable { case follower, preCandidate, candidate, leader }

    public init(configuration: RaftConfiguration, recovered: RecoveredState, random: SplitMix64) {
        do { try configuration.validate() } catch { preconditionFailure("invalid Raft configuration: \(error)") }
        self.configuration = configuration
        self.random = random
        let snapshotIndex = recovered.snapshot?.index.rawValue ?? 0
        log = RaftLog(snapshotIndex: snapshotIndex, snapshotTerm: recovered.snapshot?.term.rawValue ?? 0,
                      entries: recovered.entries,
                      committed: max(recovered.hardState.commit.rawValue, snapshotIndex),
                      applied: recovered.applied.rawValue)
        term = recovered.hardState.term.rawValue
        vote = recovered.hardState.vote
        persistedHardState = recovered.hardState
        handedOutHardState = recovered.hardState
        baseConfiguration = recovered.snapshot?.configuration ?? recovered.initialConfiguration
        for entry in recovered.entries where entry.kind == .configuration {
            guard let decoded = ClusterConfiguration(decoding: entry.payload) else {
                preconditionFailure("configuration entry \(entry.index) does not decode")
            }
            configurationEntries.append((entry.index.rawValue, decoded))
        }
        resetElectionTimeout()
        updateRemoved()
    }

    // MARK: Queries

    /// The configuration in force: the latest one appended.
    public var clusterConfiguration: ClusterConfiguration { configurationEntries.last?.configuration ?? baseConfiguration }
    public var commitIndex: LogIndex { LogIndex(log.committed) }
    public var lastIndex: LogIndex { LogIndex(log.lastIndex) }
    public var firstIndex: LogIndex { LogIndex(log.firstIndex) }
    public var appliedIndex: LogIndex { LogIndex(log.applied) }
    public var persistedIndex: LogIndex { LogIndex(log.stable) }
    public var isLeader: Bool { role == .leader }
    public var hardState: HardState { HardState(term: Term(term), vote: vote, commit: LogIndex(log.committed)) }
    public func term(at index: LogIndex) -> Term? { log.term(at: index.rawValue).map { Term($0) } }
    /// The entries from `index` on, up to `byteLimit` payload bytes (at least one).
    public func entries(from index: LogIndex, byteLimit: Int = .max) -> [Entry] { log.entries(from: index.rawValue, byteLimit: byteLimit) }
    /// What a leader knows of a follower's log: its highest matching index.
    public func matchIndex(of node: NodeID) -> LogIndex? { progress[node].map { LogIndex($0.match) } }
    /// On a leader, how each other member's replication stands; empty elsewhere.
    public var followers: [NodeID: FollowerStatus] {
        progress.filter { $0.key != id }.mapValues { tracker in
            let state = switch tracker.state {
            case .probe: tracker.probeSent ? "probe(sent)" : "probe"
            case .replicate: "replicate"
            case .snapshot(let pending): "snapshot(\(pending))"
            }
            return FollowerStatus(match: LogIndex(tracker.match), next: LogIndex(tracker.next), state: state,
                                  inflight: tracker.inflight.count, recentlyActive: tracker.recentActive)
        }
    }
    var isVoter: Bool { clusterConfiguration.voters.contains(id) }
    /// A voter may campaign; so may a node that an uncommitted configuration leaves out but the committed one
    /// still lists. It may hold the longest log, and if it could not stand, no one could win. Votes are counted
    /// against the latest configuration either way, and a leader outside it steps down once it commits.
    var canCampaign: Bool { !isRemoved && (isVoter || configuration(at: log.committed).voters.contains(id)) }

    // MARK: Time

    /// Advances time by one tick.
    public mutating func tick() {
        switch role {
        case .leader: tickLeader()
        default: tickElection()
        }
    }

    mutating func resetElectionTimeout() {
        electionElapsed = 0
        randomizedElectionTimeout = configuration.electionTicks + Int(random.below(UInt64(configuration.electionTicks)))
    }

    // MARK: Proposals

    /// Appends a command to the log if this node leads. The index it returns commits only if this node stays
    /// leader long enough; watch `committedEntries`.
    public mutating func propose(_ payload: [UInt8]) -> Result<LogIndex, RaftRefusal> {
        if let refusal = proposalRefusal() { return .failure(refusal) }
        return .success(appendAsLeader(kind: .command, payload: payload))
    }

    /// Appends several commands at once, sent to followers in one message each: the way to propose what
    /// arrived together. Returns the indices they got.
    public mutating func propose(batch payloads: [[UInt8]]) -> Result<ClosedRange<LogIndex>, RaftRefusal> {
        precondition(!payloads.isEmpty, "a batch proposal needs at least one command")
        if let refusal = proposalRefusal() { return .failure(refusal) }
        let first = log.lastIndex + 1
        log.append(payloads.enumerated().map { Entry(index: LogIndex(first + UInt64($0)), term: Term(term), payload: $1) })
        broadcastAppend()
        maybeCommit()
        return .success(LogIndex(first)...LogIndex(log.lastIndex))
    }

    func proposalRefusal() -> RaftRefusal? {
        if isRemoved { return .removed }
        guard role == .leader else { return .notLeader(leader: leader == .none ? nil : leader) }
        if let transferTarget { return .leadershipTransferInProgress(target: transferTarget) }
        return nil
    }

    /// Appends an entry of this leader's term, replicates it, and returns its index.
    mutating func appendAsLeader(kind: Entry.Kind, payload: [UInt8]) -> LogIndex {
        precondition(role == .leader, "only a leader appends its own entries")
        let index = LogIndex(log.lastIndex + 1)
        log.append([Entry(index: index, term: Term(term), kind: kind, payload: payload)])
        if kind == .configuration { noteConfigurationEntry(at: index.rawValue, payload: payload) }
        broadcastAppend()
        maybeCommit()  // a single voter commits on its own, once persisted
        return index
    }

    // MARK: Ready and advance

    /// Whether `ready()` would return something.
    public var hasReady: Bool {
        // A snapshot replaces the whole log on disk, so it is persisted alone: after every earlier Ready and
        // before any later one.
        if snapshotOutstanding || (pendingSnapshot != nil && readysOutstanding > 0) { return false }
        return !commitNoticesOwed.isEmpty || hardState != handedOutHardState || !log.entriesToPersist.isEmpty || pendingSnapshot != nil
            || !messages.isEmpty || !messagesAfterPersist.isEmpty || !readStates.isEmpty
            || !log.entriesToApply.isEmpty || externalTailRequest != nil
    }

    /// The next batch of work, or nil if there is none. It may be called again before the earlier Readys are
    /// advanced: each new one carries only what the earlier ones did not (see `Ready`).
    public mutating func ready() -> Ready? {
        guard hasReady else { return nil }
        if !commitNoticesOwed.isEmpty { sendCommitNotices() }
        let state = hardState
        let ready = Ready(
            hardState: state == handedOutHardState ? nil : state,
            snapshot: pendingSnapshot,
            entries: Array(log.entriesToPersist),
            committedEntries: pendingSnapshot == nil ? Array(log.entriesToApply) : [],  // after the snapshot is in
            messages: messages,
            messagesAfterPersist: messagesAfterPersist,
            readStates: readStates,
            externalTailRequest: externalTailRequest,
            termOrVoteChanged: state.term != handedOutHardState.term || state.vote != handedOutHardState.vote,
            sequence: readysHandedOut)
        readysHandedOut += 1
        handedOutHardState = state
        log.handOut(applying: pendingSnapshot == nil)
        if pendingSnapshot != nil {
            snapshotOutstanding = true
            pendingSnapshot = nil
        }
        messages.removeAll()
        messagesAfterPersist.removeAll()
        readStates.removeAll()
        externalTailRequest = nil
        return ready
    }

    /// Tells the core that `ready` was persisted and its messages sent. Readys are advanced in the order
    /// they were handed out.
    public mutating func advance(_ ready: Ready) {
        precondition(ready.sequence == readysAdvanced, "advance(\(ready.sequence)) out of order: expected \(readysAdvanced)")
        readysAdvanced += 1
        if let state = ready.hardState { persistedHardState = state }
        if ready.snapshot != nil { snapshotOutstanding = false }
        // Persisted: every entry of the Ready that is still in the log. A later append may have replaced a
        // suffix since; the prefix before it was persisted all the same (and may already be applied).
        if let kept = ready.entries.last(where: { log.matches(index: $0.index.rawValue, term: $0.term.rawValue) }) {
            log.markStable(through: kept.index.rawValue, term: kept.term.rawValue)
        }
        if role == .leader {
            progress[id]?.acknowledge(log.stable)
            maybeCommit()
        }
    }

    /// Forgets log entries through `index` after the owner saved a snapshot of the state machine there.
    public mutating func compact(through index: LogIndex) {
        let configuration = configuration(at: index.rawValue)
        log.compact(through: index.rawValue)
        baseConfiguration = configuration
        configurationEntries.removeAll { $0.index <= index.rawValue }
    }

    /// The snapshot point of the in-memory log, as a leader sends it to followers that are too far behind.
    public var snapshotPoint: RaftSnapshot {
        RaftSnapshot(index: LogIndex(log.snapshotIndex), term: Term(log.snapshotTerm), configuration: baseConfiguration)
    }

    /// Queues a message. Only a leader's messages may leave before the Ready is persisted, and only once its
    /// term and vote are durable: otherwise a crash could bring it back in the same term with different
    /// entries at the same indices, and a follower that kept the first ones would diverge.
    mutating func send(_ message: Message) {
        let termIsDurable = persistedHardState.term.rawValue == term && persistedHardState.vote == vote
        if message.isFromLeader && termIsDurable { messages.append(message) } else { messagesAfterPersist.append(message) }
    }

    mutating func send(_ kind: Message.Kind, to node: NodeID, term messageTerm: UInt64? = nil) {
        send(Message(from: id, to: node, term: Term(messageTerm ?? term), kind: kind))
    }
}
