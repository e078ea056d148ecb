import SkiffRaft
import SkiffStorage

/// The external log as a reader sees it after applying the records of slots `0..<nextSlot` in order (or a
/// checkpoint that stands for the first of them, then the rest).
///
/// Rules (the ExternalLog article argues why they keep Raft's guarantees):
/// - `floor` is the lowest term whose records count. A seal of term T raises it to T + 1; a counted batch of
///   term T raises it to T, so that nothing written by an earlier term's leader counts after it.
/// - A vote of term T counts (the witness grants it) only if T is above `witnessTerm` and the candidate's
///   log is at least as up-to-date as this view's: Raft's vote rule, with this view as the voter's log. A
///   counted vote raises the floor to T, as a voter that votes in T accepts no append of an earlier term.
///   A vote that does not count changes nothing (as a lost vote request would).
/// - A batch below the floor is skipped (its writer was deposed). So is a batch whose previous index and term
///   are not in the log: it continued a batch of its writer that never landed (a leader writes several
///   slots at once). Otherwise it is applied as a Raft follower applies an append: entries already held
///   with the same term stay, the log is cut at the first entry that differs, and the rest is appended.
///   So an entry is removed only by one that conflicts with it, and a committed entry never is.
/// - A snapshot record is applied as a Raft follower applies InstallSnapshot, under the same floor rule: a
///   log that holds the snapshot's last entry stays; any other log is replaced by the snapshot, which becomes
///   the base. One that would move the base back, or replace an entry known committed, does not count. Its
///   writer writes one only for a log with no entry in common with its own, so the entries removed were
///   uncommitted or are in the snapshot.
///
/// Guarantee: the entries are a prefix of some leader's log, and those through `writerLastIndex` are a
/// prefix of the log of the leader of `lastWriterTerm`.
public struct ExternalLogView: Sendable {
    public private(set) var nextSlot: UInt64
    public private(set) var floor = Term.zero
    /// The term of the last counted batch or snapshot record, and the last index it wrote (or found already
    /// there): through it, the entries are a prefix of that leader's log.
    public private(set) var lastWriterTerm = Term.zero
    public private(set) var writerLastIndex = LogIndex.zero
    /// Batches (and snapshot records) skipped because they did not continue the log.
    public private(set) var unjoinedBatches = 0
    /// The term of the last vote that counted, and whom it went to.
    public private(set) var voteTerm = Term.zero
    public private(set) var votedFor = NodeID.none
    /// The highest commit index a counted batch carried, or the base: entries through it are committed.
    public private(set) var committedIndex = LogIndex.zero
    /// The position before the first entry held.
    public private(set) var baseIndex = LogIndex.zero
    public private(set) var baseTerm = Term.zero
    /// The terms of the entries after the base.
    private var terms = TermRuns()
    /// The entries after the base, when the view keeps them (a reader that replays them); else empty.
    public private(set) var entries: [Entry] = []
    public let keepsEntries: Bool

    /// The view before slot 0.
    public init(keepsEntries: Bool) {
        nextSlot = 0
        self.keepsEntries = keepsEntries
    }

    /// The view a checkpoint summarises, with no entries before its base.
    public init(_ checkpoint: ExternalCheckpoint, keepsEntries: Bool) {
        nextSlot = checkpoint.slot
        floor = checkpoint.floor
        lastWriterTerm = checkpoint.lastWriterTerm
        writerLastIndex = checkpoint.baseIndex
        baseIndex = checkpoint.baseIndex
        baseTerm = checkpoint.baseTerm
        committedIndex = checkpoint.baseIndex
        self.keepsEntries = keepsEntries
    }

    public var lastIndex: LogIndex { terms.isEmpty ? baseIndex : LogIndex(terms.lastIndex) }
    public var lastTerm: Term { term(at: lastIndex) ?? baseTerm }

    /// The term of the entry at `index`, or nil if the view holds no such position.
    public func term(at index: LogIndex) -> Term? {
        if index == baseIndex { return baseTerm }
        return terms.term(at: index.rawValue).map { Term($0) }
    }

    /// The last index, up to `last`, at which this view and a log whose terms `termOf` gives hold the same
    /// term: by Log Matching they agree on everything before it too. Nil if they agree nowhere the view holds.
    public func lastAgreement(with termOf: (LogIndex) -> Term?, upTo last: LogIndex) -> LogIndex? {
        var index = min(lastIndex, last)
        while index > baseIndex, let held = term(at: index), termOf(index) != held { index = index.previous }
        guard let held = term(at: index), termOf(index) == held else { return nil }
        return index
    }

    /// What a node whose log ends at `last` (terms from `termOf`) may adopt from this view as a late append
    /// from the last writer: the entries after the last agreement, up to `writerLastIndex` (after that they
    /// are an earlier leader's). Nil if nothing joins its log. Needs a view that keeps entries.
    public func tail(for termOf: (LogIndex) -> Term?, lastIndex last: LogIndex) -> ExternalTail? {
        tail(for: termOf, lastIndex: last, through: writerLastIndex)
    }

