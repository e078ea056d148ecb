/// A message between Raft nodes. The core produces and consumes these; moving them is the transport's job.
public struct Message: Hashable, Sendable {
    public var from: NodeID
    public var to: NodeID
    /// The sender's term; for a pre-vote request and a granted pre-vote, the term the candidate would take.
    public var term: Term
    public var kind: Kind

    public init(from: NodeID, to: NodeID, term: Term, kind: Kind) {
        self.from = from
        self.to = to
        self.term = term
        self.kind = kind
    }

    public enum Kind: Hashable, Sendable {
        /// Leader to follower: entries after `previousIndex` (of `previousTerm`), and the leader's commit index.
        case append(previousIndex: LogIndex, previousTerm: Term, entries: [Entry], commit: LogIndex)
        /// Follower to leader. Accepted: the log matches up to `index`. Rejected: the append at `index` did not
        /// match; the follower's log has term `hintTerm` at `hintIndex`, which lets the leader skip back fast.
        case appendResponse(index: LogIndex, rejected: Bool, hintIndex: LogIndex, hintTerm: Term)
        /// Leader to follower: still here; commit up to `commit`. `context` ties it to pending reads.
        case heartbeat(commit: LogIndex, context: UInt64)
        case heartbeatResponse(context: UInt64)
        /// A (pre-)candidate asks for a vote. `leadershipTransfer` lets it through a voter's leader lease.
        case requestVote(lastIndex: LogIndex, lastTerm: Term, preVote: Bool, leadershipTransfer: Bool)
        case voteResponse(granted: Bool, preVote: Bool)
        /// Leader to follower: install this snapshot (its data travels beside the message).
        case snapshot(RaftSnapshot)
        /// Leader to the target of a leadership transfer: campaign now.
        case timeoutNow
        /// Follower to leader: confirm leadership for a linearizable read.
        case readIndex(requestID: UInt64)
        /// Leader to follower: the read may be served once `index` is applied; nil if it could not be confirmed.
        case readIndexResponse(requestID: UInt64, index: LogIndex?)
        /// Leader to a node that a committed configuration no longer includes. `configurationIndex` is where the
        /// leader's configuration stands in its log, so a node already re-added by a later one ignores it.
        case removed(configurationIndex: LogIndex)
    }

    /// Whether only a leader sends this kind: such messages need nothing persisted before they leave.
    var isFromLeader: Bool {
        switch kind {
        case .append, .heartbeat, .snapshot, .timeoutNow, .readIndexResponse, .removed: true
        default: false
        }
    }
}

/// Why the core refused a request. Each case says what the caller can do next.
public enum RaftRefusal: Error, Hashable, Sendable {
    /// Only the leader takes this; `leader` is the one this node knows, if any.
    case notLeader(leader: NodeID?)
    /// The leader is handing over to `target` and takes no proposals meanwhile; retry shortly.
    case leadershipTransferInProgress(target: NodeID)
    /// An earlier membership change (at `index`) is not yet committed; one change at a time.
    case configurationChangeInProgress(index: LogIndex)
    case invalidConfigurationChange(String)
    /// `node` is not a voter, so it cannot lead.
    case notAVoter(NodeID)
    /// This node was removed from the cluster.
    case removed
}

/// Input the core cannot accept: a bug or a corrupt peer, never a normal condition.
public enum RaftInputError: Error, Hashable, Sendable {
    case misaddressed(to: NodeID)
    case malformed(String)
}

/// A linearizable read the core has confirmed: serve request `requestID` once the state machine has applied
/// `index`. `index` nil means leadership could not be confirmed: retry.
public struct ReadState: Hashable, Sendable {
    public var requestID: UInt64
    public var index: LogIndex?

    public init(requestID: UInt64, index: LogIndex?) {
        self.requestID = requestID
        self.index = index
    }
}
