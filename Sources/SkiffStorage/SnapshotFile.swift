import SkiffRaft

/// What a snapshot covers: the log up to and including `index` (whose term is `term`), and the cluster
/// configuration in force there, as opaque bytes that Raft encodes.
public struct SnapshotMetadata: Hashable, Sendable {
    public var index: LogIndex
    public var term: Term
    public var configuration: [UInt8]

    public init(index: LogIndex, term: Term, configuration: [UInt8] = []) {
        self.index = index
        self.term = term
        self.configuration = configuration
    }

    /// `00000000000000001024-00000000000000000003.snap`: index then term, so `ls` lists oldest first.
    var fileName: String { pad(index.rawValue, 20) + "-" + pad(term.rawValue, 20) + ".snap" }
}

/// The snapshot file layout (all integers little-endian):
///
///     header = magic "SKIFSNAP" | u16 version (1) | u16 flags (0) | u32 chunk size | u64 index | u64 term
///              | u32 configuration length | configuration bytes | u32 CRC-32 of everything before it
///     chunk  = u32 raw length (1...chunk size) | u32 stored length | u8 flags (bit 0: lz4) | u8[3] reserved
///              | u32 CRC-32 of the 12 bytes before it and the stored bytes, seeded with the chunk number
///              | stored bytes
///     end    = u32 0 | u32 0 | u32 chunk count | u32 CRC-32 of all raw bytes | u64 raw byte count
///              | u32 reserved | u32 CRC-32 of the 28 bytes before it
///
/// Nothing may follow the end record.
enum SnapshotFormat {
    static let magic = Array("SKIFSNAP".utf8)
    static let version: UInt16 = 1
    static let chunkHeaderSize = 16
    static let endSize = 32
    static let chunkBytesMax = 64 << 20
    static let configurationBytesMax = 1 << 20

    static func encodeHeader(_ metadata: SnapshotMetadata, chunkBytes: Int) -> [UInt8] {
        var writer = ByteWriter()
        writer.append(bytes: magic)
        writer.append(version)
        writer.append(UInt16(0))
        writer.append(UInt32(chunkBytes))
        writer.append(metadata.index.rawValue)
        writer.append(metadata.term.rawValue)
        writer.append(UInt32(metadata.configuration.count))
        writer.append(bytes: metadata.configuration)
        writer.append(Checksum.crc32(writer.bytes))
        return writer.bytes
    }

    static func chunkSeed(_ number: UInt32) -> UInt32 {
        var writer = ByteWriter()
        writer.append(UInt64(number))
        return Checksum.crc32(writer.bytes)
    }
}

/// Writes a snapshot file as a stream of bytes, in chunks, under a temporary name; `finish()` makes it
/// durable and gives it its final name, so a crash never leaves a partial file under a snapshot's name.
public final class SnapshotWriter {
    public let metadata: SnapshotMetadata
    public let path: String
    private let directory: String
    private let fileSystem: any FileSystem
    private let file: any StorageFile
    private let chunkBytes: Int
    private var pending: [UInt8] = []
    private var compressed: [UInt8] = []
    private var offset: Int64 = 0
    private var chunkCount: UInt32 = 0
    private var rawCRC: UInt32 = 0
    private var rawTotal: UInt64 = 0
    private var finished = false

    public init(directory: String, metadata: SnapshotMetadata, chunkBytes: Int = 1 << 20,
                fileSystem: any FileSystem = PosixFileSystem()) throws(WALError) {
        precondition(chunkBytes > 0 && chunkBytes <= SnapshotFormat.chunkBytesMax, "chunk size out of range")
        guard metadata.configuration.count <= SnapshotFormat.configurationBytesMax else {
            throw WALError(.recordTooLarge, file: directory, "snapshot configuration exceeds 1 MiB")
        }
        self.metadata = metadata
        self.directory = directory
        self.fileSystem = fileSystem
        self.chunkBytes = chunkBytes
        let path = directory + "/" + metadata.fileName
        self.path = path
        file = try withWALErrors(file: path + ".tmp") {
            try fileSystem.createDirectory(directory)
            if fileSystem.fileExists(path + ".tmp") { try fileSystem.removeFile(path + ".tmp") }
            return try fileSystem.createFile(path + ".tmp")
        }
        try emit(SnapshotFormat.encodeHeader(metadata, chunkBytes: chunkBytes))
    }

    /// Appends bytes of the snapshot body.
    public func write(_ bytes: some Collection<UInt8>) throws(WALError) {
        precondition(!finished, "write after finish")
        pending.append(contentsOf: bytes)
        while pending.count >= chunkBytes {
            try writeChunk(pending[..<chunkBytes])
            pending.removeFirst(chunkBytes)
        }
    }

