/// The cluster an external store belongs to: recorded once, by the first node that uses the store, and
/// checked by every node as it starts, before it writes there.
///
/// Two clusters must never share a store: their leaders would fence each other off at every write, and a
/// follower whose log happened to match the other cluster's at some index and term would adopt that
/// cluster's entries as its own dead leader's tail. The record is text, for an operator to read:
/// `skiff-external-store 1`, `cluster NAME` and `uuid UUID`, one a line.
public struct ExternalStoreOwner: Equatable, Sendable, CustomStringConvertible {
    public let cluster: String
    /// The cluster's UUID in `8-4-4-4-12` lowercase hex: what tells two clusters of the same name apart.
    public let uuid: String

    /// Nil unless `cluster` is one word of printable ASCII and `uuid` is `8-4-4-4-12` hex (any case).
    public init?(cluster: String, uuid: String) {
        let groups = uuid.split(separator: "-", omittingEmptySubsequences: false).map(\.count)
        guard !cluster.isEmpty, cluster.utf8.allSatisfy({ $0 > 32 && $0 < 127 }), groups == [8, 4, 4, 4, 12],
              uuid.allSatisfy({ $0 == "-" || $0.isHexDigit }) else { return nil }
        self.cluster = cluster
        self.uuid = uuid.lowercased()
    }

    public var description: String { "\(cluster) (\(uuid))" }

    static let header = "skiff-external-store 1"

    public var encoded: [UInt8] { Array("\(Self.header)\ncluster \(cluster)\nuuid \(uuid)\n".utf8) }

    public init(decoding bytes: [UInt8]) throws(ExternalLogError) {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 4, lines[0] == Self.header, lines[1].hasPrefix("cluster "), lines[2].hasPrefix("uuid "), lines[3].isEmpty,
              let owner = ExternalStoreOwner(cluster: String(lines[1].dropFirst("cluster ".count)), uuid: String(lines[2].dropFirst("uuid ".count)))
        else {
            throw .unavailable("its owner record is malformed, or of a newer version: \(String(decoding: bytes.prefix(200), as: UTF8.self).debugDescription)")
        }
        self = owner
    }

    /// The owner recorded in `store`, or nil if none is yet (a store no node has used).
    public static func recorded(in store: any ExternalStore) async throws(ExternalLogError) -> ExternalStoreOwner? {
        try await store.recordedOwner().map { bytes throws(ExternalLogError) in try ExternalStoreOwner(decoding: bytes) }
    }

    /// Records this owner in `store` if it has none, and throws `.ownedByAnotherCluster` if another cluster's
    /// is recorded there.
    public func claim(_ store: any ExternalStore) async throws(ExternalLogError) {
        let owner = try ExternalStoreOwner(decoding: try await store.claimOwner(encoded))
        guard owner.uuid == uuid else { throw .ownedByAnotherCluster(store: store.description, owner: owner.description, claimant: description) }
    }
}
