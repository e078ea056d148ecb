import SkiffRaft

/// A node's handle on the external log: reads it, seals terms, asks for the witness's vote, and writes as
/// a leader, with fencing.
///
/// Guarantees: a seal or a vote is written only at the first slot this handle found free after reading every earlier
/// one. A leader's batch that lands in its slot counts once the slots before it are written, unless its
/// writer was deposed, and a write that finds its slot taken by a later term says so (`.deposed`). One call
/// at a time, except `write`: the owner waits for each before the next (a second call while one is
/// suspended traps).
public actor ExternalLog {
    public let store: any ExternalStore
    /// Every record read or written so far, applied; a reader that replays entries keeps them.
    public private(set) var view: ExternalLogView
    private var started = false
    /// The checkpoint the view was built from, nil if from slot 0.
    private var startedFrom: UInt64?
    private var busy = false

    public init(store: any ExternalStore, keepsEntries: Bool) {
        self.store = store
        view = ExternalLogView(keepsEntries: keepsEntries)
    }

    /// Applies every record written since the last call, up to the first empty slot.
    @discardableResult
    public func catchUp() async throws(ExternalLogError) -> ExternalLogView {
        enter()
        defer { busy = false }
        try await readNewRecords()
        return view
    }

    private func readNewRecords() async throws(ExternalLogError) {
        if !started {
            try await start(from: store.newestCheckpointSlot())
            started = true
        }
        while true {
            while let bytes = try await store.readSlot(view.nextSlot) {
                try view.apply(ExternalRecordCoding.decode(bytes, slot: view.nextSlot))
            }
            // The first empty slot ends the log, unless a newer checkpoint appeared: then the slots read may have
            // been trimmed (even re-created by a writer that did not know) while they were read, so read again
            // from it. Slots are trimmed only after a checkpoint past them exists, so with none newer, every
            // slot read was as written.
            let newest = try await store.newestCheckpointSlot()
            guard let newest, newest != startedFrom else { return }
            try await start(from: newest)
        }
    }

    /// Resets the view to the checkpoint at `slot` (or the newest one, if that was trimmed meanwhile), or to
    /// the start of the log if there is none.
    private func start(from slot: UInt64?) async throws(ExternalLogError) {
        var slot = slot
        while let wanted = slot {
            if let bytes = try await store.readCheckpoint(wanted) {
                view = ExternalLogView(try ExternalCheckpointCoding.decode(bytes, slot: wanted), keepsEntries: view.keepsEntries)
                startedFrom = wanted
                return
            }
            slot = try await store.newestCheckpointSlot()
            guard slot != wanted else { throw .unavailable("checkpoint \(wanted) is listed but cannot be read") }
        }
        view = ExternalLogView(keepsEntries: view.keepsEntries)
        startedFrom = nil
    }

    /// Whether a record just created at `slot` landed below a checkpoint: the slot had been trimmed, so no
    /// reader will ever see it, and it must not count.
    private nonisolated func landedBelowCheckpoint(_ slot: UInt64) async throws(ExternalLogError) -> Bool {
        try await (store.newestCheckpointSlot() ?? 0) > slot
    }

    private func enter() {
        precondition(!busy, "one call at a time on an ExternalLog")
        busy = true
    }

    /// Writes a seal of `term` at the first free slot: from there on no record of `term` or earlier counts,
    /// so a leader of such a term fails its next write. Returns the view as of the seal: every record before it.
    @discardableResult
    public func seal(term: Term) async throws(ExternalLogError) -> ExternalLogView {
        try await writeSeal(term)
        return view
    }

    /// Begins writing as the leader of `term`: seals the terms before it, so that a deposed leader's write
    /// can never land between what this leader read and what it writes. Throws `.deposed` if `term`
    /// itself is already sealed or a later term has written. Returns the view to continue from.
    public func attach(asLeaderOf term: Term) async throws(ExternalLogError) -> ExternalLogView {
        precondition(term > .zero, "term 0 has no leader")
        guard try await catchUp().admits(term) else { throw .deposed(floor: view.floor) }
        try await writeSeal(Term(term.rawValue - 1))
        guard view.admits(term) else { throw .deposed(floor: view.floor) }
        return view
    }

    /// Writes a batch as the leader of `term`, after `attach`, into `slot`: the attach view's `nextSlot` for
    /// the first batch, one more for each next one. Several may be in flight at once; a reader counts a
    /// batch only once every slot before it is written, and only if it continues the log.
    ///
    /// `commit` is the leader's commit index, recorded for a rebuild to know what is committed.
    ///
    /// Returns false if an earlier term's record took the slot, or the slot had been trimmed: then this batch,
    /// and any later one written before the next `attach`, may not count, and the leader must attach again
    /// before it relies on any.
    /// Throws `.deposed` if a seal of `term` or a later term's record took it.
    public nonisolated func write(term: Term, previousIndex: LogIndex, previousTerm: Term, entries: [Entry], commit: LogIndex,
                                  slot: UInt64) async throws(ExternalLogError) -> Bool {
        try await place(.batch(term: term, previousIndex: previousIndex, previousTerm: previousTerm, entries: entries, commit: commit), at: slot)
    }

    /// Writes, as the leader of `term`, that the log continues from its snapshot at `index`/`snapshotTerm`,
    /// into `slot` as `write` does a batch (batches after it may be in flight). Only for a log that ends
    /// before `index`, once a snapshot reaching `index` is in the store: a reader restoring from the store
    /// needs it.
    public nonisolated func writeSnapshot(term: Term, index: LogIndex, snapshotTerm: Term, slot: UInt64) async throws(ExternalLogError) -> Bool {
        try await place(.snapshot(term: term, index: index, snapshotTerm: snapshotTerm), at: slot)
    }

    private nonisolated func place(_ record: ExternalRecord, at slot: UInt64) async throws(ExternalLogError) -> Bool {
        let term = record.term
        if try await store.createSlot(slot, bytes: ExternalRecordCoding.encode(record, slot: slot)) {
            return try await !landedBelowCheckpoint(slot)
        }
        guard let bytes = try await store.readSlot(slot) else { return false }  // taken, then trimmed
        switch try ExternalRecordCoding.decode(bytes, slot: slot) {
        case .seal(let sealed) where sealed >= term: throw .deposed(floor: Term(sealed.rawValue + 1))
        case let other where other.term > term: throw .deposed(floor: other.term)
        default: return false
        }
    }

    /// Asks the witness for its vote: writes a vote record at the first free slot. Returns whether it
    /// counted there (granted), by the rule every reader applies (`ExternalLogView.apply(_:)`).
    public func vote(term: Term, candidate: NodeID, lastIndex: LogIndex, lastTerm: Term) async throws(ExternalLogError) -> Bool {
        try await appendAtFirstFreeSlot(.vote(term: term, candidate: candidate, lastIndex: lastIndex, lastTerm: lastTerm))
    }

    private func writeSeal(_ term: Term) async throws(ExternalLogError) {
        try await appendAtFirstFreeSlot(.seal(term: term))
    }

    /// Writes `record` at the first free slot, applying whatever other writers put before it. Returns
    /// whether it counted.
    @discardableResult
    private func appendAtFirstFreeSlot(_ record: ExternalRecord) async throws(ExternalLogError) -> Bool {
        enter()
        defer { busy = false }
        try await readNewRecords()
        while true {
            let slot = view.nextSlot
            if try await store.createSlot(slot, bytes: ExternalRecordCoding.encode(record, slot: slot)),
               try await !landedBelowCheckpoint(slot) {
                return try view.apply(record)
            }
            try await readNewRecords()  // someone else took the slot, or it was trimmed: learn what is there, then try after it
        }
    }

    /// Writes `checkpoint`, then removes what it makes unnecessary: the slots and checkpoints before it, and
    /// the snapshots that are not among the newest two or end before its base. Refuses (`.unavailable`) if no
    /// snapshot in the store reaches the base: the entries up to it would then exist nowhere in the store.
    public nonisolated func trim(to checkpoint: ExternalCheckpoint) async throws(ExternalLogError) {
        let snapshots = try await store.snapshots()
        guard let newest = snapshots.first, newest.index >= checkpoint.baseIndex.rawValue else {
            throw .unavailable("no snapshot in the store reaches index \(checkpoint.baseIndex), so the log cannot be trimmed there")
        }
        _ = try await store.createCheckpoint(checkpoint.slot, bytes: ExternalCheckpointCoding.encode(checkpoint))
        try await store.trim(below: checkpoint.slot)
        for (position, snapshot) in snapshots.enumerated() where position >= 2 || snapshot.index < checkpoint.baseIndex.rawValue {
            try await store.removeSnapshot(snapshot)
        }
    }
}