    /// Writes the last chunk and the end record, syncs, renames into place, and syncs the directory.
    @discardableResult
    public func finish() throws(WALError) -> String {
        precondition(!finished, "finish called twice")
        if !pending.isEmpty { try writeChunk(pending[...]) }
        pending = []
        var end = ByteWriter(capacity: SnapshotFormat.endSize)
        end.append(UInt32(0))
        end.append(UInt32(0))
        end.append(chunkCount)
        end.append(rawCRC)
        end.append(rawTotal)
        end.append(UInt32(0))
        end.append(Checksum.crc32(end.bytes))
        try emit(end.bytes)
        try withWALErrors(file: path) {
            try file.sync()
            try file.close()
            try fileSystem.rename(path + ".tmp", to: path)
            try fileSystem.syncDirectory(directory)
        }
        finished = true
        return path
    }

    /// Removes the unfinished file.
    public func abandon() {
        guard !finished else { return }
        finished = true
        try? file.close()
        try? fileSystem.removeFile(path + ".tmp")
    }

    private func writeChunk(_ raw: ArraySlice<UInt8>) throws(WALError) {
        let useCompression = raw.withUnsafeBytes { LZ4.compress($0, into: &compressed) }
        var chunk = ByteWriter(capacity: SnapshotFormat.chunkHeaderSize + raw.count)
        chunk.append(UInt32(raw.count))
        chunk.append(UInt32(useCompression ? compressed.count : raw.count))
        chunk.append(UInt8(useCompression ? 1 : 0))
        chunk.append(zeros: 3)
        var crc = Checksum.crc32(chunk.bytes, continuing: SnapshotFormat.chunkSeed(chunkCount))
        if useCompression {
            crc = Checksum.crc32(compressed, continuing: crc)
            chunk.append(crc)
            chunk.append(bytes: compressed)
        } else {
            crc = raw.withUnsafeBytes { Checksum.crc32($0, continuing: crc) }
            chunk.append(crc)
            chunk.append(bytes: raw)
        }
        rawCRC = raw.withUnsafeBytes { Checksum.crc32($0, continuing: rawCRC) }
        rawTotal += UInt64(raw.count)
        chunkCount += 1
        try emit(chunk.bytes)
    }

    private func emit(_ bytes: [UInt8]) throws(WALError) {
        let at = offset
        try withWALErrors(file: path + ".tmp") { try file.write(bytes, at: at) }
        offset += Int64(bytes.count)
    }
}

/// Reads a snapshot file chunk by chunk, verifying each chunk as it goes and the whole at the end.
/// A body is trustworthy only once `nextChunk()` has returned nil without throwing.
public final class SnapshotReader {
    public let metadata: SnapshotMetadata
    public let path: String
    private let file: any StorageFile
    private let fileSize: Int64
    private let chunkBytes: Int
    private var offset: Int64
    private var chunkCount: UInt32 = 0
    private var rawCRC: UInt32 = 0
    private var rawTotal: UInt64 = 0
    private var ended = false

