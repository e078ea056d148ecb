import NIOCore
import SkiffKV
import SkiffRaft

/// Why a write got no reply from the state machine.
public enum WriteFailure: Error, Sendable {
    /// It was never proposed: no leader was known in time. Retrying is safe.
    case noLeader
    /// It was proposed but its fate is unknown (no commit in time, or its log position was lost): it may yet
    /// be applied, or not.
    case outcomeUnknown
    case shuttingDown
    /// The command is larger than one log entry may be.
    case tooLarge(limit: Int)
}

/// The client writes a node is responsible for, from arrival until their entry is applied here.
///
/// Each write is `queued` until it can be proposed (on the leader) or forwarded (to the leader);
/// `forwarded` until the leader says at which index it appended it; then `proposed` at that index. If a
/// different entry is applied at that index, the write was lost with a leader change and is queued again:
/// retrying is safe then, since that index can never hold it any more.
///
/// A class, not a struct: a completion may submit the next write at once (a client's pipelined commands), so
/// no completion may run inside an access to the tracker. Each completion runs once its write is removed,
/// and loops that run completions go over copies, so a write added meanwhile is kept and never completed
/// twice.
final class WriteTracker {
    enum State { case queued, forwarded(batch: UInt64), proposed(index: UInt64) }
    struct Pending {
        var payload: [UInt8]
        var completion: (Result<KVReply, WriteFailure>) -> Void
        /// For a transaction: run between its writes as this node applies it (`KVStore.applyTransaction`).
        var between: ((Int) -> Void)?
        var deadline: NIODeadline
        var state: State
    }

    private var pending: [UInt64: Pending] = [:]
    private var queue: [UInt64] = []
    private var batches: [UInt64: (leader: NodeID, ids: [UInt64])] = [:]
    /// The writes expected at each index. Several may claim one: this node's proposals in two of its
    /// leaderships, or a deposed leader's late answer beside the new leader's. Any claimed entry may still be
    /// the one that commits there, so none is retried until an entry is applied at that index.
    private var byIndex: [UInt64: [UInt64]] = [:]
    /// The highest index applied here entry by entry, and the highest a snapshot installed here covered:
    /// a late claim on an index at or below them learns at once what an apply there would tell it.
    private var appliedThrough: UInt64 = 0
    private var coveredThrough: UInt64 = 0
    /// Request ids start at a random point, so that entries a previous run of this node wrote, replayed after
    /// a restart, never match a request of this run.
    private(set) var nextRequestID = UInt64.random(in: 1...(1 << 62))
    private var nextBatch: UInt64 = 1

    var count: Int { pending.count }
    /// Whether `takeQueued` would return anything. The queue may still hold writes that ended while queued
    /// (expired, or applied through an earlier proposal); they do not count.
    var hasQueued: Bool { queue.contains { pending[$0] != nil } }

    func add(payload: (UInt64) -> [UInt8], deadline: NIODeadline, between: ((Int) -> Void)? = nil,
                      completion: @escaping (Result<KVReply, WriteFailure>) -> Void) {
        let requestID = nextRequestID
        nextRequestID += 1
        pending[requestID] = Pending(payload: payload(requestID), completion: completion, between: between, deadline: deadline, state: .queued)
        queue.append(requestID)
    }

    /// Takes every queued write, in arrival order, for proposing or forwarding.
    func takeQueued() -> (ids: [UInt64], payloads: [[UInt8]]) {
        let ids = queue.filter { pending[$0] != nil }
        queue.removeAll()
        return (ids, ids.map { pending[$0]!.payload })
    }

    func requeue(_ ids: [UInt64]) {
        for id in ids where pending[id] != nil {
            pending[id]!.state = .queued
            queue.append(id)
        }
    }

    func proposed(_ ids: [UInt64], firstIndex: UInt64) {
        for (offset, id) in ids.enumerated() where pending[id] != nil {
            let index = firstIndex + UInt64(offset)
            if index <= coveredThrough {
                pending.removeValue(forKey: id)?.completion(.failure(.outcomeUnknown))  // the snapshot may hold it
            } else if index <= appliedThrough {
                requeue([id])  // another entry was applied there: had it been this write, it would be answered
            } else {
                pending[id]!.state = .proposed(index: index)
                if byIndex[index]?.contains(id) != true { byIndex[index, default: []].append(id) }
            }
        }
    }

    func forwarded(_ ids: [UInt64], to leader: NodeID) -> UInt64 {
        let batch = nextBatch
        nextBatch += 1
        batches[batch] = (leader, ids)
        for id in ids { pending[id]?.state = .forwarded(batch: batch) }
        return batch
    }

    /// The leader's answer to a forwarded batch: appended from `firstIndex` on, or refused (0).
    func forwardAnswered(batch: UInt64, firstIndex: UInt64, term: UInt64) {
        guard let ids = batches.removeValue(forKey: batch)?.ids else { return }
        if firstIndex == 0 { requeue(ids) } else { proposed(ids, firstIndex: firstIndex) }
    }

    /// The connection to `leader` dropped: batches it never answered may or may not have been appended, and
    /// their clients are told so now rather than at their deadline.
    func connectionLost(to leader: NodeID) {
        for (batch, sent) in batches where sent.leader == leader {
            batches[batch] = nil
            for id in sent.ids { pending.removeValue(forKey: id)?.completion(.failure(.outcomeUnknown)) }
        }
    }

    /// What runs between the writes of transaction `requestID`, if it is still waiting here.
    func between(for requestID: UInt64) -> ((Int) -> Void)? { pending[requestID]?.between }

    /// This node's request `requestID` was applied at `index` with `reply`.
    func applied(requestID: UInt64, at index: UInt64, reply: KVReply) {
        appliedThrough = max(appliedThrough, index)
        requeue((byIndex.removeValue(forKey: index) ?? []).filter { $0 != requestID })
        pending.removeValue(forKey: requestID)?.completion(.success(reply))
    }

    /// Some other entry was applied at `index`: the writes waiting there were lost, and go back to the queue.
    func appliedOther(at index: UInt64) {
        appliedThrough = max(appliedThrough, index)
        requeue(byIndex.removeValue(forKey: index) ?? [])
    }

    /// Writes proposed at or below `index` whose entries were covered by an installed snapshot: their fate
    /// cannot be read from the log any more.
    func coveredBySnapshot(through index: UInt64) {
        coveredThrough = max(coveredThrough, index)
        for (position, ids) in byIndex where position <= index {
            byIndex[position] = nil
            for id in ids { pending.removeValue(forKey: id)?.completion(.failure(.outcomeUnknown)) }
        }
    }

    func expire(now: NIODeadline) {
        var expiredWhileQueued = false
        for (id, write) in pending where write.deadline <= now {
            pending[id] = nil
            if case .proposed(let index) = write.state {
                byIndex[index]?.removeAll { $0 == id }
                if byIndex[index]?.isEmpty == true { byIndex[index] = nil }
            }
            if case .queued = write.state {
                expiredWhileQueued = true
                write.completion(.failure(.noLeader))
            } else {
                write.completion(.failure(.outcomeUnknown))
            }
        }
        if expiredWhileQueued { queue.removeAll { pending[$0] == nil } }
    }

    func failAll(_ failure: WriteFailure) {
        let all = pending
        pending.removeAll()
        queue.removeAll()
        byIndex.removeAll()
        batches.removeAll()
        for write in all.values { write.completion(.failure(failure)) }
    }
}
