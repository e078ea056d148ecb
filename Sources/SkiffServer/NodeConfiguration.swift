import Logging
import SkiffExternal
import SkiffKV
import SkiffRaft
import SkiffStorage

/// Everything one `skiff` node needs to run. Built by the `skiff` executable from flags, environment and a
/// config file, or directly by tests; `validate()` says what is wrong in words an operator can act on.
public struct NodeConfiguration: Sendable {
    /// This node's name in `initialCluster`.
    public var name = "n1"
    public var dataDirectory = "./skiff-data"
    public var clientAddress = HostAndPort(host: "127.0.0.1", port: 7379)
    public var peerAddress = HostAndPort(host: "127.0.0.1", port: 7380)
    /// Where the other nodes are to reach this one, if not at `peerAddress` (a proxy or NAT in between):
    /// what a join or a standby request tells the cluster. A static member is reached at its
    /// `initialCluster` entry either way.
    public var advertisePeerAddress: HostAndPort?
    public var advertisedPeerAddress: HostAndPort { advertisePeerAddress ?? peerAddress }
    /// Every voter of a static cluster, this node included: name and peer address. Read only when the data
    /// directory does not yet belong to a cluster (see `ClusterIdentity`).
    public var initialCluster: [ClusterMember] = []
    /// The operator's name for the cluster, part of its tag; a static cluster's UUID is derived from it.
    public var clusterName = "skiff"
    /// Members (client addresses) to ask to let this node in, if its data directory belongs to no cluster yet.
    public var join: [HostAndPort] = []
    /// Without a recorded cluster, wait to be initialised (`skiff init`) instead of forming one alone.
    public var awaitInit = false
    /// What a node does once it learns it was removed from the cluster.
    public enum RemovalAction: String, Sendable, CaseIterable {
        /// Log it and stop (`skiff serve` exits 0).
        case shutdown
        /// Ask to be added back as a learner, and keep following the log as one.
        case standby
    }
    public var onRemoval = RemovalAction.shutdown
    /// After joining as a learner, ask to become a voter once caught up.
    public var joinAsVoter = false
    /// How long to keep trying the members in `join` before giving up.
    public var joinTimeout: Duration = .seconds(60)
    /// Changes kept in memory for watches to start or resume from (and at most 256 bytes of memory each).
    public var watchHistory = 50_000
    /// One tick of the Raft clock; elections and heartbeats are whole numbers of ticks.
    public var tickInterval: Duration = .milliseconds(100)
    public var electionTicks = 10
    public var heartbeatTicks = 1
    public var fsync = WALOptions.FsyncMode.always
    /// A snapshot is taken after this many entries were applied since the last one.
    public var snapshotEntries = 50_000
    /// How long a client request may wait for a leader, a commit or a read confirmation.
    public var requestTimeout: Duration = .seconds(5)
    /// Clients must AUTH with this password first, if set.
    public var password: String?
    public var limits = ClientLimits()
    /// Serve Prometheus metrics over HTTP here, if set.
    public var metricsAddress: HostAndPort?
    public var logLevel = Logger.Level.info
    /// Mirror the log to this external store, and replay a dead leader's tail from it before electing.
    public var externalLog: (any ExternalStore)?
    /// If the data directory is empty, rebuild it from `externalLog` before starting.
    public var restoreFromExternal = false
    /// Witness mode: the external log is a third voter (`ClusterMember.witnessID`), so that a cluster of two
    /// nodes keeps a majority with one node down. Two nodes only: the safety argument needs every quorum
    /// to hold the witness or both nodes (see the ExternalLog article).
    public var externalWitness = false

    public init() {}

    /// The voters, this node included; a lone node when no cluster is given.
    public var members: [ClusterMember] {
        initialCluster.isEmpty ? [ClusterMember(name: name, peerAddress: advertisedPeerAddress)] : initialCluster
    }

    public var nodeID: NodeID { ClusterMember.id(of: name) }

