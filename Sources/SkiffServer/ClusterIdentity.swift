import Foundation
import SkiffKV
import SkiffRaft

/// The cluster a data directory belongs to, persisted in `DIR/cluster` the first time a node runs there and
/// never changed after: the cluster tag (the operator's name and a UUID made when the cluster was formed),
/// the configuration the node's log starts from, and, for a node that joined, the members it knew then.
///
/// Guarantees: a node runs in one cluster for the life of its data directory; nodes whose tags differ
/// never exchange a message (the tag's first 8 bytes go in every peer connection's hello). A static cluster
/// formed again with the same name and members gets the same tag: a new one needs a new name.
public struct ClusterIdentity: Equatable, Sendable {
    public var name: String
    /// 16 bytes. A static cluster's is derived from its name and its initial members (every node computes the
    /// same one without talking, as etcd derives its cluster id); a cluster a node joins hands it over.
    public var uuid: [UInt8]
    /// The configuration before the first configuration entry of the log: what the Raft core starts from.
    public var base: ClusterConfiguration
    /// For a node that joined: the configuration when it joined, whose members it dials until its log
    /// holds a configuration that names it. Empty for a node of a static cluster.
    public var seed: ClusterConfiguration
    /// For a node that joined: its Raft id, drawn at random for this data directory, so that a node that
    /// lost its disk and joins again is a new voter that cannot reuse an old vote. Nil for a node of a
    /// static cluster, whose id is derived from its name.
    public var nodeID: NodeID?
    /// For a node that joined: a log index at or after the entry that added it. Until it has applied that
    /// far, a removal notice (which a stale leader that never saw it join may send) is not acted on.
    public var joinedAt: UInt64 = 0

    public init(name: String, uuid: [UInt8], base: ClusterConfiguration, seed: ClusterConfiguration = .empty, nodeID: NodeID? = nil) {
        precondition(uuid.count == 16, "a UUID has 16 bytes")
        self.name = name
        self.uuid = uuid
        self.base = base
        self.seed = seed
        self.nodeID = nodeID
    }

    /// A new UUID for a cluster formed by one node alone, which needs to agree with nobody.
    static func randomUUID() -> [UInt8] {
        var uuid = (0..<16).map { _ in UInt8.random(in: 0...255) }
        uuid[6] = uuid[6] & 0x0f | 0x40  // version 4: random
        uuid[8] = uuid[8] & 0x3f | 0x80
        return uuid
    }

    /// The identity of a static cluster: `members` are its voters, with their details.
    public static func derived(name: String, members: [ClusterMember]) -> ClusterIdentity {
        let description = name + "|" + members.map { "\($0.name)=\($0.peerAddress)" }.sorted().joined(separator: ",")
        var uuid: [UInt8] = []
        for salt in ["high", "low"] { withUnsafeBytes(of: KVStore.stableHash(Array((salt + description).utf8)).bigEndian) { uuid += $0 } }
        uuid[6] = uuid[6] & 0x0f | 0x80  // version 8: a UUID made by a scheme of its own (RFC 9562)
        uuid[8] = uuid[8] & 0x3f | 0x80
        var details: [NodeID: [UInt8]] = [:]
        for member in members { details[member.id] = MemberDetails(name: member.name, peerAddress: member.peerAddress).encoded() }
        return ClusterIdentity(name: name, uuid: uuid, base: ClusterConfiguration(voters: Set(details.keys), details: details))
    }

    /// What the peer transport's hello carries.
    public var clusterID: UInt64 { uuid.prefix(8).reduce(0) { $0 << 8 | UInt64($1) } }

    /// `8-4-4-4-12` lowercase hex.
    public var uuidString: String {
        let hex = uuid.map { String(format: "%02x", $0) }.joined()
        var text = ""
        for (position, character) in hex.enumerated() {
            if [8, 12, 16, 20].contains(position) { text.append("-") }
            text.append(character)
        }
        return text
    }

    public static func parseUUID(_ text: String) -> [UInt8]? {
        bytes(fromHex: text.filter { $0 != "-" }).flatMap { $0.count == 16 ? $0 : nil }
    }

    /// `name (uuid)`, as logs and errors show a cluster.
    public var tag: String { "\(name) (\(uuidString))" }

