import Dispatch
import SkiffStorage
import SystemPackage

/// An `ExternalStore` in a directory that every node can reach: on one machine, or on a shared filesystem.
///
/// Layout: `log/` holds one file per slot, named by its number in 20 decimal digits; `tmp/` holds records
/// being written. A slot is written by creating a unique file in `tmp/`, writing and fsyncing it, then
/// `link(2)`ing it to its slot name, which fails with EEXIST if the slot is taken, and fsyncing `log/`.
/// It relies on: exclusive create, `link` that is atomic and refuses an existing name, and fsync of files
/// and directories that makes them durable. Filesystems that lack one of these (some FUSE filesystems, NFS
/// mounted without `sync` or with a server that answers `link` twice on a retry) break the fencing.
///
/// Calls block on the filesystem, so they run on a queue of their own, several at once, never on the
/// caller's thread.
public final class DirectoryExternalStore: ExternalStore {
    public let root: String
    let fileSystem: any FileSystem
    private let queue = DispatchQueue(label: "skiff.external-store", attributes: .concurrent)
    private let writerTag = String(UInt64.random(in: 0...UInt64.max), radix: 16)

    public var description: String { "dir:\(root)" }
    var logDirectory: String { root + "/log" }
    var temporaryDirectory: String { root + "/tmp" }

    /// Opens the store at `root`, creating its directories if missing.
    public init(root: String, fileSystem: any FileSystem = PosixFileSystem()) throws(ExternalLogError) {
        self.root = root
        self.fileSystem = fileSystem
        do {
            for directory in [root, logDirectory, temporaryDirectory] where !fileSystem.isDirectory(directory) {
                do { try fileSystem.createDirectory(directory) } catch Errno.fileExists {}  // another node made it first
            }
        } catch {
            throw .unavailable("cannot create \(root): \(error)")
        }
    }

    /// The file name of a slot.
    public static func name(of slot: UInt64) -> String {
        let digits = String(slot)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    public func createSlot(_ slot: UInt64, bytes: [UInt8]) async throws(ExternalLogError) -> Bool {
        try await run { [self] in
            let temporary = "\(temporaryDirectory)/\(Self.name(of: slot)).\(writerTag)"
            let file = try fileSystem.createFile(temporary)
            defer { try? fileSystem.removeFile(temporary) }
            do {
                try file.write(bytes, at: 0)
                try file.sync()
                try file.close()
            } catch {
                try? file.close()
                throw error
            }
            do {
                try fileSystem.link(temporary, to: "\(logDirectory)/\(Self.name(of: slot))")
            } catch Errno.fileExists {
                return false
            }
            try fileSystem.syncDirectory(logDirectory)
            return true
        }
    }

    public func readSlot(_ slot: UInt64) async throws(ExternalLogError) -> [UInt8]? {
        try await run { [self] in
            let file: any StorageFile
            do {
                file = try fileSystem.openFile("\(logDirectory)/\(Self.name(of: slot))", writable: false)
            } catch Errno.noSuchFileOrDirectory {
                // An empty slot, unless the whole log is gone (a lost mount, say): that must not read as empty.
                guard fileSystem.isDirectory(logDirectory) else { throw ExternalLogError.unavailable("\(logDirectory) is missing") }
                return nil
            }
            defer { try? file.close() }
            return try file.read(count: Int(try file.size()), at: 0)
        }
    }

    public func firstSlot() async throws(ExternalLogError) -> UInt64? {
        try await run { [self] in
            try fileSystem.contentsOfDirectory(logDirectory).compactMap { name in
                name.count == 20 ? UInt64(name) : nil
            }.min()
        }
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