    public func validate() throws(ConfigurationError) {
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: "=") && $0 != UInt8(ascii: ",") }) else {
            throw ConfigurationError("--id must be a non-empty name without spaces, '=' or ','")
        }
        guard heartbeatTicks >= 1, electionTicks > heartbeatTicks else {
            throw ConfigurationError("the election timeout must be longer than the heartbeat interval")
        }
        guard snapshotEntries >= 1 else { throw ConfigurationError("--snapshot-entries must be at least 1") }
        guard watchHistory >= 1 else { throw ConfigurationError("--watch-history must be at least 1") }
        guard !clusterName.isEmpty, clusterName.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            throw ConfigurationError("--cluster-name must be a non-empty name without spaces")
        }
        if !join.isEmpty {
            guard initialCluster.isEmpty else { throw ConfigurationError("--join and --initial-cluster exclude each other: a node joins a cluster or is one of its first members") }
            guard !externalWitness else { throw ConfigurationError("a witness-mode cluster has exactly two nodes: no node can join it") }
        }
        if awaitInit {
            guard initialCluster.isEmpty else { throw ConfigurationError("--await-init and --initial-cluster exclude each other: skiff init names the first members") }
            guard !externalWitness, !restoreFromExternal else {
                throw ConfigurationError("--await-init forms a new cluster: it goes with neither --external-witness nor --restore-from-external")
            }
        }
        if !initialCluster.isEmpty {
            guard initialCluster.contains(where: { $0.name == name }) else {
                throw ConfigurationError("--initial-cluster does not list this node's --id '\(name)'")
            }
            guard Set(initialCluster.map(\.name)).count == initialCluster.count else {
                throw ConfigurationError("--initial-cluster names a node twice")
            }
            guard Set(initialCluster.map { ClusterMember.id(of: $0.name) }).count == initialCluster.count else {
                throw ConfigurationError("two names in --initial-cluster hash to the same node id; rename one")
            }
        }
        if externalWitness {
            guard externalLog != nil else { throw ConfigurationError("--external-witness on needs --external-log") }
            guard members.count == 2 else {
                throw ConfigurationError("--external-witness is for clusters of exactly two nodes, not \(members.count); "
                                         + "with more, use the store as a mirror only (--external-witness off)")
            }
            guard !members.contains(where: { ClusterMember.id(of: $0.name) == ClusterMember.witnessID }) else {
                throw ConfigurationError("a node name hashes to the witness's id; rename it")
            }
        }
        guard limits.bulkBytesMax >= 1024, limits.bulkBytesMax <= 256 << 20 else {
            throw ConfigurationError("--max-bulk-bytes must be between 1 KiB and 256 MiB")
        }
    }
}

/// A host and a port, as `--client-addr 127.0.0.1:7379` gives them.
public struct HostAndPort: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` (`[::1]:7379` for IPv6).
    public init(parsing text: String) throws(ConfigurationError) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError("'\(text)' is not HOST:PORT")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ConfigurationError("'\(text)' has no host") }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses `HOST:PORT,HOST:PORT,...`.
    public static func parseList(_ text: String) throws(ConfigurationError) -> [HostAndPort] {
        var addresses: [HostAndPort] = []
        for item in text.split(separator: ",") { addresses.append(try HostAndPort(parsing: String(item))) }
        guard !addresses.isEmpty else { throw ConfigurationError("no HOST:PORT given") }
        return addresses
    }
}

/// One voter of a static cluster: its name and where its peers reach it.
public struct ClusterMember: Hashable, Sendable {
    public var name: String
    public var peerAddress: HostAndPort

    public init(name: String, peerAddress: HostAndPort) {
        self.name = name
        self.peerAddress = peerAddress
    }

    public var id: NodeID { Self.id(of: name) }

    /// Parses `n1=HOST:PORT,n2=HOST:PORT,...`.
    public static func parseList(_ text: String) throws(ConfigurationError) -> [ClusterMember] {
        var members: [ClusterMember] = []
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else { throw ConfigurationError("'\(item)' is not NAME=HOST:PORT") }
            members.append(ClusterMember(name: String(parts[0]), peerAddress: try HostAndPort(parsing: String(parts[1]))))
        }
        guard !members.isEmpty else { throw ConfigurationError("--initial-cluster is empty") }
        return members
    }

    /// The Raft id the external store votes under in witness mode (a name no node can have: it has a space).
    public static let witnessID = id(of: "external witness")

    /// The Raft id of a node name: the same on every node, never 0.
    public static func id(of name: String) -> NodeID { NodeID(max(1, hash(name) >> 1)) }

    /// 64-bit FNV-1a, the key space's stable hash.
    static func hash(_ text: String) -> UInt64 { KVStore.stableHash(Array(text.utf8)) }
}

/// Limits on what one client may send.
public struct ClientLimits: Sendable {
    public var bulkBytesMax = 16 << 20
    /// Replies a pipelining client may have pending before the server stops reading from it.
    public var pipelineDepthMax = 4096
    public init() {}
}

/// A configuration that cannot work, and what to change.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension NodeConfiguration {
    /// Opens the external store that `--external-log` names: `dir:PATH` (a directory every node reaches).
    public static func openExternalStore(_ location: String) throws(ConfigurationError) -> any ExternalStore {
        guard location.hasPrefix("dir:"), location.count > 4 else {
            throw ConfigurationError("--external-log must be dir:PATH (the only backend so far), not '\(location)'")
        }
        return DirectoryExternalStore(root: String(location.dropFirst(4)))
    }
}
