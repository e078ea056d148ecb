/// A leader's pending linearizable reads (Raft §6.4, ReadIndex). A read registered at commit index `c` is
/// safe once a majority answered a heartbeat sent after it was registered: then no other leader can have
/// committed anything this one has not.
struct ReadTracker {
    struct PendingRead {
        var requestID: UInt64
        /// Who asked: this node, or a follower that forwarded the read.
        var origin: NodeID
        var index: UInt64
        /// The heartbeat context sent after the read was registered.
        var context: UInt64
        var acknowledgedBy: Set<NodeID>
    }

    private(set) var pending: [PendingRead] = []
    /// Reads that arrived before this leader committed an entry of its term: their commit index is not yet known
    /// to be current.
    var waitingForTermCommit: [(requestID: UInt64, origin: NodeID)] = []
    private(set) var lastContext: UInt64 = 0

    /// Registers a read at `index`; returns the context the next heartbeat must carry.
    mutating func register(requestID: UInt64, origin: NodeID, index: UInt64, leader: NodeID) -> UInt64 {
        lastContext += 1
        pending.append(PendingRead(requestID: requestID, origin: origin, index: index, context: lastContext, acknowledgedBy: [leader]))
        return lastContext
    }

    /// Records that `node` answered the heartbeat with `context`; returns the reads now confirmed, in order.
    mutating func acknowledge(context: UInt64, from node: NodeID, voters: Set<NodeID>, quorum: Int) -> [PendingRead] {
        guard voters.contains(node) else { return [] }
        for position in pending.indices where pending[position].context <= context {
            pending[position].acknowledgedBy.insert(node)
        }
        var confirmed: [PendingRead] = []
        while let first = pending.first, first.acknowledgedBy.intersection(voters).count >= quorum {
            confirmed.append(pending.removeFirst())
        }
        return confirmed
    }

    /// Everything pending, removed: for a leader that steps down.
    mutating func drain() -> [(requestID: UInt64, origin: NodeID)] {
        let all = pending.map { ($0.requestID, $0.origin) } + waitingForTermCommit
        pending.removeAll()
        waitingForTermCommit.removeAll()
        return all
    }
}
