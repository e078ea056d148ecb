import Foundation
import SkiffExternal

/// The external store a node has used, remembered in its data directory (`external-store`): the store's id
/// (`ExternalStoreOwner.store`) and where the node found it.
///
/// A node that remembers a store uses no other: at start it waits while the store is missing or holds no
/// owner record (the empty directory of a share not mounted yet), and refuses one with another id. Writing
/// to another store would fence nobody, and in witness mode a second store would grant a second vote in a
/// term. An operator who replaces a lost store on purpose removes this file on every node.
public struct ExternalStoreMarker: Equatable, Sendable {
    /// The store's id, as its owner record gives it.
    public let store: String
    /// The store as `--external-log` named it when the node last used it, for messages only.
    public let location: String

    public static func path(in directory: String) -> String { directory + "/external-store" }

    /// The store remembered in `directory`, or nil if the node has used none (or none since the file was removed).
    public static func load(directory: String) throws(ConfigurationError) -> ExternalStoreMarker? {
        let path = path(in: directory)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let lines = ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 4, lines[0] == "skiff-external-store-used 1", lines[1].hasPrefix("store "), lines[2].hasPrefix("location "),
              lines[3].isEmpty else {
            throw ConfigurationError("\(path) is damaged: it should name the external store this node used. Remove it only if this node's store is the one --external-log names")
        }
        return ExternalStoreMarker(store: String(lines[1].dropFirst("store ".count)), location: String(lines[2].dropFirst("location ".count)))
    }

    /// Records durably, as the cluster file is recorded, that the node in `directory` uses the store
    /// whose id is `storeID`, found at `store`.
    static func remember(_ storeID: String, of store: any ExternalStore, in directory: String) throws {
        try DurableFile.write("skiff-external-store-used 1\nstore \(storeID)\nlocation \(store)\n", to: path(in: directory), in: directory)
    }
}
