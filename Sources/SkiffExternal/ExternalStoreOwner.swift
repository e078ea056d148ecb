/// The cluster an external store belongs to, and the store's own id: recorded once, by the first node that
/// uses the store, and checked by every node as it starts, before it writes there.
///
/// Two clusters must never share a store: their leaders would fence each other off at every write, and a
/// follower whose log happened to match the other cluster's at some index and term would adopt that
/// cluster's entries as its own dead leader's tail. Nor may one cluster's nodes use two stores (an unmounted
/// share, a mistyped path): each store would fence only its own writers, and in witness mode each would
/// grant its own vote. The store's id, drawn when it is first claimed, is what a node remembers of the store
/// it used (see the server's `ExternalStoreMarker`). The record is text, for an operator to read:
/// `skiff-external-store 1`, `cluster NAME`, `uuid UUID` and `store ID`, one a line.
public struct ExternalStoreOwner: Equatable, Sendable, CustomStringConvertible {
    public let cluster: String
    /// The cluster's UUID in `8-4-4-4-12` lowercase hex: what tells two clusters of the same name apart.
    public let uuid: String
    /// The store's id, in the same form: what tells this store from another that the same cluster might be
    /// pointed at by mistake.
    public let store: String

    /// Nil unless `cluster` is one word of printable ASCII and `uuid` and `store` are `8-4-4-4-12` hex (any case).
    public init?(cluster: String, uuid: String, store: String) {
        guard !cluster.isEmpty, cluster.utf8.allSatisfy({ $0 > 32 && $0 < 127 }), Self.isUUID(uuid), Self.isUUID(store) else { return nil }
        self.cluster = cluster
        self.uuid = uuid.lowercased()
        self.store = store.lowercased()
    }

    /// A claimant for a store not used yet: the cluster's name and UUID, and a store id drawn at random.
    public init?(cluster: String, uuid: String) {
        var random = SystemRandomNumberGenerator()
        let digits = (0..<32).map { _ in String(random.next(upperBound: UInt8(16)), radix: 16) }.joined()
        var store = ""
        for (position, digit) in digits.enumerated() {
            if [8, 12, 16, 20].contains(position) { store += "-" }
            store.append(digit)
        }
        self.init(cluster: cluster, uuid: uuid, store: store)
    }

    static func isUUID(_ text: String) -> Bool {
        text.split(separator: "-", omittingEmptySubsequences: false).map(\.count) == [8, 4, 4, 4, 12]
            && text.allSatisfy { $0 == "-" || $0.isHexDigit }
    }

    /// `NAME (UUID)`: the cluster, as errors name it.
    public var description: String { "\(cluster) (\(uuid))" }

    static let header = "skiff-external-store 1"

    public var encoded: [UInt8] { Array("\(Self.header)\ncluster \(cluster)\nuuid \(uuid)\nstore \(store)\n".utf8) }

    public init(decoding bytes: [UInt8]) throws(ExternalLogError) {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        func field(_ line: Int, _ key: String) -> String? {
            lines.count == 5 && lines[line].hasPrefix(key + " ") ? String(lines[line].dropFirst(key.count + 1)) : nil
        }
        guard lines.count == 5, lines[0] == Self.header, lines[4].isEmpty,
              let cluster = field(1, "cluster"), let uuid = field(2, "uuid"), let store = field(3, "store"),
              let owner = ExternalStoreOwner(cluster: cluster, uuid: uuid, store: store)
        else {
            throw .malformedOwner("its owner record is malformed, or of a newer version: \(String(decoding: bytes.prefix(200), as: UTF8.self).debugDescription)")
        }
        self = owner
    }

    /// The owner recorded in `store`, or nil if none is yet (a store no node has used).
    public static func recorded(in store: any ExternalStore) async throws(ExternalLogError) -> ExternalStoreOwner? {
        try await store.recordedOwner().map { bytes throws(ExternalLogError) in try ExternalStoreOwner(decoding: bytes) }
    }

    /// Records this owner in `store` if it has none, and returns the owner recorded there: this one, or the
    /// same cluster's as an earlier claim recorded it (with that claim's store id). Throws
    /// `.ownedByAnotherCluster` if another cluster's is recorded.
    @discardableResult
    public func claim(_ store: any ExternalStore) async throws(ExternalLogError) -> ExternalStoreOwner {
        let owner = try ExternalStoreOwner(decoding: try await store.claimOwner(encoded))
        guard owner.uuid == uuid else { throw .ownedByAnotherCluster(store: store.description, owner: owner.description, claimant: description) }
        return owner
    }
}
