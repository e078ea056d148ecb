import Foundation
import Logging
import SkiffRaft
@testable import SkiffStorage
import Synchronization

/// A fresh directory under the system temp directory, removed when the test is done with it.
final class TemporaryDirectory {
    let path: String
    init(_ name: String = "skiff-test") {
        var template = Array((NSTemporaryDirectory() + "/\(name)-XXXXXX").utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

/// Small WAL settings that make several segments out of a few hundred entries.
func smallOptions(segmentBytes: Int = 4096, preallocate: Bool = false) -> WALOptions {
    var options = WALOptions()
    options.segmentBytesMax = segmentBytes
    options.preallocate = preallocate
    return options
}

/// The payload the tests write for `index`: recognisable, and different for every index and term.
func payload(_ index: UInt64, term: UInt64 = 1, size: Int = 24) -> [UInt8] {
    var bytes = Array("i\(index)t\(term):".utf8)
    while bytes.count < size { bytes.append(UInt8(truncatingIfNeeded: index &* 31 &+ UInt64(bytes.count))) }
    return Array(bytes.prefix(max(size, bytes.count)))
}

func entries(_ range: ClosedRange<UInt64>, term: UInt64 = 1, size: Int = 24) -> [Entry] {
    range.map { Entry(index: LogIndex($0), term: Term(term), payload: payload($0, term: term, size: size)) }
}

/// Tests check outcomes, not log lines; keep the output readable.
let quietLogger = Logger(label: "skiff.test", factory: { _ in SwiftLogNoOpLogHandler() })

/// Opens a WAL, runs `body`, and closes it.
func withWAL<T>(_ directory: String, options: WALOptions = smallOptions(),
                _ body: (WAL, WALRecoveryReport) async throws -> T) async throws -> T {
    let (wal, report) = try WAL.open(directory: directory, options: options, logger: quietLogger)
    do {
        let result = try await body(wal, report)
        await wal.close()
        return result
    } catch {
        await wal.close()
        throw error
    }
}

/// Every entry of the log, read back from disk.
func allEntries(_ wal: WAL) throws -> [Entry] {
    guard wal.lastIndex >= wal.firstIndex else { return [] }
    return try wal.entries(in: wal.firstIndex...wal.lastIndex)
}

func segmentFiles(_ directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".wal") }.sorted()
}

/// A file system that "crashes" after a set number of mutating operations: from then on every change
/// fails, as if the process had died there, and syncs do nothing. What was done before stays on disk.
final class CrashingFileSystem: FileSystem {
    private let real = PosixFileSystem()
    private let remaining: Mutex<Int>

    init(operationsBeforeCrash: Int) { remaining = Mutex(operationsBeforeCrash) }

    struct Crashed: Error {}

    /// Allows `steps` more mutating operations, then crashes.
    func arm(_ steps: Int) { remaining.withLock { $0 = steps } }
    var hasCrashed: Bool { remaining.withLock { $0 < 0 } }

    /// Counts one mutating operation; throws once the budget is spent.
    func step() throws {
        let allowed = remaining.withLock { budget -> Bool in
            budget -= 1
            return budget >= 0
        }
        if !allowed { throw Crashed() }
    }

    func openFile(_ path: String, writable: Bool) throws -> any StorageFile {
        CrashingFile(try real.openFile(path, writable: writable), owner: self)
    }
    func createFile(_ path: String) throws -> any StorageFile {
        try step()
        return CrashingFile(try real.createFile(path), owner: self)
    }
    func rename(_ source: String, to destination: String) throws { try step(); try real.rename(source, to: destination) }
    func link(_ source: String, to destination: String) throws { try step(); try real.link(source, to: destination) }
    func removeFile(_ path: String) throws { try step(); try real.removeFile(path) }
    func contentsOfDirectory(_ path: String) throws -> [String] { try real.contentsOfDirectory(path) }
    func createDirectory(_ path: String) throws { try real.createDirectory(path) }
    func isDirectory(_ path: String) -> Bool { real.isDirectory(path) }
    func fileExists(_ path: String) -> Bool { real.fileExists(path) }
    func syncDirectory(_ path: String) throws { if !hasCrashed { try real.syncDirectory(path) } }
}

final class CrashingFile: StorageFile, @unchecked Sendable {
    private let file: any StorageFile
    private let owner: CrashingFileSystem
    init(_ file: any StorageFile, owner: CrashingFileSystem) {
        self.file = file
        self.owner = owner
    }
    var path: String { file.path }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int { try file.read(into: buffer, at: offset) }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws { try owner.step(); try file.write(bytes, at: offset) }
    func sync() throws { if !owner.hasCrashed { try file.sync() } }
    func truncate(to size: Int64) throws { try owner.step(); try file.truncate(to: size) }
    func size() throws -> Int64 { try file.size() }
    func close() throws { try file.close() }
}

/// Reads a file's bytes; writes them back.
func readBytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }
func writeBytes(_ bytes: [UInt8], to path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

/// Passes every call to the real file system, records each write (file, offset, size, all zeros?), and runs
/// the test's hooks before each write and each file sync, so a test can hold the WAL at a chosen step.
final class InstrumentedFileSystem: FileSystem, @unchecked Sendable {
    struct Write { var path: String; var offset: Int64; var count: Int; var allZero: Bool }
    let real = PosixFileSystem()
    let writes = Mutex<[Write]>([])
    /// Called with the file's path; they run on the WAL's threads.
    let beforeWrite = Mutex<@Sendable (String) -> Void>({ _ in })
    let beforeSync = Mutex<@Sendable (String) -> Void>({ _ in })

    final class File: StorageFile, @unchecked Sendable {
        let file: any StorageFile
        let owner: InstrumentedFileSystem
        init(_ file: any StorageFile, owner: InstrumentedFileSystem) { self.file = file; self.owner = owner }
        var path: String { file.path }
        func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int { try file.read(into: buffer, at: offset) }
        func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
            owner.beforeWrite.withLock { $0 }(path)
            let write = Write(path: path, offset: offset, count: bytes.count, allZero: bytes.allSatisfy { $0 == 0 })
            owner.writes.withLock { $0.append(write) }
            try file.write(bytes, at: offset)
        }
        func sync() throws {
            owner.beforeSync.withLock { $0 }(path)
            try file.sync()
        }
        func truncate(to size: Int64) throws { try file.truncate(to: size) }
        func size() throws -> Int64 { try file.size() }
        func close() throws { try file.close() }
    }

    func openFile(_ path: String, writable: Bool) throws -> any StorageFile { File(try real.openFile(path, writable: writable), owner: self) }
    func createFile(_ path: String) throws -> any StorageFile { File(try real.createFile(path), owner: self) }
    func rename(_ source: String, to destination: String) throws { try real.rename(source, to: destination) }
    func link(_ source: String, to destination: String) throws { try real.link(source, to: destination) }
    func removeFile(_ path: String) throws { try real.removeFile(path) }
    func contentsOfDirectory(_ path: String) throws -> [String] { try real.contentsOfDirectory(path) }
    func createDirectory(_ path: String) throws { try real.createDirectory(path) }
    func isDirectory(_ path: String) -> Bool { real.isDirectory(path) }
    func fileExists(_ path: String) -> Bool { real.fileExists(path) }
    func syncDirectory(_ path: String) throws { try real.syncDirectory(path) }
}
