import SystemPackage

/// The file operations the storage engine needs, and nothing else.
///
/// Storage code sees files only through this protocol, so tests can inject faults (a crash after N
/// operations, a failing sync) without touching the code under test. Paths are plain strings; every
/// method either does its whole job or throws.
public protocol FileSystem: Sendable {
    /// Opens an existing file for reading, or for reading and writing.
    func openFile(_ path: String, writable: Bool) throws -> any StorageFile
    /// Creates a new file for reading and writing; fails if it already exists.
    func createFile(_ path: String) throws -> any StorageFile
    /// Replaces `destination` with `source` atomically (rename(2)).
    func rename(_ source: String, to destination: String) throws
    /// Makes `destination` a new name of `source`, failing with `.fileExists` if it is taken (link(2)).
    func link(_ source: String, to destination: String) throws
    func removeFile(_ path: String) throws
    /// Names of the entries in a directory, unsorted, without "." and "..".
    func contentsOfDirectory(_ path: String) throws -> [String]
    func createDirectory(_ path: String) throws
    func isDirectory(_ path: String) -> Bool
    func fileExists(_ path: String) -> Bool
    /// Makes the directory's entries (creations, renames, removals) durable (fsync on the directory).
    func syncDirectory(_ path: String) throws
    /// Creates a file with no name in `directory` (Linux `O_TMPFILE`): it vanishes when closed, or when the
    /// process dies, unless `name(_:as:)` gave it one. Throws `Errno.notSupported` where it cannot be done.
    func createUnnamedFile(in directory: String) throws -> any StorageFile
    /// Gives a file from `createUnnamedFile(in:)` the name `path`, failing with `.fileExists` if it is taken.
    func name(_ file: any StorageFile, as path: String) throws
    /// When the file at `path` was last written, in seconds since the epoch, by the clock of whatever keeps
    /// the file (an NFS server's, for a file on NFS).
    func modificationTime(_ path: String) throws -> Double
}

extension FileSystem {
    /// Unnamed files are an optimisation: a file system without them says so, and callers make named ones.
    public func createUnnamedFile(in directory: String) throws -> any StorageFile { throw Errno.notSupported }
    public func name(_ file: any StorageFile, as path: String) throws { throw Errno.notSupported }
    /// Only for tidying up: a file system that cannot tell says so, and the tidying fails.
    public func modificationTime(_ path: String) throws -> Double { throw Errno.notSupported }
}

/// An open file. Offsets are absolute; there is no implicit position.
public protocol StorageFile: AnyObject, Sendable {
    var path: String { get }
    /// Reads up to `buffer.count` bytes at `offset`; returns fewer only at end of file.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int
    /// Writes all of `bytes` at `offset`.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws
    /// Makes written data durable (fdatasync).
    func sync() throws
    func truncate(to size: Int64) throws
    func size() throws -> Int64
    func close() throws
}

extension StorageFile {
    /// Reads exactly `count` bytes at `offset`, or fewer if the file ends first.
    public func read(count: Int, at offset: Int64) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = try bytes.withUnsafeMutableBytes { try read(into: $0, at: offset) }
        if got < count { bytes.removeSubrange(got...) }
        return bytes
    }

    public func write(_ bytes: [UInt8], at offset: Int64) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }
}
