import SkiffRaft

/// The snapshot files of one node: named by index and term, newest kept, older ones pruned.
///
/// Guarantees: a file under a snapshot name was completely written and synced before it got that name;
/// `prune` never removes the newest `retain` files. Leaves out: verifying contents (see `SnapshotReader`).
public struct SnapshotStore: Sendable {
    public let directory: String
    public let retain: Int
    let fileSystem: any FileSystem

    public init(directory: String, retain: Int = 2, fileSystem: any FileSystem = PosixFileSystem()) {
        precondition(retain >= 1, "keep at least one snapshot")
        self.directory = directory
        self.retain = retain
        self.fileSystem = fileSystem
    }

    /// The snapshot files present, newest (highest index) first.
    public func list() throws(WALError) -> [(index: LogIndex, term: Term, path: String)] {
        guard fileSystem.isDirectory(directory) else { return [] }
        let names = try withWALErrors(file: directory) { try fileSystem.contentsOfDirectory(directory) }
        return names.compactMap { name -> (LogIndex, Term, String)? in
            guard name.hasSuffix(".snap") else { return nil }
            let parts = name.dropLast(5).split(separator: "-")
            guard parts.count == 2, parts[0].count == 20, parts[1].count == 20,
                  let index = UInt64(parts[0]), let term = UInt64(parts[1]) else { return nil }
            return (LogIndex(index), Term(term), directory + "/" + name)
        }.sorted { ($0.0, $0.1) > ($1.0, $1.1) }
    }

    /// Starts writing a new snapshot.
    public func writer(for metadata: SnapshotMetadata, chunkBytes: Int = 1 << 20) throws(WALError) -> SnapshotWriter {
        try SnapshotWriter(directory: directory, metadata: metadata, chunkBytes: chunkBytes, fileSystem: fileSystem)
    }

    /// Removes all but the newest `retain` snapshots, and leftover temporary files.
    public func prune() throws(WALError) {
        for old in try list().dropFirst(retain) {
            try withWALErrors(file: old.path) { try fileSystem.removeFile(old.path) }
        }
        let names = (try? fileSystem.contentsOfDirectory(directory)) ?? []
        for name in names where name.hasSuffix(".snap.tmp") {  // one writer per node: nobody else is writing
            try withWALErrors(file: directory + "/" + name) { try fileSystem.removeFile(directory + "/" + name) }
        }
        try withWALErrors(file: directory) { try fileSystem.syncDirectory(directory) }
    }
}
