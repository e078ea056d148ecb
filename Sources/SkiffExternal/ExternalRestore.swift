import Logging
import SkiffRaft
import SkiffStorage

/// Rebuilds a node's data directory from the external store alone: the newest snapshot there that
/// verifies, then the external log after it.
///
/// Guarantees: every entry the cluster committed is in the result (the external log holds every committed
/// entry after its base, and a snapshot reaching the base is kept before anything is trimmed), as committed
/// entries up to the highest commit index a leader recorded, and the rest as uncommitted entries that a
/// leader will commit or replace. The node starts in the highest term the store has seen, with no vote, so
/// that a leader it elects can write to the store. Refuses a directory that already holds a node's data.
public enum ExternalRestore {
    public struct Report: Sendable, CustomStringConvertible {
        /// The cluster the store belongs to, if it records one.
        public var owner: ExternalStoreOwner?
        public var snapshot: ExternalSnapshotID?
        public var entries: Int
        public var lastIndex: LogIndex
        public var committedIndex: LogIndex
        public var term: Term

        public var description: String {
            "cluster \(owner.map { "\($0)" } ?? "not recorded in the store"), snapshot \(snapshot.map { "\($0)" } ?? "none"), "
                + "\(entries) log entries through \(lastIndex) (committed through \(committedIndex)), term \(term)"
        }
    }

    /// Whether `directory` holds a node's WAL or snapshots.
    public static func holdsNodeData(_ directory: String, fileSystem: any FileSystem = PosixFileSystem()) -> Bool {
        ["wal", "snap"].contains { !((try? fileSystem.contentsOfDirectory(directory + "/" + $0)) ?? []).isEmpty }
    }

    @discardableResult
    public static func rebuild(directory: String, from store: any ExternalStore, options: StorageOptions = StorageOptions(),
                               fileSystem: any FileSystem = PosixFileSystem(), logger: Logger) async throws -> Report {
        guard !holdsNodeData(directory, fileSystem: fileSystem) else {
            throw RestoreError("\(directory) already holds a node's data; restoring from the external store needs an empty data directory")
        }
        let owner = try await ExternalStoreOwner.recorded(in: store)
        let view = try await ExternalLog(store: store, keepsEntries: true).catchUp()
        let snapshot = try await fetchSnapshot(reaching: view.baseIndex, from: store, into: directory + "/snap", fileSystem: fileSystem, logger: logger)
        let start = snapshot.map { LogIndex($0.index) } ?? .zero
        if let snapshot, let held = view.term(at: start), held.rawValue != snapshot.term {
            throw RestoreError("snapshot \(snapshot) disagrees with the external log, which has term \(held) at its index")
        }
        let entries = view.entries.filter { $0.index > start }
        let committed = max(start, min(view.committedIndex, view.lastIndex))
        let term = max(view.floor, view.lastTerm, Term(snapshot?.term ?? 0))
        let hardState = HardState(term: term, vote: .none, commit: committed)
        let (storage, _) = try await NodeStorage.open(directory: directory, options: options, fileSystem: fileSystem, logger: logger)
        do {
            if let snapshot { try await storage.wal.restart(after: start, term: Term(snapshot.term), hardState: hardState) }
            try await storage.wal.append(entries, hardState: hardState)
        } catch {
            await storage.close()
            throw error
        }
        await storage.close()
        let report = Report(owner: owner, snapshot: snapshot, entries: entries.count, lastIndex: max(start, view.lastIndex), committedIndex: committed, term: term)
        logger.info("rebuilt the data directory from the external store", metadata: ["directory": "\(directory)", "result": "\(report)"])
        return report
    }

    /// Downloads the newest snapshot that reaches `base` and verifies into the snapshot directory; nil if the
    /// log starts at index 1 and the store has none.
    private static func fetchSnapshot(reaching base: LogIndex, from store: any ExternalStore, into directory: String,
                                      fileSystem: any FileSystem, logger: Logger) async throws -> ExternalSnapshotID? {
        var failures: [String] = []
        try fileSystem.createDirectory(directory)
        for snapshot in try await store.snapshots() where snapshot.index >= base.rawValue {
            let temporary = "\(directory)/\(snapshot.fileName).restore"
            do {
                try await ExternalSnapshotTransfer.download(snapshot, from: store, to: temporary, fileSystem: fileSystem)
                let reader = try SnapshotReader(path: temporary, fileSystem: fileSystem)
                defer { reader.close() }
                _ = try reader.verify()
                guard reader.metadata.index.rawValue == snapshot.index, reader.metadata.term.rawValue == snapshot.term else {
                    throw RestoreError("snapshot \(snapshot) holds \(reader.metadata.index)/\(reader.metadata.term)")
                }
            } catch {
                try? fileSystem.removeFile(temporary)
                logger.error("an external snapshot failed to download or verify", metadata: ["snapshot": "\(snapshot)", "error": "\(error)"])
                failures.append("\(snapshot): \(error)")
                continue
            }
            try fileSystem.rename(temporary, to: "\(directory)/\(snapshot.fileName)")
            try fileSystem.syncDirectory(directory)
            return snapshot
        }
        guard base == .zero else {
            throw RestoreError("the external log starts after index \(base), and no snapshot in the store reaches it"
                                                + (failures.isEmpty ? "" : " and verifies (\(failures.joined(separator: "; ")))"))
        }
        return nil
    }
}

/// Why a data directory cannot be rebuilt from the external store.
public struct RestoreError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
