/// Who is in the cluster: voters elect leaders and count towards commitment; learners receive the log but
/// never vote or count. A node is in at most one of the two sets. Each member may carry `details`, bytes the
/// core keeps and replicates with the configuration but never reads (the server puts a member's name and
/// addresses there), so that whoever holds a configuration also knows how to reach its members.
public struct ClusterConfiguration: Hashable, Sendable, CustomStringConvertible {
    public private(set) var voters: Set<NodeID>
    public private(set) var learners: Set<NodeID>
    /// Opaque bytes per member; only members have an entry.
    public private(set) var details: [NodeID: [UInt8]]

    public init(voters: Set<NodeID>, learners: Set<NodeID> = [], details: [NodeID: [UInt8]] = [:]) {
        precondition(voters.isDisjoint(with: learners), "a node is a voter or a learner, not both")
        precondition(!voters.contains(.none) && !learners.contains(.none), "node 0 means nobody")
        precondition(details.keys.allSatisfy { voters.contains($0) || learners.contains($0) }, "details only for members")
        self.voters = voters
        self.learners = learners
        self.details = details
    }

    public static let empty = ClusterConfiguration(voters: [])

    public var members: Set<NodeID> { voters.union(learners) }
    /// How many voters make a majority.
    public var quorum: Int { voters.count / 2 + 1 }

    public func contains(_ node: NodeID) -> Bool { voters.contains(node) || learners.contains(node) }

    /// The configuration after `change`, or why it cannot be made. `details`, if given, become the added
    /// member's; a promoted learner keeps its own unless new ones are given.
    public func applying(_ change: ConfigurationChange, details memberDetails: [UInt8]? = nil) -> Result<ClusterConfiguration, RaftRefusal> {
        var next = self
        switch change {
        case .addVoter(let node):
            guard node != .none else { return .failure(.invalidConfigurationChange("node 0 means nobody")) }
            guard !voters.contains(node) else { return .failure(.invalidConfigurationChange("\(node) is already a voter")) }
            next.learners.remove(node)
            next.voters.insert(node)
            if let memberDetails { next.details[node] = memberDetails }
        case .addLearner(let node):
            guard node != .none else { return .failure(.invalidConfigurationChange("node 0 means nobody")) }
            guard !contains(node) else { return .failure(.invalidConfigurationChange("\(node) is already a member")) }
            next.learners.insert(node)
            if let memberDetails { next.details[node] = memberDetails }
        case .remove(let node):
            guard contains(node) else { return .failure(.invalidConfigurationChange("\(node) is not a member")) }
            next.voters.remove(node)
            next.learners.remove(node)
            next.details[node] = nil
            guard !next.voters.isEmpty else { return .failure(.invalidConfigurationChange("cannot remove the last voter")) }
        }
        return .success(next)
    }

    /// `u8 version (1 or 2) | u32 voter count | u64 voters... | u32 learner count | u64 learners...`, ascending,
    /// then in version 2 `u32 count | (u64 node | u32 length | bytes)...` for the details. Version 1 (written
    /// when no member has details, as before details existed) stays readable.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = [details.isEmpty ? 1 : 2]
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
        append(UInt32(voters.count))
        for node in voters.sorted() { append(node.rawValue) }
        append(UInt32(learners.count))
        for node in learners.sorted() { append(node.rawValue) }
        guard !details.isEmpty else { return bytes }
        append(UInt32(details.count))
        for (node, memberDetails) in details.sorted(by: { $0.key < $1.key }) {
            append(node.rawValue)
            append(UInt32(memberDetails.count))
            bytes.append(contentsOf: memberDetails)
        }
        return bytes
    }

    /// Decodes `encoded()`; nil for bytes that are not a valid configuration.
    public init?(decoding bytes: [UInt8]) {
        var offset = 1
        func read<T: FixedWidthInteger>(_: T.Type) -> T? {
            guard offset + MemoryLayout<T>.size <= bytes.count else { return nil }
            var value: T = 0
            withUnsafeMutableBytes(of: &value) { $0.copyBytes(from: bytes[offset..<offset + MemoryLayout<T>.size]) }
            offset += MemoryLayout<T>.size
            return T(littleEndian: value)
        }
        func readSet() -> Set<NodeID>? {
            guard let count = read(UInt32.self), Int(count) <= (bytes.count - offset) / 8 else { return nil }
            var set = Set<NodeID>()
            for _ in 0..<count {
                guard let raw = read(UInt64.self), raw != 0 else { return nil }
                set.insert(NodeID(raw))
            }
            return set
        }
        guard let version = bytes.first, version == 1 || version == 2, let voters = readSet(), let learners = readSet(),
              voters.isDisjoint(with: learners) else { return nil }
        var details: [NodeID: [UInt8]] = [:]
        if version == 2 {
            guard let count = read(UInt32.self), Int(count) <= (bytes.count - offset) / 12 else { return nil }
            for _ in 0..<count {
                guard let raw = read(UInt64.self), let length = read(UInt32.self), Int(length) <= bytes.count - offset,
                      voters.contains(NodeID(raw)) || learners.contains(NodeID(raw)), details[NodeID(raw)] == nil else { return nil }
                details[NodeID(raw)] = Array(bytes[offset..<offset + Int(length)])
                offset += Int(length)
            }
        }
        guard offset == bytes.count else { return nil }
        self.voters = voters
        self.learners = learners
        self.details = details
    }

    public var description: String {
        "voters=\(voters.sorted().map(\.description).joined(separator: ",")) learners=\(learners.sorted().map(\.description).joined(separator: ","))"
    }
}

/// One membership change. Skiff changes membership one server at a time (see the RaftCore article).
public enum ConfigurationChange: Hashable, Sendable {
    /// Adds a voter, or promotes a learner to voter.
    case addVoter(NodeID)
    case addLearner(NodeID)
    case remove(NodeID)
}

/// What a snapshot stands for in Raft's eyes: the log up to `index` (of term `term`) and the configuration
/// in force there. The state machine's bytes travel beside it; the core never sees them.
public struct RaftSnapshot: Hashable, Sendable {
    public var index: LogIndex
    public var term: Term
    public var configuration: ClusterConfiguration

    public init(index: LogIndex, term: Term, configuration: ClusterConfiguration) {
        self.index = index
        self.term = term
        self.configuration = configuration
    }
}