    // MARK: The file

    static func path(in directory: String) -> String { directory + "/cluster" }

    /// The identity recorded in `directory`, or nil if there is none. Throws if the file is damaged.
    public static func load(directory: String) throws(ConfigurationError) -> ClusterIdentity? {
        let path = path(in: directory)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let identity = decode(text) else {
            throw ConfigurationError("\(path) is damaged: it should name the cluster this node belongs to. Restore it from a backup, or empty the data directory and join the cluster again")
        }
        return identity
    }

    /// Writes the file durably: a temporary file, fsynced, renamed into place, then the directory fsynced.
    public func save(directory: String) throws {
        try DurableFile.write(encoded(), to: Self.path(in: directory), in: directory)
    }

    /// `key value` lines, the last one a checksum of the others.
    func encoded() -> String {
        var text = "skiff-cluster 1\nname \(name)\nuuid \(uuidString)\nbase \(Self.hex(base.encoded()))\n"
        if seed != .empty { text += "seed \(Self.hex(seed.encoded()))\n" }
        if let nodeID { text += "node \(nodeID.rawValue)\njoined \(joinedAt)\n" }
        return text + "checksum \(String(KVStore.stableHash(Array(text.utf8)), radix: 16))\n"
    }

    static func decode(_ text: String) -> ClusterIdentity? {
        guard let checksumStart = text.range(of: "checksum ", options: .backwards)?.lowerBound else { return nil }
        let body = String(text[..<checksumStart])
        let stated = text[checksumStart...].dropFirst("checksum ".count).trimmingCharacters(in: .whitespacesAndNewlines)
        guard stated == String(KVStore.stableHash(Array(body.utf8)), radix: 16) else { return nil }
        var fields: [String: String] = [:]
        for line in body.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { return nil }
            fields[String(parts[0])] = String(parts[1])
        }
        guard fields["skiff-cluster"] == "1", let name = fields["name"], let uuid = fields["uuid"].flatMap(parseUUID),
              let base = fields["base"].flatMap(bytes(fromHex:)).flatMap(ClusterConfiguration.init(decoding:)) else { return nil }
        var seed = ClusterConfiguration.empty
        if let text = fields["seed"] {
            guard let decoded = bytes(fromHex: text).flatMap(ClusterConfiguration.init(decoding:)) else { return nil }
            seed = decoded
        }
        var nodeID: NodeID?
        if let text = fields["node"] {
            guard let raw = UInt64(text), raw != 0 else { return nil }
            nodeID = NodeID(raw)
        }
        var identity = ClusterIdentity(name: name, uuid: uuid, base: base, seed: seed, nodeID: nodeID)
        if let text = fields["joined"] {
            guard let index = UInt64(text) else { return nil }
            identity.joinedAt = index
        }
        return identity
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func bytes(fromHex text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for position in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[position..<position + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}

/// What the server keeps about a member in the Raft configuration (`ClusterConfiguration.details`): its name
/// and where to reach it. `name TAB peer-address [TAB client-address]`, in UTF-8.
public struct MemberDetails: Equatable, Sendable {
    public var name: String
    public var peerAddress: HostAndPort
    /// Where clients reach it; unknown for the members of a static cluster other than the node itself.
    public var clientAddress: HostAndPort?

    public init(name: String, peerAddress: HostAndPort, clientAddress: HostAndPort? = nil) {
        self.name = name
        self.peerAddress = peerAddress
        self.clientAddress = clientAddress
    }

    public func encoded() -> [UInt8] {
        Array(([name, peerAddress.description] + (clientAddress.map { [$0.description] } ?? [])).joined(separator: "\t").utf8)
    }

    public init?(decoding bytes: [UInt8]) {
        let fields = String(decoding: bytes, as: UTF8.self).split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 2 || fields.count == 3, !fields[0].isEmpty,
              let peer = try? HostAndPort(parsing: fields[1]) else { return nil }
        name = fields[0]
        peerAddress = peer
        clientAddress = fields.count == 3 ? try? HostAndPort(parsing: fields[2]) : nil
        if fields.count == 3, clientAddress == nil { return nil }
    }
}
