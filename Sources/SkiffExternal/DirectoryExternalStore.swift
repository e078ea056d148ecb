import Dispatch
import SkiffStorage
import Synchronization
import SystemPackage

/// An `ExternalStore` in a directory that every node can reach: on one machine, or on a shared filesystem.
///
/// Layout: `log/` holds a name per slot and `checkpoint/` one per checkpoint, each its slot in 20 decimal
/// digits; `snap/` holds published snapshots, named `<index>-<term>.snap` as a node names its own;
/// `tmp/` holds files being written; `owner` names the cluster the store belongs to and the store's id,
/// written as a slot is.
/// The file named for slot (or checkpoint) `s` holds, at `offset(of: s)`, its record's length (u32,
/// little-endian) and the record. One file may be named after
/// several slots of a group (`s / slotsPerFile` alike), each record in its own region; its other bytes
/// are zeros or those records. A record is written into its region of a file in `tmp/` (an unnamed one
/// prepared ahead of time and shared by the slots of a group when possible, see `PreparedSlotFiles`),
/// synced, then `link(2)`ed to its name, which fails with EEXIST if the name is taken, and the directory is
/// fsynced. A snapshot is uploaded into `tmp/`, fsynced, and `rename(2)`d into `snap/`.
/// It relies on: exclusive create, `link` that is atomic and refuses an existing name, atomic `rename`, and
/// fsync of files and directories that makes them durable. Filesystems that lack one of these (some FUSE
/// filesystems, NFS mounted without `sync` or with a server that answers `link` twice on a retry) break
/// the fencing.
///
/// Calls block on the filesystem, so they run on a queue of their own, several at once, never on the
/// caller's thread.
public final class DirectoryExternalStore: ExternalStore {
    public let root: String
    let fileSystem: any FileSystem
    private let queue = DispatchQueue(label: "skiff.external-store", attributes: .concurrent)
    private let writerTag = String(UInt64.random(in: 0...UInt64.max), radix: 16)
    private let prepared: PreparedSlotFiles
    /// Read when a claim would make a new store, to refuse one under a mount point that is not mounted.
    private let mountTable: @Sendable () -> MountTable

    public var description: String { "dir:\(root)" }
    var logDirectory: String { root + "/log" }
    var checkpointDirectory: String { root + "/checkpoint" }
    var snapshotDirectory: String { root + "/snap" }
    var temporaryDirectory: String { root + "/tmp" }
    var ownerPath: String { root + "/owner" }

    /// Opens the store at `root`. Nothing is created here: the first claim of the store (`claimOwner`)
    /// makes its directories, so that a store that went missing (a share not mounted, a path mistyped) is
    /// reported as unavailable, never silently made anew. Nor does a claim make a store under a mount point
    /// that `mountTable` (this machine's, by default) lists as configured but not mounted.
    public init(root: String, fileSystem: any FileSystem = PosixFileSystem(), mountTable: @escaping @Sendable () -> MountTable = { MountTable.system() }) {
        self.root = root
        self.fileSystem = fileSystem
        self.mountTable = mountTable
        prepared = PreparedSlotFiles(directory: root + "/tmp", fileSystem: fileSystem, queue: queue)
    }

    /// Creates the store's directories that are missing, `root` and its parents among them. Claiming the
    /// store does this; tools and tests that write a store no cluster owns call it themselves.
    public func createLayout() throws(ExternalLogError) {
        do {
            for directory in [root, logDirectory, checkpointDirectory, snapshotDirectory, temporaryDirectory]
            where !fileSystem.isDirectory(directory) {
                do { try fileSystem.createDirectory(directory) } catch Errno.fileExists {}  // another node made it first
            }
        } catch {
            throw .unavailable("cannot create \(root): \(error)")
        }
    }

    /// The file name of a slot or checkpoint.
    public static func name(of slot: UInt64) -> String { pad20(slot) }
    /// Slots whose records may share one file: a group, the slots whose numbers divided by this are alike.
    public static let slotsPerFile: UInt64 = 64
    /// The bytes each slot of a group has in a shared file, from `offset(of:)`.
    public static let regionSize = 16 << 10
    /// Where the record of `slot` starts in the file named after it.
    public static func offset(of slot: UInt64) -> Int64 { Int64(slot % slotsPerFile) * Int64(regionSize) }

