import SkiffExternal
import SkiffRaft

/// The external log in a simulated run: write-once slots and checkpoints in memory, read with the real
/// `ExternalLogView` rules, the index of the newest snapshot uploaded, and a switch that makes the store
/// unavailable. Writes are not atomic with the step that starts them: a write waits in `pending` and lands
/// (or finds its slot taken) at a later step, as a slow store's. Trimming removes slots, so a write still in
/// flight can create a trimmed slot again, as it can in a directory.
struct SimulatedExternalStore {
    var slots: [UInt64: ExternalRecord] = [:]
    var checkpoints: [UInt64: ExternalCheckpoint] = [:]
    /// Every record that first took its slot, trims or not: what a reader of every slot would see.
    var history: [UInt64: ExternalRecord] = [:]
    /// The index of the newest snapshot in the store (their contents are the applied log's, not modelled).
    var snapshotIndex: UInt64 = 0
    var isDown = false
    /// Writes started and not yet landed, with the node incarnation that will hear the outcome.
    var pending: [(node: NodeID, incarnation: UInt64, slot: UInt64, record: ExternalRecord)] = []
    /// What every reader sees, and the checkpoint it started from.
    var readerView = ExternalLogView(keepsEntries: false)
    var readerStart: UInt64?

    var newestCheckpoint: ExternalCheckpoint? { checkpoints.keys.max().map { checkpoints[$0]! } }

    /// Creates `slot` if empty. Nil if the store is down; false if the slot is taken, or if it had been
    /// trimmed (then the record lies below the newest checkpoint, where no reader looks: `ExternalLog.write`
    /// finds that out by checking the newest checkpoint after the create).
    mutating func create(_ slot: UInt64, _ record: ExternalRecord) -> Bool? {
        guard !isDown else { return nil }
        guard slots[slot] == nil else { return false }
        slots[slot] = record
        if history[slot] == nil { history[slot] = record }
        return slot >= newestCheckpoint?.slot ?? 0
    }

    /// The log as a reader finds it: from the newest checkpoint, or slot 0.
    func read(keepsEntries: Bool) throws(ExternalLogError) -> ExternalLogView {
        var view = newestCheckpoint.map { ExternalLogView($0, keepsEntries: keepsEntries) } ?? ExternalLogView(keepsEntries: keepsEntries)
        while let record = slots[view.nextSlot] { try view.apply(record) }
        return view
    }

    /// The log as a reader of every slot ever written would find it, trims or not.
    func readWhole() throws(ExternalLogError) -> ExternalLogView {
        var view = ExternalLogView(keepsEntries: false)
        while let record = history[view.nextSlot] { try view.apply(record) }
        return view
    }

    /// Seals `term` at the first free slot, as `ExternalLog.seal` does; nil if the store is down.
    mutating func seal(_ term: Term, keepsEntries: Bool) throws(ExternalLogError) -> ExternalLogView? {
        guard !isDown else { return nil }
        var view = try read(keepsEntries: keepsEntries)
        try append(.seal(term: term), to: &view)
        return view
    }

    /// Writes `record` at the first free slot of `view`, which must be up to date, and applies it there.
    /// Returns whether it counted.
    @discardableResult
    mutating func append(_ record: ExternalRecord, to view: inout ExternalLogView) throws(ExternalLogError) -> Bool {
        precondition(slots[view.nextSlot] == nil, "the view must reach the first free slot")
        slots[view.nextSlot] = record
        history[view.nextSlot] = record
        return try view.apply(record)
    }

    /// Writes `checkpoint` and removes the slots and checkpoints below it, as `ExternalLog.trim` does.
    mutating func trim(to checkpoint: ExternalCheckpoint) {
        precondition(snapshotIndex >= checkpoint.baseIndex.rawValue, "a trim needs a snapshot that reaches its base")
        if checkpoints[checkpoint.slot] == nil { checkpoints[checkpoint.slot] = checkpoint }
        slots = slots.filter { $0.key >= checkpoint.slot }
        checkpoints = checkpoints.filter { $0.key >= checkpoint.slot }
    }

    /// Brings the reader's view up to date, starting again from a newer checkpoint, and returns whether it changed.
    mutating func catchUpReader() throws(ExternalLogError) -> Bool {
        let before = readerView.nextSlot
        if let newest = newestCheckpoint, newest.slot != readerStart {
            readerView = ExternalLogView(newest, keepsEntries: false)
            readerStart = newest.slot
        }
        while let record = slots[readerView.nextSlot] { try readerView.apply(record) }
        return readerView.nextSlot != before
    }
}

/// A leader's mirroring state, as the server keeps it (`ExternalMirror`); lost when the node crashes.
struct SimulatedMirror {
    var attachedTerm: UInt64?
    var mustReattach = false
    var nextSlot: UInt64 = 0
    var sentThrough: UInt64 = 0
    /// The attach found nothing in common with this leader's log: it continues from its snapshot once the store holds one.
    var continuesFromSnapshot = false
    var inFlight: [(slot: UInt64, last: UInt64, lastTerm: Term, landed: Bool)] = []
    /// Where a checkpoint could go: the slot after each batch of this leader that landed and counted.
    var checkpointCandidates: [(slot: UInt64, base: LogIndex, baseTerm: Term)] = []
    var trimmedThrough = LogIndex.zero
    /// External tail requests taken from Readys and not yet served.
    var replayRequests: [ExternalTailRequest] = []
}
