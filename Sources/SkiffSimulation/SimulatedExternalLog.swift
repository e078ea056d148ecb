import SkiffExternal
import SkiffRaft

/// The external log in a simulated run: write-once slots in memory, read with the real `ExternalLogView`
/// rules, and a switch that makes the store unavailable. Writes are not atomic with the step that starts
/// them: a write waits in `pending` and lands (or finds its slot taken) at a later step, as a slow store's.
struct SimulatedExternalStore {
    var slots: [UInt64: ExternalRecord] = [:]
    var isDown = false
    /// Writes started and not yet landed, with the node incarnation that will hear the outcome.
    var pending: [(node: NodeID, incarnation: UInt64, slot: UInt64, record: ExternalRecord)] = []
    /// What every reader sees: the slots applied up to the first empty one.
    var readerView = ExternalLogView(keepsEntries: false)

    /// Creates `slot` if empty. Nil if the store is down; false if the slot is taken.
    mutating func create(_ slot: UInt64, _ record: ExternalRecord) -> Bool? {
        guard !isDown else { return nil }
        guard slots[slot] == nil else { return false }
        slots[slot] = record
        return true
    }

    /// The log as a reader finds it, from slot 0 (nothing is trimmed in the simulation).
    func read(keepsEntries: Bool) throws(ExternalLogError) -> ExternalLogView {
        var view = ExternalLogView(keepsEntries: keepsEntries)
        while let record = slots[view.nextSlot] { try view.apply(record) }
        return view
    }

    /// Seals `term` at the first free slot, as `ExternalLog.seal` does; nil if the store is down.
    mutating func seal(_ term: Term, keepsEntries: Bool) throws(ExternalLogError) -> ExternalLogView? {
        guard !isDown else { return nil }
        var view = try read(keepsEntries: keepsEntries)
        slots[view.nextSlot] = .seal(term: term)
        try view.apply(.seal(term: term))
        return view
    }

    /// Brings the reader's view up to date and returns whether it changed.
    mutating func catchUpReader() throws(ExternalLogError) -> Bool {
        let before = readerView.nextSlot
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
    var inFlight: [(slot: UInt64, last: UInt64, landed: Bool)] = []
    /// External tail requests taken from Readys and not yet served.
    var replayRequests: [ExternalTailRequest] = []
}
