import SkiffRaft

/// What survives a crash: the hard state, the snapshot, and the entries after it, exactly as persisted.
struct SimulatedDisk {
    var hardState = HardState.initial
    var snapshot: RaftSnapshot?
    /// The state machine at the snapshot: the ids of the commands applied, in order.
    var snapshotData: [UInt64] = []
    var entries: [Entry] = []
}

/// One node: its core (nil while crashed), its disk, and its state machine (the ids of the commands it
/// applied, in order).
struct SimulatedNode {
    let id: NodeID
    var core: RaftCore?
    var disk = SimulatedDisk()
    var stateMachine: [UInt64] = []
    var appliedIndex: UInt64 = 0
    /// Readys taken (leader messages sent, committed entries applied) but not yet persisted, oldest first:
    /// a crash now loses them.
    var pendingReadys: [Ready] = []
    var restarts: UInt64 = 0
    /// Its external log work as leader and before campaigning (with `SimulationOptions.externalLog`).
    var mirror = SimulatedMirror()

    var isUp: Bool { core != nil }

    /// Persists a Ready the way a real owner must: snapshot, then truncate and append, then hard state.
    mutating func persist(_ ready: Ready, snapshotData: (LogIndex) -> [UInt64]) {
        if let snapshot = ready.snapshot {
            disk.snapshot = snapshot
            disk.snapshotData = snapshotData(snapshot.index)
            disk.entries = []
            stateMachine = disk.snapshotData
            appliedIndex = snapshot.index.rawValue
        }
        if let first = ready.entries.first {
            let base = disk.snapshot?.index.rawValue ?? 0
            let keep = Int(first.index.rawValue - base - 1)
            precondition(keep >= 0 && keep <= disk.entries.count, "ready entries must join the persisted log")
            disk.entries.removeSubrange(keep...)
            disk.entries.append(contentsOf: ready.entries)
        }
        if let state = ready.hardState { disk.hardState = state }
    }

    /// Saves the state machine as a snapshot at the applied index and compacts the log behind it.
    mutating func takeSnapshot() {
        guard var core, appliedIndex > (disk.snapshot?.index.rawValue ?? 0) else { return }
        let index = LogIndex(appliedIndex)
        guard let term = core.term(at: index), index <= core.persistedIndex else { return }
        core.compact(through: index)
        disk.snapshot = RaftSnapshot(index: index, term: term, configuration: core.snapshotPoint.configuration)
        disk.snapshotData = stateMachine
        disk.entries.removeAll { $0.index <= index }
        self.core = core
    }
}
