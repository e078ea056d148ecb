import Dispatch
import SkiffStorage
import SystemPackage

/// An `ExternalStore` in a directory that every node can reach: on one machine, or on a shared filesystem.
///
/// Layout: `log/` holds one file per slot and `checkpoint/` one per checkpoint, each named by its slot in 20
/// decimal digits; `snap/` holds published snapshots, named `<index>-<term>.snap` as a node names its own;
/// `tmp/` holds files being written. A slot or checkpoint file holds its record's length (u32,
/// little-endian), the record, and zeros up to the file's size. It is written into a file in `tmp/` (one
/// prepared ahead of time when possible, see `PreparedSlotFiles`), synced, then `link(2)`ed to its name,
/// which fails with EEXIST if the name is taken, and the directory is fsynced. A snapshot is uploaded into `tmp/`, fsynced, and `rename(2)`d into `snap/`.
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

    public var description: String { "dir:\(root)" }
    var logDirectory: String { root + "/log" }
    var checkpointDirectory: String { root + "/checkpoint" }
    var snapshotDirectory: String { root + "/snap" }
    var temporaryDirectory: String { root + "/tmp" }

    /// Opens the store at `root`, creating its directories if missing.
    public init(root: String, fileSystem: any FileSystem = PosixFileSystem()) throws(ExternalLogError) {
        self.root = root
        self.fileSystem = fileSystem
        prepared = PreparedSlotFiles(directory: root + "/tmp", fileSystem: fileSystem, queue: queue)
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

    public func createSlot(_ slot: UInt64, bytes: [UInt8]) async throws(ExternalLogError) -> Bool {
        try await run { [self] in try createOnce(in: logDirectory, slot: slot, bytes: bytes) }
    }

    public func readSlot(_ slot: UInt64) async throws(ExternalLogError) -> [UInt8]? {
        try await run { [self] in try readIfPresent("\(logDirectory)/\(Self.name(of: slot))", in: logDirectory).map { try Self.record(inFile: $0, slot: slot) } }
    }

    public func createCheckpoint(_ slot: UInt64, bytes: [UInt8]) async throws(ExternalLogError) -> Bool {
        try await run { [self] in try createOnce(in: checkpointDirectory, slot: slot, bytes: bytes) }
    }

    public func newestCheckpointSlot() async throws(ExternalLogError) -> UInt64? {
        try await run { [self] in try slots(in: checkpointDirectory).max() }
    }

    public func readCheckpoint(_ slot: UInt64) async throws(ExternalLogError) -> [UInt8]? {
        try await run { [self] in
            try readIfPresent("\(checkpointDirectory)/\(Self.name(of: slot))", in: checkpointDirectory).map { try Self.record(inFile: $0, slot: slot) }
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

    private func upload(_ snapshot: ExternalSnapshotID) -> String { "\(temporaryDirectory)/\(snapshot.fileName).\(writerTag)" }

    /// Writes `bytes`, framed, into a synced file in `tmp/` and links it to `directory/slot`; false if that
    /// name exists.
    private func createOnce(in directory: String, slot: UInt64, bytes: [UInt8]) throws -> Bool {
        let framed = Self.frame(bytes)
        let destination = "\(directory)/\(Self.name(of: slot))"
        let preparedFile = framed.count <= PreparedSlotFiles.size ? prepared.take() : nil
        let temporary = preparedFile == nil ? "\(temporaryDirectory)/\(Self.name(of: slot)).\(UInt64.random(in: 0...UInt64.max)).\(writerTag)" : nil
        let file = try preparedFile ?? fileSystem.createFile(temporary!)
        defer {
            try? file.close()
            if let temporary { try? fileSystem.removeFile(temporary) }
        }
        try file.write(framed, at: 0)
        try file.sync()
        do {
            if let temporary { try fileSystem.link(temporary, to: destination) } else { try fileSystem.name(file, as: destination) }
        } catch Errno.fileExists {
            return false
        }
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

    /// The record in the bytes of a slot or checkpoint file (as `skiff-wal` reads them, too).
    public static func record(inFile bytes: [UInt8], slot: UInt64) throws(ExternalLogError) -> [UInt8] {
        guard bytes.count >= 4 else { throw .corruptRecord(slot: slot, reason: "a file of \(bytes.count) bytes holds no record") }
        let length = Int(UInt32(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
        guard length <= bytes.count - 4 else {
            throw .corruptRecord(slot: slot, reason: "the file says its record has \(length) bytes, but holds \(bytes.count - 4)")
        }
        return Array(bytes[4..<(4 + length)])
    }

    private func readIfPresent(_ path: String, in directory: String) throws -> [UInt8]? {
        let file: any StorageFile
        do {
            file = try fileSystem.openFile(path, writable: false)
        } catch Errno.noSuchFileOrDirectory {
            // Absent, unless the whole directory is gone (a lost mount, say): that must not read as empty.
            _ = try present(directory)
            return nil
        }
        defer { try? file.close() }
        return try file.read(count: Int(try file.size()), at: 0)
    }

    private func slots(in directory: String) throws -> [UInt64] {
        try present(directory).compactMap { name in name.count == 20 ? UInt64(name) : nil }
    }

    /// The names in one of the store's directories, which must exist.
    private func present(_ directory: String) throws -> [String] {
        guard fileSystem.isDirectory(directory) else { throw ExternalLogError.unavailable("\(directory) is missing") }
        return try fileSystem.contentsOfDirectory(directory)
    }

    private func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws(ExternalLogError) -> T {
        let result: Result<T, any Error> = await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: Result { try body() }) }
        }
        do { return try result.get() } catch let error as ExternalLogError { throw error } catch {
            throw .unavailable("\(root): \(error)")
        }
    }
}
