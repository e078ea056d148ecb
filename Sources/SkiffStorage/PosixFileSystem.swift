import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The real file system, through POSIX calls. Errors are `Errno` values from swift-system.
public struct PosixFileSystem: FileSystem {
    public init() {}

    public func openFile(_ path: String, writable: Bool) throws -> any StorageFile {
        let fd = try FileDescriptor.open(FilePath(path), writable ? .readWrite : .readOnly, options: [.closeOnExec])
        return PosixFile(path: path, descriptor: fd)
    }

    public func createFile(_ path: String) throws -> any StorageFile {
        let fd = try FileDescriptor.open(
            FilePath(path), .readWrite, options: [.create, .exclusiveCreate, .closeOnExec],
            permissions: [.ownerReadWrite, .groupRead, .otherRead])
        return PosixFile(path: path, descriptor: fd)
    }

    public func rename(_ source: String, to destination: String) throws {
        try check(systemRename(source, destination))
    }

    public func link(_ source: String, to destination: String) throws {
        try check(systemLink(source, destination))
    }

    public func createUnnamedFile(in directory: String) throws -> any StorageFile {
        let temporaryFile = 0o20_000_000 | O_DIRECTORY  // O_TMPFILE, a macro Swift does not import
        let descriptor = open(directory, temporaryFile | O_RDWR | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw Errno(rawValue: errno) }
        return PosixFile(path: directory + "/(unnamed)", descriptor: FileDescriptor(rawValue: descriptor))
    }

    public func name(_ file: any StorageFile, as path: String) throws {
        guard let file = file as? PosixFile else { throw Errno.badFileDescriptor }
        try check(linkat(AT_FDCWD, "/proc/self/fd/\(file.descriptor.rawValue)", AT_FDCWD, path, AT_SYMLINK_FOLLOW))
    }

    public func removeFile(_ path: String) throws {
        try check(unlink(path))
    }

    public func contentsOfDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw Errno(rawValue: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Creates `path` and any missing parents (like `mkdir -p`).
    public func createDirectory(_ path: String) throws {
        if isDirectory(path) { return }
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try createDirectory(String(path[..<slash]))
        }
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw Errno(rawValue: errno) }
        guard isDirectory(path) else { throw Errno.notDirectory }
    }

    public func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    public func fileExists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    public func modificationTime(_ path: String) throws -> Double {
        var info = stat()
        guard stat(path, &info) == 0 else { throw Errno(rawValue: errno) }
        return Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
    }

    public func syncDirectory(_ path: String) throws {
        let fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.directory, .closeOnExec])
        try fd.closeAfter { try check(fsync(fd.rawValue)) }
    }
}

/// A file descriptor owned by one `PosixFile`; closed on `close()` or when the last reference goes away.
final class PosixFile: StorageFile, @unchecked Sendable {
    let path: String
    let descriptor: FileDescriptor
    private var isClosed = false  // touched only by close() and deinit, which the owner serializes

    init(path: String, descriptor: FileDescriptor) {
        self.path = path
        self.descriptor = descriptor
    }

    deinit { if !isClosed { try? descriptor.close() } }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        var done = 0
        while done < buffer.count {
            let rest = UnsafeMutableRawBufferPointer(rebasing: buffer[done...])
            let got = try descriptor.read(fromAbsoluteOffset: offset + Int64(done), into: rest, retryOnInterrupt: true)
            if got == 0 { break }
            done += got
        }
        return done
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        _ = try descriptor.writeAll(toAbsoluteOffset: offset, bytes)
    }

    func sync() throws { try check(fdatasync(descriptor.rawValue)) }

    func truncate(to size: Int64) throws { try check(ftruncate(descriptor.rawValue, off_t(size))) }

    func size() throws -> Int64 {
        var info = stat()
        try check(fstat(descriptor.rawValue, &info))
        return Int64(info.st_size)
    }

    func close() throws {
        guard !isClosed else { return }
        isClosed = true
        try descriptor.close()
    }
}

private func check(_ result: Int32) throws {
    if result != 0 { throw Errno(rawValue: errno) }
}

private func systemRename(_ a: String, _ b: String) -> Int32 { rename(a, b) }
private func systemLink(_ a: String, _ b: String) -> Int32 { link(a, b) }
