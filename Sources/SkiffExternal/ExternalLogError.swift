import SkiffRaft

/// What can go wrong with the external log.
public enum ExternalLogError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The store holds a record that does not decode: the store, or something else writing to it, is broken.
    case corruptRecord(slot: UInt64, reason: String)
    /// A record decodes but no leader could have written it (entries out of sequence or of impossible terms).
    case brokenChain(slot: UInt64, reason: String)
    /// A leader's write found its slot taken by a seal of its term or by a later term's record: it is
    /// no longer leader and must step down. `floor` is the lowest term whose records still count.
    case deposed(floor: Term)
    /// The store could not be reached or refused the operation; nothing is known to have been written.
    case unavailable(String)
    /// The store records another cluster as its owner (`ExternalStoreOwner`): this node must not use it.
    case ownedByAnotherCluster(store: String, owner: String, claimant: String)
    /// The store's owner record does not decode: it will not mend by waiting.
    case malformedOwner(String)

    public var description: String {
        switch self {
        case .corruptRecord(let slot, let reason): "external log slot \(slot) is corrupt: \(reason)"
        case .brokenChain(let slot, let reason): "external log slot \(slot) breaks the log: \(reason)"
        case .deposed(let floor): "deposed: the external log now admits only terms \(floor) and later"
        case .unavailable(let reason): "external store unavailable: \(reason)"
        case .ownedByAnotherCluster(let store, let owner, let claimant):
            "the external store \(store) belongs to cluster \(owner), not to this node's cluster \(claimant): "
                + "each cluster needs a store of its own"
        case .malformedOwner(let reason): "external store unusable: \(reason)"
        }
    }
}
