import Logging
import SkiffRaft

/// Settings of a node's storage as a whole.
public struct StorageOptions: Sendable {
    public var wal = WALOptions()
    /// How many snapshots to keep. The WAL is compacted only up to the oldest one kept, so that a corrupt
    /// newest snapshot can always fall back to an older one.
    public var snapshotsRetained = 2
    public init() {}
}

/// What `NodeStorage.open` chose and why.
public struct StorageRecovery: Sendable {
    public var wal: WALRecoveryReport
    /// The snapshot the state machine must load first, if any; the log continues after its index.
    public var snapshot: SnapshotMetadata?
    public var snapshotPath: String?
    /// Snapshots that failed verification, with the reason, newest first.
    public var rejectedSnapshots: [String]
}

/// A node's durable state: the WAL (`DIR/wal`) and snapshots (`DIR/snap`), opened together so that the
/// snapshot chosen and the log always join up.
///
/// Guarantees: `open` picks the newest snapshot that verifies and that the WAL continues without a gap;
/// if no such combination exists it refuses to start, naming what is missing, rather than lose entries.
public final class NodeStorage: Sendable {
    public let wal: WAL
    public let snapshots: SnapshotStore
    public let directory: String

    private init(directory: String, wal: WAL, snapshots: SnapshotStore) {
        self.directory = directory
        self.wal = wal
        self.snapshots = snapshots
    }

    public static func open(
        directory: String, options: StorageOptions = StorageOptions(),
        fileSystem: any FileSystem = PosixFileSystem(), logger: Logger = Logger(label: "skiff.storage")
    ) async throws(WALError) -> (NodeStorage, StorageRecovery) {
        try withWALErrors(file: directory) { try fileSystem.createDirectory(directory) }
        let snapshots = SnapshotStore(directory: directory + "/snap", retain: options.snapshotsRetained, fileSystem: fileSystem)
        let candidates = try snapshots.list()
        let (wal, report) = try WAL.open(directory: directory + "/wal", options: options.wal, fileSystem: fileSystem, logger: logger)
        let logFirst = wal.firstIndex.rawValue
        var rejected: [String] = []
        for candidate in candidates {
            let metadata: SnapshotMetadata
            do throws(WALError) {
                let reader = try SnapshotReader(path: candidate.path, fileSystem: fileSystem)
                defer { reader.close() }
                try reader.verify()
                metadata = reader.metadata
            } catch {
                logger.error("snapshot failed verification", metadata: ["path": "\(candidate.path)", "error": "\(error)"])
                rejected.append("\(error)")
                continue
            }
            guard logFirst <= metadata.index.rawValue + 1 else {
                await wal.close()
                let reasons = rejected.isEmpty ? "" : " (newer snapshots failed: \(rejected.joined(separator: "; ")))"
                throw WALError(.badSnapshot, file: candidate.path,
                               "snapshot ends at index \(metadata.index) but the WAL starts at \(logFirst): entries \(metadata.index.rawValue + 1)...\(logFirst - 1) exist nowhere on this node\(reasons); restore this node from a peer or a backup")
            }
            logger.info("using snapshot", metadata: ["path": "\(candidate.path)", "index": "\(metadata.index)"])
            let termThere = wal.lastIndex >= metadata.index ? wal.term(at: metadata.index) : nil
            if wal.lastIndex < metadata.index || (termThere != nil && termThere != metadata.term) {
                // The log does not continue the snapshot: it ends before it, or holds another history there.
                // A node killed while installing a snapshot (saved, the log not yet restarted) is left so, as
                // is one that lost unsynced writes with --fsync never. The snapshot holds committed entries
                // only; the log starts again after it, as installing it would have made it.
                logger.warning("the WAL does not continue the snapshot; it starts again after the snapshot",
                               metadata: ["wal-last": "\(wal.lastIndex)", "term-there": "\(termThere.map { "\($0)" } ?? "-")",
                                          "snapshot": "\(metadata.index)/\(metadata.term)"])
                var hardState = wal.hardState
                if hardState.term < metadata.term { hardState = HardState(term: metadata.term, vote: .none, commit: hardState.commit) }
                hardState.commit = max(hardState.commit, metadata.index)
                try await wal.restart(after: metadata.index, term: metadata.term, hardState: hardState)
                if rejected.isEmpty, candidates.count > 1 {
                    logger.notice("older snapshots no longer join up with the log; only the newest can be used from now on")
                }
            }
            return (NodeStorage(directory: directory, wal: wal, snapshots: snapshots),
                    StorageRecovery(wal: report, snapshot: metadata, snapshotPath: candidate.path, rejectedSnapshots: rejected))
        }
        guard logFirst == 1 else {
            await wal.close()
            let reasons = rejected.isEmpty ? "there is no snapshot" : "no snapshot verifies: \(rejected.joined(separator: "; "))"
            throw WALError(.badSnapshot, file: directory, "the WAL starts at index \(logFirst) and \(reasons); entries 1...\(logFirst - 1) exist nowhere on this node")
        }
        return (NodeStorage(directory: directory, wal: wal, snapshots: snapshots),
                StorageRecovery(wal: report, snapshot: nil, snapshotPath: nil, rejectedSnapshots: rejected))
    }

    /// Writes a snapshot through `body`, then prunes old snapshots and compacts the WAL up to the oldest
    /// snapshot still kept.
    public func saveSnapshot(_ metadata: SnapshotMetadata, body: (SnapshotWriter) throws(WALError) -> Void) async throws(WALError) {
        let writer = try snapshots.writer(for: metadata)
        do {
            try body(writer)
            try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
        try snapshots.prune()
        if let oldest = try snapshots.list().last {
            try await wal.compact(through: oldest.index)
        }
    }

    public func close() async { await wal.close() }
}

