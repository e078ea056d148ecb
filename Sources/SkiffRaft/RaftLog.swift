/// The core's view of the log: a snapshot point, the entries after it, and three positions in it.
///
/// `stable <= inProgress <= lastIndex`: entries up to `stable` are persisted, those up to `inProgress` were
/// handed out in a Ready to be persisted, and later ones await the next Ready.
/// `applied <= committed`: entries up to `applied` were handed out for applying. A committed entry is durable
/// on a majority, so it may be applied before it is durable here (the owner snapshots only persisted entries).
/// Committed entries are never removed or replaced (a precondition guards it).
struct RaftLog {
    /// The log starts after this index, which a snapshot covers (0 for a log that starts at 1).
    private(set) var snapshotIndex: UInt64
    private(set) var snapshotTerm: UInt64
    private(set) var entries: [Entry]
    private(set) var committed: UInt64
    var applied: UInt64
    private(set) var stable: UInt64
    private(set) var inProgress: UInt64

    init(snapshotIndex: UInt64, snapshotTerm: UInt64, entries: [Entry], committed: UInt64, applied: UInt64) {
        precondition(entries.first.map { $0.index.rawValue == snapshotIndex + 1 } ?? true, "entries must follow the snapshot")
        self.snapshotIndex = snapshotIndex
        self.snapshotTerm = snapshotTerm
        self.entries = entries
        let last = snapshotIndex + UInt64(entries.count)
        precondition(committed <= last && applied <= committed && applied >= snapshotIndex,
                     "recovered positions out of order: applied \(applied) committed \(committed) last \(last)")
        self.committed = committed
        self.applied = applied
        stable = last
        inProgress = last
    }

    var firstIndex: UInt64 { snapshotIndex + 1 }
    var lastIndex: UInt64 { snapshotIndex + UInt64(entries.count) }
    var lastTerm: UInt64 { term(at: lastIndex)! }

    /// The term at `index`, for the snapshot point and every entry after it; nil elsewhere.
    func term(at index: UInt64) -> UInt64? {
        if index == snapshotIndex { return snapshotTerm }
        guard index > snapshotIndex, index <= lastIndex else { return nil }
        return entries[Int(index - snapshotIndex - 1)].term.rawValue
    }

    func matches(index: UInt64, term: UInt64) -> Bool { self.term(at: index) == term }

    /// Raft's "at least as up to date" (§5.4.1): a later last term, or the same term and no shorter.
    func isUpToDate(lastIndex otherIndex: UInt64, lastTerm otherTerm: UInt64) -> Bool {
        otherTerm > lastTerm || (otherTerm == lastTerm && otherIndex >= lastIndex)
    }

    /// Entries from `index` on, at least one if any, stopping before `byteLimit` payload bytes.
    func entries(from index: UInt64, byteLimit: Int) -> [Entry] {
        guard index <= lastIndex else { return [] }
        precondition(index > snapshotIndex, "entries before \(firstIndex) are compacted")
        var bytes = 0
        var result: [Entry] = []
        for entry in entries[Int(index - snapshotIndex - 1)...] {
            if !result.isEmpty && bytes + entry.payload.count > byteLimit { break }
            bytes += entry.payload.count
            result.append(entry)
        }
        return result
    }

    /// Entries not yet handed out in a Ready to be persisted.
    var entriesToPersist: ArraySlice<Entry> { entries[Int(inProgress - snapshotIndex)...] }

    /// Entries committed but not yet handed out for applying.
    var entriesToApply: ArraySlice<Entry> {
        entries[Int(applied - snapshotIndex)..<Int(committed - snapshotIndex)]
    }

    /// Records that every entry, and (if `applying`) every committed entry, was handed out in a Ready.
    mutating func handOut(applying: Bool) {
        inProgress = lastIndex
        if applying { applied = committed }
    }

    /// Appends entries that follow the last one (the leader's own proposals).
    mutating func append(_ new: [Entry]) {
        guard let first = new.first else { return }
        precondition(first.index.rawValue == lastIndex + 1, "append must continue the log: \(first.index) after \(lastIndex)")
        entries.append(contentsOf: new)
    }

    /// Appends entries from a leader (or an external tail) after `previousIndex`, replacing any conflicting
    /// suffix; with `mayTruncate` false, stops at the first conflict instead. Returns the index through which
    /// the log now matches `new`, and the first index written (nil if every entry was already there); nil
    /// if the log does not match at `previousIndex`.
    mutating func append(after previousIndex: UInt64, previousTerm: UInt64, _ new: [Entry],
                         mayTruncate: Bool = true) -> (matched: UInt64, firstWritten: UInt64?)? {
        guard matches(index: previousIndex, term: previousTerm) else { return nil }
        var position = 0
        while position < new.count, let existing = term(at: new[position].index.rawValue) {
            if existing != new[position].term.rawValue {
                guard mayTruncate else { return (new[position].index.rawValue - 1, nil) }
                truncate(after: new[position].index.rawValue - 1)
                break
            }
            position += 1
        }
        guard position < new.count else { return (previousIndex + UInt64(new.count), nil) }
        precondition(new[position].index.rawValue == lastIndex + 1, "entries must be contiguous")
        entries.append(contentsOf: new[position...])
        return (previousIndex + UInt64(new.count), new[position].index.rawValue)
    }

    /// Drops entries after `index`. Committed entries are never dropped.
    mutating func truncate(after index: UInt64) {
        precondition(index >= committed, "truncating committed entries: \(index) < \(committed)")
        guard index < lastIndex else { return }
        entries.removeSubrange(Int(index - snapshotIndex)...)
        stable = min(stable, index)
        inProgress = min(inProgress, index)
    }

    mutating func commit(to index: UInt64) {
        guard index > committed else { return }
        precondition(index <= lastIndex, "commit \(index) beyond the last index \(lastIndex)")
        committed = index
    }

    /// Marks entries up to `index` persisted, if the entry there is still the one of `term` that was persisted.
    /// (An index and term name one entry cluster-wide, so if a suffix was replaced and then the same entry
    /// came back, marking it is still right: the Ready that writes it again is queued behind.)
    mutating func markStable(through index: UInt64, term: UInt64) {
        guard index > stable, index <= inProgress, matches(index: index, term: term) else { return }
        stable = index
    }

    /// Replaces the whole log with a snapshot point (a snapshot from the leader).
    mutating func restore(index: UInt64, term: UInt64) {
        precondition(index > committed, "a snapshot must be ahead of the commit index")
        snapshotIndex = index
        snapshotTerm = term
        entries = []
        committed = index
        stable = index
        inProgress = index
        applied = index
    }

    /// Forgets entries up to `index`, which a snapshot of the state machine now covers.
    mutating func compact(through index: UInt64) {
        guard index > snapshotIndex else { return }
        precondition(index <= applied, "compacting unapplied entries: \(index) > \(applied)")
        precondition(index <= stable, "compacting entries not yet persisted: \(index) > \(stable)")
        snapshotTerm = term(at: index)!
        entries.removeFirst(Int(index - snapshotIndex))
        snapshotIndex = index
    }

    /// The largest index at or below `index` whose term is at most `term`: where a leader and follower whose
    /// logs disagree can next try to match (etcd's findConflictByTerm).
    func lastIndex(atOrBelow index: UInt64, withTermAtMost term: UInt64) -> UInt64 {
        var candidate = min(index, lastIndex)
        while candidate > snapshotIndex, let existing = self.term(at: candidate), existing > term { candidate -= 1 }
        return candidate
    }
}
