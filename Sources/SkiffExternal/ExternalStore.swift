/// Where the external log lives: numbered slots and checkpoints, each written at most once, snapshot
/// files, and the record of the cluster that owns the store.
///
/// This is all a backend must provide, and all the server relies on (see the ExternalLog article for the
/// scheme). A directory implements it with `link(2)` and `rename(2)`; a ZooKeeper or etcd backend would map a
/// slot or checkpoint to a node or key created only if absent (a ZooKeeper `create` that fails with
/// NodeExists, an etcd transaction comparing the key's create revision with 0), and a snapshot to chunk keys
/// made visible by one final key.
///
/// Guarantees a backend must give: `createSlot` and `createCheckpoint` are atomic (a reader sees the whole
/// record or no record) and durable once they return true; of two writers of one name exactly one gets
/// true, and the other's bytes are never visible; a slot or checkpoint, once written, holds the same bytes
/// until removed. A published snapshot is complete and durable, and never changes.
public protocol ExternalStore: Sendable, CustomStringConvertible {
    /// Writes `bytes` into `slot` if the slot is empty. Returns false, writing nothing, if it is taken.
    func createSlot(_ slot: UInt64, bytes: [UInt8]) async throws(ExternalLogError) -> Bool
    /// The bytes of `slot`, or nil if it was never written or has been trimmed.
    func readSlot(_ slot: UInt64) async throws(ExternalLogError) -> [UInt8]?

    /// Writes the checkpoint that summarises every slot below `slot`, if none is there yet. Returns false if
    /// one is: it describes the same slots, so it is as good.
    func createCheckpoint(_ slot: UInt64, bytes: [UInt8]) async throws(ExternalLogError) -> Bool
    /// The highest slot with a checkpoint, or nil if none was ever written.
    func newestCheckpointSlot() async throws(ExternalLogError) -> UInt64?
    /// The bytes of the checkpoint at `slot`, or nil if there is none (it may have been trimmed).
    func readCheckpoint(_ slot: UInt64) async throws(ExternalLogError) -> [UInt8]?
    /// Removes every slot and checkpoint below `slot`. Only called once a checkpoint at `slot` exists.
    func trim(below slot: UInt64) async throws(ExternalLogError)

    /// Writes `bytes` at `offset` of a snapshot being uploaded by this process; invisible to readers until
    /// `publishSnapshot`.
    func writeSnapshotChunk(_ snapshot: ExternalSnapshotID, offset: UInt64, bytes: [UInt8]) async throws(ExternalLogError)
    /// Makes the snapshot uploaded so far durable and visible, all at once.
    func publishSnapshot(_ snapshot: ExternalSnapshotID) async throws(ExternalLogError)
    /// Drops an upload that will not be published.
    func abandonSnapshot(_ snapshot: ExternalSnapshotID) async
    /// The published snapshots, newest (highest index) first.
    func snapshots() async throws(ExternalLogError) -> [ExternalSnapshotID]
    /// Up to `count` bytes of a published snapshot from `offset`; fewer only at its end.
    func readSnapshot(_ snapshot: ExternalSnapshotID, offset: UInt64, count: Int) async throws(ExternalLogError) -> [UInt8]
    func removeSnapshot(_ snapshot: ExternalSnapshotID) async throws(ExternalLogError)
    /// Removes what writers left half done, untouched for at least `seconds` by the store's own clock (an
    /// upload whose writer crashed: nothing else would ever remove it), except what this store instance
    /// itself is writing. Throws only if it cannot look at all.
    func removeAbandonedUploads(untouchedFor seconds: Double) async throws(ExternalLogError) -> AbandonedUploads

    /// Records `owner` (an `ExternalStoreOwner`) if the store records none yet, and returns the owner it
    /// records: `owner` itself unless another writer's came first. Atomic and durable as `createSlot` is,
    /// and never changed after.
    func claimOwner(_ owner: [UInt8]) async throws(ExternalLogError) -> [UInt8]
    /// The owner recorded, or nil if none is yet.
    func recordedOwner() async throws(ExternalLogError) -> [UInt8]?
}

/// What `ExternalStore.removeAbandonedUploads(untouchedFor:)` did: the names it removed, and each it could
/// not remove with the reason.
public struct AbandonedUploads: Sendable, Equatable {
    public var removed: [String] = []
    public var failures: [String] = []
    public init() {}
}

/// A snapshot in the external store: the state machine through `index`, whose entry has `term`. Its bytes
/// are a node's snapshot file (SkiffStorage's snapshot format), which verifies itself.
public struct ExternalSnapshotID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var index: UInt64
    public var term: UInt64

    public init(index: UInt64, term: UInt64) {
        self.index = index
        self.term = term
    }

    public static func < (a: Self, b: Self) -> Bool { (a.index, a.term) < (b.index, b.term) }

    /// `<index, 20 digits>-<term, 20 digits>.snap`, the name a node's own snapshot file has.
    public var fileName: String { pad20(index) + "-" + pad20(term) + ".snap" }

    public init?(fileName name: String) {
        guard name.hasSuffix(".snap") else { return nil }
        let parts = name.dropLast(5).split(separator: "-")
        guard parts.count == 2, parts[0].count == 20, parts[1].count == 20,
              let index = UInt64(parts[0]), let term = UInt64(parts[1]) else { return nil }
        self.init(index: index, term: term)
    }

    public var description: String { "\(index)/\(term)" }
}

/// `value` in decimal, padded with zeros to 20 digits, so that names sort as numbers.
func pad20(_ value: UInt64) -> String {
    let digits = String(value)
    return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
}
