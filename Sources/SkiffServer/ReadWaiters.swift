import NIOCore
import SkiffRaft

/// Linearizable reads waiting to be served, batched: every read that arrives while a ReadIndex round is
/// under way waits for the next one, which starts when that round ends (or has taken longer than
/// `overlapAfter`), so a busy node runs one round at a time rather than one per event-loop turn. A batch is
/// served once the leader confirmed its index and this node applied it.
///
/// A class, not a struct, for the reason `WriteTracker` gives: a read served may submit the next read at once.
final class ReadWaiters {
    struct Waiter {
        var run: () -> Void
        var fail: () -> Void
        var deadline: NIODeadline
    }

    private var waiting: [Waiter] = []
    private var submitted: [UInt64: (since: NIODeadline, waiters: [Waiter])] = [:]
    /// Confirmed batches waiting for this node to apply their index, in confirmation order.
    private var confirmed: [(index: UInt64, waiters: [Waiter])] = []
    /// Starts at a random point, so that a late answer to a read of an earlier run never matches one of this run.
    private var nextRequestID = UInt64.random(in: 1...(1 << 62))

    var count: Int { waiting.count + submitted.values.reduce(0) { $0 + $1.waiters.count } + confirmed.reduce(0) { $0 + $1.waiters.count } }

    /// How long a round may run before another starts beside it (a lost answer is retried later, by
    /// `retryStale`).
    let overlapAfter: TimeAmount

    init(overlapAfter: TimeAmount) { self.overlapAfter = overlapAfter }

    var hasWaiting: Bool { !waiting.isEmpty }

    func add(_ waiter: Waiter) { waiting.append(waiter) }

    /// Asks the core for one ReadIndex round covering every read waiting now, unless a recent round is
    /// still under way.
    func submit(to core: inout RaftCore, now: NIODeadline = .now()) {
        guard !waiting.isEmpty, submitted.values.allSatisfy({ $0.since + overlapAfter <= now }) else { return }
        let requestID = nextRequestID
        if core.requestRead(id: requestID) == nil {
            nextRequestID += 1
            submitted[requestID] = (now, waiting)
            waiting.removeAll()
        }
    }

    func confirmed(_ state: ReadState, appliedIndex: UInt64) {
        guard let batch = submitted.removeValue(forKey: state.requestID) else { return }
        guard let index = state.index?.rawValue else {
            waiting += batch.waiters  // leadership not confirmed: ask again
            return
        }
        if index <= appliedIndex {
            for waiter in batch.waiters { waiter.run() }
        } else {
            confirmed.append((index, batch.waiters))
        }
    }

    /// Serves every confirmed batch whose index is applied. Confirmations can arrive out of index order (a
    /// new leader's may be lower than an old one's), so every batch is looked at.
    func release(appliedThrough applied: UInt64) {
        guard confirmed.contains(where: { $0.index <= applied }) else { return }
        let ready = confirmed.filter { $0.index <= applied }
        confirmed.removeAll { $0.index <= applied }
        for batch in ready { for waiter in batch.waiters { waiter.run() } }
    }

    /// Batches whose ReadIndex request got no answer for `after` (the leader died, the message was lost) are
    /// asked again; reads past their deadline while still waiting for a leader fail.
    func retryStale(now: NIODeadline, after: Duration) {
        let limit = TimeAmount.nanoseconds(Int64(after.components.seconds) * 1_000_000_000 + after.components.attoseconds / 1_000_000_000)
        for (id, batch) in submitted where batch.since + limit <= now {
            submitted[id] = nil
            waiting += batch.waiters
        }
        let expired = waiting.filter { $0.deadline <= now }
        waiting.removeAll { $0.deadline <= now }
        for waiter in expired { waiter.fail() }
    }

    func failAll() {
        let all = waiting + submitted.values.flatMap(\.waiters) + confirmed.flatMap(\.waiters)
        waiting.removeAll()
        submitted.removeAll()
        confirmed.removeAll()
        for waiter in all { waiter.fail() }
    }
}