    public func createSlot(_ slot: UInt64, bytes: [UInt8]) async throws(ExternalLogError) -> Bool {
        try await run { [self] in try createOnce(in: logDirectory, slot: slot, bytes: bytes, shared: true) }
    }

    public func readSlot(_ slot: UInt64) async throws(ExternalLogError) -> [UInt8]? {
        try await run { [self] in try readIfPresent(slot, in: logDirectory) }
    }

    public func createCheckpoint(_ slot: UInt64, bytes: [UInt8]) async throws(ExternalLogError) -> Bool {
        try await run { [self] in try createOnce(in: checkpointDirectory, slot: slot, bytes: bytes, shared: false) }
    }

    public func newestCheckpointSlot() async throws(ExternalLogError) -> UInt64? {
        try await run { [self] in try slots(in: checkpointDirectory).max() }
    }

    public func readCheckpoint(_ slot: UInt64) async throws(ExternalLogError) -> [UInt8]? {
        try await run { [self] in
            try readIfPresent(slot, in: checkpointDirectory)
        }
    }

    public func trim(below slot: UInt64) async throws(ExternalLogError) {
        try await run { [self] in
            for directory in [logDirectory, checkpointDirectory] {
                for old in try slots(in: directory) where old < slot {
                    do { try fileSystem.removeFile("\(directory)/\(Self.name(of: old))") } catch Errno.noSuchFileOrDirectory {}
                }
                try fileSystem.syncDirectory(directory)
            }
        }
    }

    public func writeSnapshotChunk(_ snapshot: ExternalSnapshotID, offset: UInt64, bytes: [UInt8]) async throws(ExternalLogError) {
        try await run { [self] in
            let path = upload(snapshot)
            let file = offset == 0 ? try fileSystem.createFile(path) : try fileSystem.openFile(path, writable: true)
            defer { try? file.close() }
            try file.write(bytes, at: Int64(offset))
        }
    }

    public func publishSnapshot(_ snapshot: ExternalSnapshotID) async throws(ExternalLogError) {
        try await run { [self] in
            let file = try fileSystem.openFile(upload(snapshot), writable: true)
            defer { try? file.close() }
            try file.sync()
            try fileSystem.rename(upload(snapshot), to: "\(snapshotDirectory)/\(snapshot.fileName)")
            try fileSystem.syncDirectory(snapshotDirectory)
        }
    }

    public func abandonSnapshot(_ snapshot: ExternalSnapshotID) async {
        _ = try? await run { [self] in try fileSystem.removeFile(upload(snapshot)) }
    }

    public func snapshots() async throws(ExternalLogError) -> [ExternalSnapshotID] {
        try await run { [self] in
            try present(snapshotDirectory).compactMap(ExternalSnapshotID.init(fileName:)).sorted(by: >)
        }
    }

    public func readSnapshot(_ snapshot: ExternalSnapshotID, offset: UInt64, count: Int) async throws(ExternalLogError) -> [UInt8] {
        try await run { [self] in
            let file = try fileSystem.openFile("\(snapshotDirectory)/\(snapshot.fileName)", writable: false)
            defer { try? file.close() }
            let size = UInt64(try file.size())
            guard offset < size else { return [] }
            return try file.read(count: Int(min(UInt64(count), size - offset)), at: Int64(offset))
        }
    }

    public func removeSnapshot(_ snapshot: ExternalSnapshotID) async throws(ExternalLogError) {
        try await run { [self] in
            do { try fileSystem.removeFile("\(snapshotDirectory)/\(snapshot.fileName)") } catch Errno.noSuchFileOrDirectory {}
            try fileSystem.syncDirectory(snapshotDirectory)
        }
    }