    public init(path: String, fileSystem: any FileSystem = PosixFileSystem()) throws(WALError) {
        self.path = path
        let (file, fileSize) = try withWALErrors(file: path) {
            let file = try fileSystem.openFile(path, writable: false)
            return (file, try file.size())
        }
        self.file = file
        self.fileSize = fileSize
        func bad(_ detail: String, at offset: Int64 = 0) -> WALError { WALError(.badSnapshot, file: path, offset: offset, detail) }
        let head = try withWALErrors(file: path) { try file.read(count: 36, at: 0) }
        guard head.count == 36, Array(head[0..<8]) == SnapshotFormat.magic else { throw bad("not a Skiff snapshot (no SKIFSNAP magic)") }
        let fields = head.withUnsafeBytes { buffer in
            var reader = ByteReader(buffer, offset: 8)
            return (reader.read(UInt16.self)!, reader.read(UInt16.self)!, reader.read(UInt32.self)!,
                    reader.read(UInt64.self)!, reader.read(UInt64.self)!, reader.read(UInt32.self)!)
        }
        guard fields.0 == SnapshotFormat.version else {
            throw WALError(.unsupportedVersion, file: path, offset: 8, "snapshot format version \(fields.0); this build reads \(SnapshotFormat.version)")
        }
        guard fields.1 == 0, fields.2 > 0, Int(fields.2) <= SnapshotFormat.chunkBytesMax,
              Int(fields.5) <= SnapshotFormat.configurationBytesMax else { throw bad("header fields out of range") }
        let configuration = try withWALErrors(file: path) { try file.read(count: Int(fields.5) + 4, at: 36) }
        guard configuration.count == Int(fields.5) + 4 else { throw bad("file ends inside the header") }
        let storedCRC = configuration.suffix(4).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self).littleEndian }
        let actualCRC = Checksum.crc32(head + configuration.dropLast(4))
        guard storedCRC == actualCRC else { throw WALError(.checksumMismatch, file: path, offset: 0, "snapshot header checksum mismatch") }
        chunkBytes = Int(fields.2)
        metadata = SnapshotMetadata(index: LogIndex(fields.3), term: Term(fields.4), configuration: Array(configuration.dropLast(4)))
        offset = 36 + Int64(configuration.count)
    }

    /// The next chunk of the body, or nil after the last one once the whole file has verified.
    public func nextChunk() throws(WALError) -> [UInt8]? {
        guard !ended else { return nil }
        let at = offset
        let head = try withWALErrors(file: path) { try file.read(count: SnapshotFormat.chunkHeaderSize, at: at) }
        guard head.count == SnapshotFormat.chunkHeaderSize else {
            throw WALError(.badSnapshot, file: path, offset: at, "file ends inside chunk \(chunkCount): the snapshot is truncated")
        }
        let (raw, stored, flags, reserved, crc) = head.withUnsafeBytes { buffer in
            var reader = ByteReader(buffer)
            return (Int(reader.read(UInt32.self)!), Int(reader.read(UInt32.self)!), reader.read(UInt8.self)!,
                    Int(reader.read(UInt16.self)!) | Int(reader.read(UInt8.self)!), reader.read(UInt32.self)!)
        }
        if raw == 0 && stored == 0 { try readEnd(at: at); return nil }
        guard raw <= chunkBytes, stored <= max(chunkBytes, Int(LZ4_bound(chunkBytes))), flags <= 1, reserved == 0,
              at + Int64(SnapshotFormat.chunkHeaderSize + stored) <= fileSize else {
            throw WALError(.badSnapshot, file: path, offset: at, "chunk \(chunkCount) has an impossible length or flags")
        }
        let body = try withWALErrors(file: path) { try file.read(count: stored, at: at + Int64(SnapshotFormat.chunkHeaderSize)) }
        var expected = Checksum.crc32(Array(head[0..<12]), continuing: SnapshotFormat.chunkSeed(chunkCount))
        expected = Checksum.crc32(body, continuing: expected)
        guard expected == crc else {
            throw WALError(.checksumMismatch, file: path, offset: at, "chunk \(chunkCount) checksum mismatch")
        }
        let bytes: [UInt8]
        if flags == 1 {
            guard let decoded = body.withUnsafeBytes({ LZ4.decompress($0, rawCount: raw) }) else {
                throw WALError(.badSnapshot, file: path, offset: at, "chunk \(chunkCount) does not decompress")
            }
            bytes = decoded
        } else {
            guard raw == stored else { throw WALError(.badSnapshot, file: path, offset: at, "raw chunk with two lengths") }
            bytes = body
        }
        rawCRC = Checksum.crc32(bytes, continuing: rawCRC)
        rawTotal += UInt64(raw)
        chunkCount += 1
        offset = at + Int64(SnapshotFormat.chunkHeaderSize + stored)
        return bytes
    }

    /// Reads the rest of the body, verifying everything; returns how many body bytes it holds.
    @discardableResult
    public func verify() throws(WALError) -> UInt64 {
        while try nextChunk() != nil {}
        return rawTotal
    }

    public func close() { try? file.close() }

    private func readEnd(at: Int64) throws(WALError) {
        let end = try withWALErrors(file: path) { try file.read(count: SnapshotFormat.endSize, at: at) }
        guard end.count == SnapshotFormat.endSize else {
            throw WALError(.badSnapshot, file: path, offset: at, "file ends inside the end record")
        }
        let (count, crc, total, reserved, endCRC) = end.withUnsafeBytes { buffer in
            var reader = ByteReader(buffer, offset: 8)
            return (reader.read(UInt32.self)!, reader.read(UInt32.self)!, reader.read(UInt64.self)!,
                    reader.read(UInt32.self)!, reader.read(UInt32.self)!)
        }
        guard Checksum.crc32(Array(end[0..<28])) == endCRC, reserved == 0 else {
            throw WALError(.checksumMismatch, file: path, offset: at, "end record checksum mismatch")
        }
        guard count == chunkCount, total == rawTotal, crc == rawCRC else {
            throw WALError(.badSnapshot, file: path, offset: at, "end record says \(count) chunks, \(total) bytes; read \(chunkCount), \(rawTotal) with a different checksum")
        }
        guard at + Int64(SnapshotFormat.endSize) == fileSize else {
            throw WALError(.badSnapshot, file: path, offset: at + Int64(SnapshotFormat.endSize), "bytes follow the end record")
        }
        ended = true
    }
}

private func LZ4_bound(_ count: Int) -> Int { count + count / 255 + 16 }