    /// What a node whose log ends at `last` (terms from `termOf`) adopts in witness mode: every entry after
    /// the last agreement, as the witness holds them. Nil if nothing joins its log. Needs a view that keeps
    /// entries.
    public func witnessTail(for termOf: (LogIndex) -> Term?, lastIndex last: LogIndex) -> ExternalTail? {
        tail(for: termOf, lastIndex: last, through: lastIndex)
    }

    private func tail(for termOf: (LogIndex) -> Term?, lastIndex last: LogIndex, through end: LogIndex) -> ExternalTail? {
        precondition(keepsEntries, "a tail needs the entries")
        guard let previous = lastAgreement(with: termOf, upTo: last) else { return nil }
        return ExternalTail(leaderTerm: max(lastWriterTerm, lastTerm), previousIndex: previous, previousTerm: term(at: previous)!,
                            entries: entries.filter { $0.index > previous && $0.index <= end })
    }

    /// Whether a record of this term would count if it came next.
    public func admits(_ term: Term) -> Bool { term >= floor }

    /// The witness's current term, as a voter's: the highest term it voted in, saw a leader of, or sealed.
    /// It votes only in a later one.
    public var witnessTerm: Term {
        max(voteTerm, lastWriterTerm, floor == .zero ? .zero : Term(floor.rawValue - 1))
    }

    /// Whether a log ending at `lastIndex`/`lastTerm` is at least as up-to-date as this view (Raft §5.4.1).
    public func isBehind(lastIndex: LogIndex, lastTerm: Term) -> Bool {
        (lastTerm, lastIndex) < (self.lastTerm, self.lastIndex)
    }

    /// Applies the record of slot `nextSlot`. Returns whether it counted. Throws only for a batch that is
    /// malformed in itself (entries out of sequence, or of terms its writer could not have written).
    @discardableResult
    public mutating func apply(_ record: ExternalRecord) throws(ExternalLogError) -> Bool {
        let slot = nextSlot
        switch record {
        case .seal(let term):
            nextSlot += 1
            floor = max(floor, Term(term.rawValue + 1))
            return true
        case .vote(let term, let candidate, let candidateLastIndex, let candidateLastTerm):
            nextSlot += 1
            guard term > witnessTerm, !isBehind(lastIndex: candidateLastIndex, lastTerm: candidateLastTerm) else { return false }
            voteTerm = term
            votedFor = candidate
            floor = max(floor, term)
            return true
        case .snapshot(let term, let index, let snapshotTerm):
            guard admits(term) else {
                nextSlot += 1
                return false
            }
            guard index > .zero, snapshotTerm > .zero, snapshotTerm <= term else {
                throw .brokenChain(slot: slot, reason: "snapshot at \(index) of term \(snapshotTerm) in a record of term \(term)")
            }
            let holds = self.term(at: index) == snapshotTerm
            guard index >= baseIndex, holds || index > committedIndex else {
                nextSlot += 1
                unjoinedBatches += 1
                return false
            }
            if !holds {
                terms = TermRuns()
                entries = []
                baseIndex = index
                baseTerm = snapshotTerm
            }
            nextSlot += 1
            floor = term
            committedIndex = max(committedIndex, index)
            lastWriterTerm = term
            writerLastIndex = index
            return true
        case .batch(let term, let previousIndex, let previousTerm, let batch, let commit):
            guard admits(term) else {
                nextSlot += 1
                return false
            }
            try Self.check(batch, of: term, after: previousIndex, previousTerm: previousTerm, slot: slot)
            guard self.term(at: previousIndex) == previousTerm else {
                nextSlot += 1
                unjoinedBatches += 1
                return false
            }
            var first = 0  // the first entry not already held with the same term
            while first < batch.count, self.term(at: batch[first].index) == batch[first].term { first += 1 }
            if first < batch.count {
                let cut = batch[first].index.rawValue - 1
                terms.truncate(after: cut)
                if keepsEntries { entries.removeLast(entries.count - Int(cut - baseIndex.rawValue)) }
                for entry in batch[first...] { terms.append(index: entry.index.rawValue, term: entry.term.rawValue) }
                if keepsEntries { entries.append(contentsOf: batch[first...]) }
            }
            nextSlot += 1
            floor = term
            committedIndex = max(committedIndex, min(commit, lastIndex))
            lastWriterTerm = term
            writerLastIndex = batch.last?.index ?? previousIndex
            return true
        }
    }

    /// Checks that a batch's entries are consecutive after its previous index, with terms that never
    /// decrease and never exceed its writer's.
    static func check(_ batch: [Entry], of term: Term, after previousIndex: LogIndex, previousTerm: Term,
                      slot: UInt64) throws(ExternalLogError) {
        for (offset, entry) in batch.enumerated() {
            guard entry.index.rawValue == previousIndex.rawValue + 1 + UInt64(offset) else {
                throw .brokenChain(slot: slot, reason: "entry \(entry.index) out of sequence after \(previousIndex)")
            }
            guard entry.term <= term, entry.term >= (offset == 0 ? previousTerm : batch[offset - 1].term) else {
                throw .brokenChain(slot: slot, reason: "entry \(entry.index) has term \(entry.term) in a batch of term \(term)")
            }
        }
    }
}
