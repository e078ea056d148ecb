import SkiffRaft

/// A node's handle on the external log: reads it, seals terms, and appends as a leader, with fencing.
///
/// Guarantees: a record is written only at the first slot this handle found free after reading every
/// earlier one, so every record it writes counts under the view's rules unless it is a deposed leader's,
/// and then `append` throws `.deposed` instead of returning. A leader's batches are checked against the
/// view before they are written: a batch that would break the log is a caller's bug and traps. One call at
/// a time: the owner waits for each before the next (a second call while one is suspended traps).
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
        try await write(.seal(term: term))
        return view
    }

    /// Begins writing as the leader of `term`: seals the terms before it, so that a deposed leader's write
    /// can never land between what this leader read and what it writes. Throws `.deposed` if `term`
    /// itself is already sealed or a later term has written. Returns the view to continue from.
    public func attach(asLeaderOf term: Term) async throws(ExternalLogError) -> ExternalLogView {
        precondition(term > .zero, "term 0 has no leader")
        try await write(.seal(term: Term(term.rawValue - 1)))
        guard view.admits(term) else { throw .deposed(floor: view.floor) }
        return view
    }

    /// Appends a batch as the leader of `term` (after `attach`). Throws `.deposed` if a seal of its term or
    /// a later term's record took the slot; then nothing of this batch counts, nor will anything later.
    public func append(term: Term, previousIndex: LogIndex, previousTerm: Term, entries: [Entry]) async throws(ExternalLogError) {
        try await write(.batch(term: term, previousIndex: previousIndex, previousTerm: previousTerm, entries: entries))
    }

    /// Writes `record` at the first free slot, applying whatever other writers put before it.
    private func write(_ record: ExternalRecord) async throws(ExternalLogError) {
        enter()
        defer { busy = false }
        try await readNewRecords()
        while true {
            guard view.admits(record.term) || isSeal(record) else { throw .deposed(floor: view.floor) }
            var next = view
            do { try next.apply(record) } catch { preconditionFailure("a record that breaks the external log: \(error)") }
            let slot = view.nextSlot
            if try await store.createSlot(slot, bytes: ExternalRecordCoding.encode(record, slot: slot)) {
                view = next
                return
            }
            try await readNewRecords()  // someone else took the slot: learn what they wrote, then try after it
        }
    }

    private func isSeal(_ record: ExternalRecord) -> Bool {
        if case .seal = record { true } else { false }
    }
}