    /// Removes the files in `tmp/` that no write touched for `seconds`, other than this instance's own
    /// (named with its tag): an upload or a record whose writer died before it removed the file. (Prepared
    /// files have no name there.) Ages are measured against a probe file's modification time, so that both
    /// come from the clock that stamps the store's files: an NFS client's own clock may be minutes off.
    public func removeAbandonedUploads(untouchedFor seconds: Double) async throws(ExternalLogError) -> AbandonedUploads {
        try await run { [self] in
            let others = try present(temporaryDirectory).filter { !$0.hasSuffix(".\(writerTag)") }
            guard !others.isEmpty else { return AbandonedUploads() }  // the usual case: no probe to write
            let probe = "\(temporaryDirectory)/clock.\(UInt64.random(in: 0...UInt64.max)).\(writerTag)"
            let file = try fileSystem.createFile(probe)
            defer { try? fileSystem.removeFile(probe) }
            do {
                defer { try? file.close() }
                try file.write([0], at: 0)
            }
            let now = try fileSystem.modificationTime(probe)
            var report = AbandonedUploads()
            for name in others {
                let path = "\(temporaryDirectory)/\(name)"
                do {
                    guard try now - fileSystem.modificationTime(path) >= seconds else { continue }
                    try fileSystem.removeFile(path)
                    report.removed.append(name)
                } catch Errno.noSuchFileOrDirectory {
                    // Its writer finished with it meanwhile.
                } catch {
                    report.failures.append("\(name): \(error)")
                }
            }
            if !report.removed.isEmpty {
                do { try fileSystem.syncDirectory(temporaryDirectory) } catch { report.failures.append("syncing \(temporaryDirectory): \(error)") }
            }
            return report
        }
    }

    public func claimOwner(_ owner: [UInt8]) async throws(ExternalLogError) -> [UInt8] {
        try await run { [self] in
            if fileSystem.isDirectory(root), let recorded = try readOwner() { return recorded }
            if let mountPoint = mountTable().unmountedMountPoint(containing: MountTable.resolved(root)) {
                throw ExternalLogError.unavailable("\(root) is under \(mountPoint), a share that /etc/fstab mounts but that is not mounted now: "
                                                   + "mount it first (a store made on the empty mount point would be a second store of this cluster)")
            }
            try createLayout()
            if try createFile(ownerPath, holding: owner, at: 0, in: root) { return owner }
            guard let recorded = try readOwner() else { throw ExternalLogError.unavailable("\(ownerPath) appeared, then vanished, while this node claimed the store") }
            return recorded
        }
    }

    public func recordedOwner() async throws(ExternalLogError) -> [UInt8]? {
        try await run { [self] in try readOwner() }
    }

    /// The owner record, at most 4 KiB; nil if there is none.
    private func readOwner() throws -> [UInt8]? {
        let file: any StorageFile
        do { file = try fileSystem.openFile(ownerPath, writable: false) } catch Errno.noSuchFileOrDirectory {
            guard fileSystem.isDirectory(root) else { throw ExternalLogError.unavailable("\(root) is missing") }  // a lost mount is not an unowned store
            return nil
        }
        defer { try? file.close() }
        let size = try file.size()
        guard size <= 4096 else { throw ExternalLogError.malformedOwner("\(ownerPath) holds \(size) bytes, more than an owner record has") }
        return try file.read(count: Int(size), at: 0)
    }

    private func upload(_ snapshot: ExternalSnapshotID) -> String { "\(temporaryDirectory)/\(snapshot.fileName).\(writerTag)" }

    /// Writes `bytes`, framed, into the slot's region of a synced file in `tmp/` and links it to
    /// `directory/slot`; false if that name exists. Only slots in `log/` share files: a checkpoint has the
    /// number of a slot, so it must not take that slot's region of a file that slot may be named after.
    private func createOnce(in directory: String, slot: UInt64, bytes: [UInt8], shared: Bool) throws -> Bool {
        let framed = Self.frame(bytes)
        let destination = "\(directory)/\(Self.name(of: slot))"
        if shared, framed.count <= Self.regionSize, let named = try prepared.write(framed, slot: slot, naming: destination) {
            if named { try fileSystem.syncDirectory(directory) }
            return named
        }
        return try createFile(destination, holding: framed, at: Self.offset(of: slot), in: directory)
    }

    /// Writes `bytes` at `offset` of a new synced file in `tmp/` and links it to `directory/name`; false if
    /// that name exists.
    private func createFile(_ destination: String, holding bytes: [UInt8], at offset: Int64, in directory: String) throws -> Bool {
        let temporary = "\(temporaryDirectory)/\(destination.split(separator: "/").last!).\(UInt64.random(in: 0...UInt64.max)).\(writerTag)"
        let file = try fileSystem.createFile(temporary)
        defer {
            try? file.close()
            try? fileSystem.removeFile(temporary)
        }
        try file.write(bytes, at: offset)
        try file.sync()
        do { try fileSystem.link(temporary, to: destination) } catch Errno.fileExists { return false }
        try fileSystem.syncDirectory(directory)
        return true
    }

