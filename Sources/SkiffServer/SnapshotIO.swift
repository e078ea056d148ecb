import SkiffKV
import SkiffRaft
import SkiffStorage

/// Moves the key space between memory and snapshot files.
enum SnapshotIO {
    /// Reads and verifies the key space in the snapshot file at `path`.
    static func readStore(path: String) throws -> KVStore {
        let reader = try SnapshotReader(path: path)
        defer { reader.close() }
        var decoder = KVSnapshotDecoder()
        while let chunk = try reader.nextChunk() { try decoder.feed(chunk) }
        return try decoder.finish()
    }

    /// Writes `store` as the snapshot at `index`, then lets storage prune old snapshots and compact the WAL.
    static func save(_ store: KVStore, index: LogIndex, term: Term, configuration: ClusterConfiguration, to storage: NodeStorage) async throws {
        let metadata = SnapshotMetadata(index: index, term: term, configuration: configuration.encoded())
        try await storage.saveSnapshot(metadata) { writer throws(WALError) in
            try KVSnapshot.write(store) { piece throws(WALError) in try writer.write(piece) }
        }
    }
}

/// A value handed to another thread that no one else touches meanwhile (a key-space copy being written).
struct Handoff<Value>: @unchecked Sendable {
    let value: Value
}
