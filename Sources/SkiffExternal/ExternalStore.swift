/// Where the external log lives: numbered slots, each written at most once.
///
/// This is all a backend must provide, and all the server relies on (see the ExternalLog article for the
/// scheme). A directory implements it with `link(2)`; a ZooKeeper or etcd backend would map a slot to a
/// node or key created only if absent (a ZooKeeper `create` that fails with NodeExists, an etcd transaction
/// comparing the key's create revision with 0).
///
/// Guarantees a backend must give: `createSlot` is atomic (a reader sees the whole record or no record) and
/// durable once it returns true; of two writers of one slot exactly one gets true, and the other's bytes
/// are never visible; a slot, once written, holds the same bytes until trimmed.
public protocol ExternalStore: Sendable, CustomStringConvertible {
    /// Writes `bytes` into `slot` if the slot is empty. Returns false, writing nothing, if it is taken.
    func createSlot(_ slot: UInt64, bytes: [UInt8]) async throws(ExternalLogError) -> Bool
    /// The bytes of `slot`, or nil if it was never written or has been trimmed.
    func readSlot(_ slot: UInt64) async throws(ExternalLogError) -> [UInt8]?
    /// The lowest slot still held, or nil if the store holds none.
    func firstSlot() async throws(ExternalLogError) -> UInt64?
}