    /// A record with its length before it: a prepared file has zeros after it.
    static func frame(_ record: [UInt8]) -> [UInt8] {
        var writer = ByteWriter(capacity: record.count + 4)
        writer.append(UInt32(record.count))
        writer.append(bytes: record)
        return writer.bytes
    }

    /// The record of `slot` (or of the checkpoint at `slot`) in the file at `path`, as `skiff-wal` reads it
    /// too. Throws `ExternalLogError.corruptRecord` if the file does not hold one there, and the file
    /// system's error if it cannot be read.
    public static func record(atPath path: String, slot: UInt64, fileSystem: any FileSystem = PosixFileSystem()) throws -> [UInt8] {
        let file = try fileSystem.openFile(path, writable: false)
        defer { try? file.close() }
        return try record(in: file, slot: slot)
    }

    private static func record(in file: any StorageFile, slot: UInt64) throws -> [UInt8] {
        let offset = offset(of: slot)
        let size = try file.size()
        guard size - offset >= 4 else {
            throw ExternalLogError.corruptRecord(slot: slot, reason: "the file ends before the record's place at byte \(offset)")
        }
        let header = try file.read(count: 4, at: offset)
        let length = Int64(UInt32(littleEndian: header.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
        guard length <= size - offset - 4 else {
            throw ExternalLogError.corruptRecord(slot: slot, reason: "the file says its record has \(length) bytes, but holds \(size - offset - 4)")
        }
        let record = try file.read(count: Int(length), at: offset + 4)
        guard record.count == length else { throw ExternalLogError.corruptRecord(slot: slot, reason: "the file shrank while it was read") }
        return record
    }

    /// The record of `slot` in `directory`, or nil if there is no file named after it.
    private func readIfPresent(_ slot: UInt64, in directory: String) throws -> [UInt8]? {
        let file: any StorageFile
        do {
            file = try fileSystem.openFile("\(directory)/\(Self.name(of: slot))", writable: false)
        } catch Errno.noSuchFileOrDirectory {
            // Absent, unless the whole directory is gone (a lost mount, say): that must not read as empty.
            _ = try present(directory)
            return nil
        }
        defer { try? file.close() }
        return try Self.record(in: file, slot: slot)
    }

    private func slots(in directory: String) throws -> [UInt64] {
        try present(directory).compactMap { name in name.count == 20 ? UInt64(name) : nil }
    }

    /// The names in one of the store's directories, which must exist.
    private func present(_ directory: String) throws -> [String] {
        guard fileSystem.isDirectory(directory) else { throw ExternalLogError.unavailable("\(directory) is missing") }
        return try fileSystem.contentsOfDirectory(directory)
    }

    /// Runs `body` on the store's queue. A cancelled caller stops waiting for it at once (the call fails as
    /// unavailable): a filesystem call can hang (a hard NFS mount whose server is gone), and a node that is
    /// told to stop must not wait for it. The abandoned call finishes, or not, on its own.
    private func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws(ExternalLogError) -> T {
        let waiter = Mutex<(continuation: CheckedContinuation<Result<T, any Error>, Never>?, cancelled: Bool)>((nil, false))
        let result: Result<T, any Error> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let cancelled = waiter.withLock { waiter in
                    if !waiter.cancelled { waiter.continuation = continuation }
                    return waiter.cancelled
                }
                if cancelled { return continuation.resume(returning: .failure(CancellationError())) }
                queue.async {
                    let result = Result { try body() }
                    waiter.withLock { $0.continuation.take() }?.resume(returning: result)
                }
            }
        } onCancel: {
            waiter.withLock { waiter in
                waiter.cancelled = true
                return waiter.continuation.take()
            }?.resume(returning: .failure(CancellationError()))
        }
        do { return try result.get() } catch let error as ExternalLogError { throw error } catch is CancellationError {
            throw .unavailable("\(root): the call was abandoned, since the node is stopping")
        } catch {
            throw .unavailable("\(root): \(error)")
        }
    }
}
