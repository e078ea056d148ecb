/// What a leader knows of one follower's log, and how it is sending to it.
///
/// `match` is the highest index known to be in the follower's log; `next` is the next one to send.
/// In `probe` the leader sends one append at a time until it finds where the logs match; in `replicate` it
/// streams appends optimistically, up to `inflightMax` unacknowledged messages; in `snapshot` it waits for
/// the follower to install a snapshot.
struct Progress {
    enum State: Equatable { case probe, replicate, snapshot(pending: UInt64) }

    private(set) var match: UInt64 = 0
    var next: UInt64
    private(set) var state = State.probe
    /// In probe: an append is out and unanswered.
    var probeSent = false
    /// Heard from within the current check-quorum period.
    var recentActive = false
    /// The last index of each unacknowledged append, oldest first.
    private(set) var inflight: [UInt64] = []
    let inflightMax: Int

    init(next: UInt64, inflightMax: Int) {
        self.next = next
        self.inflightMax = inflightMax
    }

    var isPaused: Bool {
        switch state {
        case .probe: probeSent
        case .replicate: inflight.count >= inflightMax
        case .snapshot: true
        }
    }

    mutating func becomeProbe() {
        if case .snapshot(let pending) = state {
            next = max(match + 1, pending + 1)
        } else {
            next = match + 1
        }
        state = .probe
        probeSent = false
        inflight.removeAll()
    }

    mutating func becomeReplicate() {
        state = .replicate
        next = match + 1
        inflight.removeAll()
    }

    mutating func becomeSnapshot(index: UInt64) {
        state = .snapshot(pending: index)
        inflight.removeAll()
    }

    /// Records an append whose last entry is `last` as sent.
    mutating func sent(through last: UInt64, entries: Int) {
        switch state {
        case .replicate:
            if entries > 0 {
                next = last + 1
                inflight.append(last)
            }
        case .probe:
            probeSent = true
        case .snapshot:
            preconditionFailure("no appends while a snapshot is pending")
        }
    }

    /// Frees the oldest in-flight slot: the follower answered a heartbeat, so if the window is full, appends
    /// were probably lost, and one more append will either be accepted or rejected into probing.
    mutating func freeOldestInflight() {
        if state == .replicate, inflight.count >= inflightMax { inflight.removeFirst() }
    }

    /// The follower has everything through `index`. Returns false for a stale acknowledgement.
    mutating func acknowledge(_ index: UInt64) -> Bool {
        let updated = index > match
        if updated {
            match = index
            probeSent = false
        }
        next = max(next, index + 1)
        while let oldest = inflight.first, oldest <= index { inflight.removeFirst() }
        return updated
    }

    /// The follower rejected the append after `rejected`; it may match at `hint` or below. Returns false if
    /// the rejection is stale (an answer to an append sent before the leader last moved `next`).
    mutating func rejected(_ rejected: UInt64, hint: UInt64) -> Bool {
        if state == .replicate {
            guard rejected > match else { return false }
            next = match + 1
            return true
        }
        guard next - 1 == rejected else { return false }
        next = max(min(rejected, hint + 1), match + 1)
        probeSent = false
        return true
    }
}

/// A leader's view of one follower, for operators (lag) and diagnostics.
public struct FollowerStatus: Hashable, Sendable, CustomStringConvertible {
    public var match: LogIndex
    public var next: LogIndex
    /// "probe", "replicate" or "snapshot".
    public var state: String
    public var inflight: Int
    public var recentlyActive: Bool

    public var description: String { "match=\(match) next=\(next) \(state) inflight=\(inflight)\(recentlyActive ? "" : " inactive")" }
}
