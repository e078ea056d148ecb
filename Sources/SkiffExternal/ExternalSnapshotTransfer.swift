import SkiffStorage

/// Copies snapshot files between a node's disk and the external store, in chunks of bounded size.
///
/// The bytes are a node's snapshot file as they are: the format verifies itself, so a download is checked
/// by the same reader that checks a node's own snapshots.
public enum ExternalSnapshotTransfer {
    static let chunkBytes = 1 << 20

    /// Uploads the file at `path` as `snapshot` and publishes it. On failure nothing is published.
    public static func upload(file path: String, as snapshot: ExternalSnapshotID, to store: any ExternalStore,
                              fileSystem: any FileSystem = PosixFileSystem()) async throws(ExternalLogError) {
        do {
            let file = try fileSystem.openFile(path, writable: false)
            defer { try? file.close() }
            let size = UInt64(try file.size())
            var offset: UInt64 = 0
            repeat {
                let chunk = try file.read(count: Int(min(UInt64(chunkBytes), size - offset)), at: Int64(offset))
                try await store.writeSnapshotChunk(snapshot, offset: offset, bytes: chunk)
                offset += UInt64(chunk.count)
            } while offset < size
            try await store.publishSnapshot(snapshot)
        } catch {
            await store.abandonSnapshot(snapshot)
            throw error as? ExternalLogError ?? .unavailable("cannot upload \(path): \(error)")
        }
    }

    /// Downloads `snapshot` into a new file at `path`, synced. Returns the number of bytes.
    @discardableResult
    public static func download(_ snapshot: ExternalSnapshotID, from store: any ExternalStore, to path: String,
                                fileSystem: any FileSystem = PosixFileSystem()) async throws(ExternalLogError) -> UInt64 {
        do {
            let file = try fileSystem.createFile(path)
            defer { try? file.close() }
            var offset: UInt64 = 0
            while true {
                let chunk = try await store.readSnapshot(snapshot, offset: offset, count: chunkBytes)
                if chunk.isEmpty { break }
                try file.write(chunk, at: Int64(offset))
                offset += UInt64(chunk.count)
            }
            try file.sync()
            return offset
        } catch {
            throw error as? ExternalLogError ?? .unavailable("cannot download snapshot \(snapshot) to \(path): \(error)")
        }
    }
}
