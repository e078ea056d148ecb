import SkiffRaft

/// A node's handle on the external log: reads it, seals terms, and writes as a leader, with fencing.
///
/// Guarantees: a seal is written only at the first slot this handle found free after reading every earlier
/// one. A leader's batch that lands in its slot counts once the slots before it are written, unless its
/// writer was deposed, and a write that finds its slot taken by a later term says so (`.deposed`). One call
/// at a time, except `write`: the owner waits for each before the next (a second call while one is
/// suspended traps).
public actor ExternalLog {
    public let store: any ExternalStore
    /// Every record read or written so far, applied; a reader that replays entries keeps them.
    public private(set) var view: ExternalLogView
    private var started = false
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
            // Slots below the first one held were trimmed away; reading starts where the store starts.
            let first = try await store.firstSlot() ?? 0
            view = ExternalLogView(firstSlot: first, keepsEntries: view.keepsEntries)
            started = true
        }
        while let bytes = try await store.readSlot(view.nextSlot) {
            try view.apply(ExternalRecordCoding.decode(bytes, slot: view.nextSlot))
        }
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
    /// Returns false if an earlier term's record took the slot: then this batch, and any later one written
    /// before the next `attach`, may not count, and the leader must attach again before it relies on any.
    /// Throws `.deposed` if a seal of `term` or a later term's record took it.
    public nonisolated func write(term: Term, previousIndex: LogIndex, previousTerm: Term, entries: [Entry],
                                  slot: UInt64) async throws(ExternalLogError) -> Bool {
        let record = ExternalRecord.batch(term: term, previousIndex: previousIndex, previousTerm: previousTerm, entries: entries)
        if try await store.createSlot(slot, bytes: ExternalRecordCoding.encode(record, slot: slot)) { return true }
        guard let bytes = try await store.readSlot(slot) else {
            throw .unavailable("slot \(slot) was taken, then could not be read")
        }
        switch try ExternalRecordCoding.decode(bytes, slot: slot) {
        case .seal(let sealed) where sealed >= term: throw .deposed(floor: Term(sealed.rawValue + 1))
        case let other where other.term > term: throw .deposed(floor: other.term)
        default: return false
        }
    }

    /// Writes a seal of `term` at the first free slot, applying whatever other writers put before it.
    private func writeSeal(_ term: Term) async throws(ExternalLogError) {
        enter()
        defer { busy = false }
        try await readNewRecords()
        while true {
            let slot = view.nextSlot
            if try await store.createSlot(slot, bytes: ExternalRecordCoding.encode(.seal(term: term), slot: slot)) {
                try view.apply(.seal(term: term))
                return
            }
            try await readNewRecords()  // someone else took the slot: learn what they wrote, then try after it
        }
    }
}
