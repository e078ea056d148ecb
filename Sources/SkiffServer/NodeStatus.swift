import NIOCore
import SkiffRaft

/// Counters a node keeps about its own work, for INFO and metrics.
public struct NodeMetrics: Sendable {
    public var applied: UInt64 = 0
    public var persists: UInt64 = 0
    public var persistedEntries: UInt64 = 0
    /// Total and worst time from handing a Ready to the WAL until it was durable.
    public var persistNanoseconds: UInt64 = 0
    public var persistNanosecondsMax: UInt64 = 0
    public var snapshotsTaken: UInt64 = 0
    public var snapshotsSent: UInt64 = 0
    public var snapshotsInstalled: UInt64 = 0

    mutating func recordPersist(since start: NIODeadline, entries: Int) {
        let elapsed = UInt64(max(0, (NIODeadline.now() - start).nanoseconds))
        persists += 1
        persistedEntries += UInt64(entries)
        persistNanoseconds += elapsed
        persistNanosecondsMax = max(persistNanosecondsMax, elapsed)
    }
}

/// A node's view of itself and its cluster at one moment: what INFO, SKIFF.STATUS and metrics report.
public struct NodeStatus: Sendable {
    public var name: String
    /// The cluster tag: its name and UUID.
    public var clusterName: String
    public var clusterUUID: String
    public var role: String
    public var term: UInt64
    public var leader: String?
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    public var firstIndex: UInt64
    public var lastIndex: UInt64
    public var snapshotIndex: UInt64
    /// Seconds since the node was opened.
    public var uptimeSeconds: Int64
    /// A snapshot is being written in the background.
    public var snapshotInProgress: Bool
    public var keys: Int
    public var pendingWrites: Int
    public var pendingReads: Int
    public var members: [Member]
    public var metrics: NodeMetrics
    public var external: ExternalStatus?

    public struct Member: Sendable {
        public var name: String
        public var isVoter: Bool
        public var isLeader: Bool
        public var peerAddress: String?
        public var clientAddress: String?
        /// Whether this node has a connection to it (always true for itself).
        public var connected: Bool
        /// On the leader: how many entries of its log the member lacks.
        public var lag: UInt64?
        /// On the leader: the member's highest replicated index and how it is being sent to.
        public var match: UInt64?
        public var replication: String?
    }
}

extension Node {
    public var status: NodeStatus {
        let configuration = core.clusterConfiguration
        let followers = core.followers
        let name = self.name(of:)
        let members = configuration.members.sorted().map { member in
            let match = member == id && core.isLeader ? core.persistedIndex.rawValue : followers[member]?.match.rawValue
            let details = details(of: member)
            return NodeStatus.Member(name: name(member), isVoter: configuration.voters.contains(member), isLeader: member == core.leader,
                              peerAddress: details?.peerAddress.description,
                              clientAddress: member == id ? self.configuration.clientAddress.description : details?.clientAddress?.description,
                              connected: member == id || transport.isConnected(to: member) || (member == ClusterMember.witnessID && witness != nil),
                              lag: core.isLeader ? match.map { core.lastIndex.rawValue - min($0, core.lastIndex.rawValue) } : nil,
                              match: match,
                              // The witness gets no appends: the mirror writes its log.
                              replication: followers[member].map { member == ClusterMember.witnessID ? "mirror" : $0.state })
        }.sorted { $0.name < $1.name }
        let role = switch core.role {
        case .leader: "leader"
        case .candidate, .preCandidate: "candidate"
        case .follower: configuration.voters.contains(id) ? "follower" : "learner"
        }
        return NodeStatus(name: configuration.voters.isEmpty ? "" : name(id), clusterName: identity.name, clusterUUID: identity.uuidString,
                          role: role, term: core.term,
                          leader: core.leader == .none ? nil : name(core.leader), commitIndex: core.commitIndex.rawValue,
                          appliedIndex: storeIndex, firstIndex: core.firstIndex.rawValue, lastIndex: core.lastIndex.rawValue,
                          snapshotIndex: snapshots.lastIndex, uptimeSeconds: (NIODeadline.now() - openedAt).nanoseconds / 1_000_000_000, snapshotInProgress: snapshots.saving, keys: store.count, pendingWrites: writes.count, pendingReads: reads.count,
                          members: members, metrics: metrics, external: externalStatus)
    }
}
