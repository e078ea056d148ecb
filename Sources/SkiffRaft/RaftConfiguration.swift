/// How one Raft node behaves. Times are in ticks: the owner decides how long a tick is.
public struct RaftConfiguration: Sendable {
    public var id: NodeID
    /// Ticks without hearing from a leader before a follower campaigns; the actual timeout is drawn from
    /// `electionTicks..<2*electionTicks` each time.
    public var electionTicks = 10
    public var heartbeatTicks = 1
    /// Unacknowledged appends in flight to one follower, at most.
    public var inflightMessagesMax = 256
    /// Payload bytes in one append message, at most (one entry is always sent, whatever its size).
    public var appendBytesMax = 1 << 20
    /// Ask for votes without raising the term first, so a node that cannot win does not disrupt anyone.
    public var preVote = true
    /// A leader that has not heard from a majority for an election timeout steps down; followers that heard
    /// from a leader within one ignore vote requests (a leader lease).
    public var checkQuorum = true
    /// After a successful pre-vote, wait up to this many ticks for the owner to deliver an external log tail
    /// before campaigning (0: no such step). See `RaftCore.deliverExternalTail(_:)`.
    public var externalTailWaitTicks = 0
    /// A leader commits an entry only once the owner reports it held by the external log as well (see
    /// `RaftCore.externalLogAppended(through:term:)`): the external log mirrors everything committed.
    public var commitRequiresExternalLog = false
    /// Witness mode, for two nodes: the external log is this third voter (listed in the cluster
    /// configuration like any other).
    /// The core sends it no appends: its match index is what `externalLogAppended(through:term:)` reports.
    /// Its votes and heartbeat answers come from the owner, who asks the store, as messages from it. Before
    /// campaigning a node adopts the external log's whole tail, whatever its own term (see
    /// `RaftCore.deliverExternalTail(_:)`). Needs `commitRequiresExternalLog` and `externalTailWaitTicks`.
    public var witness: NodeID?

    public init(id: NodeID) { self.id = id }

    public func validate() throws(RaftRefusal) {
        guard id != .none else { throw .invalidConfigurationChange("node id 0 is reserved") }
        guard heartbeatTicks >= 1, electionTicks > heartbeatTicks else {
            throw .invalidConfigurationChange("election-ticks must exceed heartbeat-ticks, which must be at least 1")
        }
        guard inflightMessagesMax >= 1, appendBytesMax >= 1, externalTailWaitTicks >= 0 else {
            throw .invalidConfigurationChange("limits must be positive")
        }
        if let witness {
            guard witness != id, witness != .none else { throw .invalidConfigurationChange("the witness must be another, real id") }
            guard commitRequiresExternalLog, externalTailWaitTicks > 0 else {
                throw .invalidConfigurationChange("a witness needs commitRequiresExternalLog and externalTailWaitTicks")
            }
        }
    }
}

/// What the owner recovered from disk for the core to start from.
public struct RecoveredState: Sendable {
    public var hardState: HardState
    /// The snapshot the state machine was restored from, if any; the log continues after it.
    public var snapshot: RaftSnapshot?
    /// Entries after the snapshot (or from index 1), contiguous.
    public var entries: [Entry]
    /// The configuration to start with when there is neither a snapshot nor a configuration entry.
    public var initialConfiguration: ClusterConfiguration
    /// How far the state machine has applied (the snapshot index, or more if the owner persists it).
    public var applied: LogIndex

    public init(hardState: HardState = .initial, snapshot: RaftSnapshot? = nil, entries: [Entry] = [],
                initialConfiguration: ClusterConfiguration, applied: LogIndex? = nil) {
        self.hardState = hardState
        self.snapshot = snapshot
        self.entries = entries
        self.initialConfiguration = initialConfiguration
        self.applied = applied ?? snapshot?.index ?? .zero
    }
}

/// What a node asks of its owner before campaigning when `externalTailWaitTicks` is set: the external log's
/// entries after `afterIndex`, as written by leaders of terms up to `term`.
public struct ExternalTailRequest: Hashable, Sendable {
    public var afterIndex: LogIndex
    public var term: Term

    public init(afterIndex: LogIndex, term: Term) {
        self.afterIndex = afterIndex
        self.term = term
    }
}

/// A log tail read from an external store, as a late append from the leader of `leaderTerm`.
public struct ExternalTail: Hashable, Sendable {
    public var leaderTerm: Term
    public var previousIndex: LogIndex
    public var previousTerm: Term
    public var entries: [Entry]

    public init(leaderTerm: Term, previousIndex: LogIndex, previousTerm: Term, entries: [Entry]) {
        self.leaderTerm = leaderTerm
        self.previousIndex = previousIndex
        self.previousTerm = previousTerm
        self.entries = entries
    }
}
