import Foundation
import SkiffRaft
@testable import SkiffStorage
import Testing

/// Committed WAL and snapshot files pin the on-disk formats: today's reader must read them, and today's
/// writer must still produce the uncompressed ones of the current version byte for byte. A format change is
/// then a conscious act: bump the version, keep reading (and keep the files of) the old one, and generate the
/// new version's with `SKIFF_UPDATE_GOLDEN=1 swift test --filter GoldenTests`, saying why in the commit. Only
/// files of the current version are ever regenerated.
@Suite(.serialized) struct GoldenTests {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden").path
    static let updating = ProcessInfo.processInfo.environment["SKIFF_UPDATE_GOLDEN"] == "1"

    static let hardState1 = HardState(term: Term(1), vote: NodeID(1), commit: LogIndex(2))
    static let hardState2 = HardState(term: Term(2), vote: NodeID(2), commit: LogIndex(4))

    /// The plain log: every frame below the compression threshold; a rotation, a truncation, all record kinds.
    static func writePlain(_ wal: WAL) async throws {
        try await wal.append([Entry(index: LogIndex(1), term: Term(1), kind: .noop, payload: [])], hardState: hardState1)
        try await wal.append([
            Entry(index: LogIndex(2), term: Term(1), kind: .configuration, payload: Array("voters=1,2,3".utf8)),
            Entry(index: LogIndex(3), term: Term(1), payload: Array("SET a 1".utf8)),
        ])
        for index in UInt64(4)...70 { try await wal.append(entries(index...index)) }
        try await wal.truncate(after: LogIndex(66))
        try await wal.append([Entry(index: LogIndex(67), term: Term(2), payload: [0, 1, 2, 0xff, UInt8(ascii: "\"")])], hardState: hardState2)
    }

    static let plainEntries: [Entry] = [Entry(index: LogIndex(1), term: Term(1), kind: .noop, payload: []),
                                        Entry(index: LogIndex(2), term: Term(1), kind: .configuration, payload: Array("voters=1,2,3".utf8)),
                                        Entry(index: LogIndex(3), term: Term(1), payload: Array("SET a 1".utf8))]
        + entries(4...66) + [Entry(index: LogIndex(67), term: Term(2), payload: [0, 1, 2, 0xff, UInt8(ascii: "\"")])]

    /// The compressed log: one frame of compressible entries above the threshold.
    static func writeCompressed(_ wal: WAL) async throws {
        try await wal.append(compressedEntries)
    }

    static let compressedEntries = (UInt64(1)...16).map {
        Entry(index: LogIndex($0), term: Term(3), payload: Array(String(repeating: "value-\($0);", count: 40).utf8))
    }

    static let snapshotMetadata = SnapshotMetadata(index: LogIndex(36), term: Term(1), configuration: Array("voters=1,2,3".utf8))
    static let snapshotBody: [UInt8] = {
        var generator = UInt64(0x5eed)
        let noise = (0..<3000).map { _ -> UInt8 in
            generator = generator &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: generator >> 33)
        }
        return Array(String(repeating: "key=value\n", count: 600).utf8) + noise
    }()

    private static func generate(_ name: String, _ script: (WAL) async throws -> Void) async throws -> String {
        let dir = TemporaryDirectory()
        try await withWAL(dir.path, options: goldenOptions) { wal, _ async throws in try await script(wal) }
        let kept = TemporaryDirectory().path + "-" + name
        try FileManager.default.copyItem(atPath: dir.path, toPath: kept)
        return kept
    }

    static var goldenOptions: WALOptions { smallOptions(segmentBytes: 4096) }

    static let current = "wal-v\(SegmentHeader.version)-"

    @Test(arguments: ["wal-v1-plain", "wal-v1-compressed", "wal-v2-plain", "wal-v2-compressed"])
    func goldenWALReadsBack(_ name: String) async throws {
        let path = Self.golden + "/" + name
        if Self.updating && name.hasPrefix(Self.current) {
            let fresh = try await Self.generate(name, name.hasSuffix("plain") ? Self.writePlain : Self.writeCompressed)
            try? FileManager.default.removeItem(atPath: path)
            try FileManager.default.copyItem(atPath: fresh, toPath: path)
            try FileManager.default.removeItem(atPath: fresh)
        }
        // Open a copy: opening may tidy files, and the fixtures must stay as committed.
        let copy = TemporaryDirectory()
        for file in try FileManager.default.contentsOfDirectory(atPath: path) {
            try FileManager.default.copyItem(atPath: path + "/" + file, toPath: copy.file(file))
        }
        try await withWAL(copy.path, options: Self.goldenOptions) { wal, report async throws in
            #expect(report.cutTail == nil)
            if name.hasSuffix("plain") {
                #expect(try allEntries(wal) == Self.plainEntries)
                #expect(wal.hardState == Self.hardState2)
                #expect(report.segments.count >= 3)
            } else {
                #expect(try allEntries(wal) == Self.compressedEntries)
                #expect(report.segments[0].storedBodyBytes < report.segments[0].rawBodyBytes / 4)
            }
        }
    }

    @Test func plainWALIsWrittenByteForByteAsCommitted() async throws {
        let fresh = try await Self.generate("check", Self.writePlain)
        defer { try? FileManager.default.removeItem(atPath: fresh) }
        let committed = Self.golden + "/" + Self.current + "plain"
        let names = try FileManager.default.contentsOfDirectory(atPath: committed).sorted()
        #expect(try FileManager.default.contentsOfDirectory(atPath: fresh).sorted() == names)
        for name in names {
            #expect(try readBytes(fresh + "/" + name) == readBytes(committed + "/" + name), "\(name) differs from the committed golden file")
        }
    }

    /// A WAL whose newest segment is version 1 gets its next frames in a new segment of the current version:
    /// no frame of the new kind lands in an old segment, which stays byte for byte as it was.
    @Test func aVersion1LogContinuesInANewSegment() async throws {
        let v1 = Self.golden + "/wal-v1-plain"
        let copy = TemporaryDirectory()
        let names = try FileManager.default.contentsOfDirectory(atPath: v1).sorted()
        for name in names { try FileManager.default.copyItem(atPath: v1 + "/" + name, toPath: copy.file(name)) }
        // With preallocation on, as a node runs: the old segment must not be filled with zeros it will never use.
        let files = InstrumentedFileSystem()
        var options = Self.goldenOptions
        options.preallocate = true
        let (wal, _) = try WAL.open(directory: copy.path, options: options, fileSystem: files, logger: quietLogger)
        try await wal.append(entries(68...70, term: 2))
        await wal.close()
        #expect(files.writes.withLock { $0.filter { $0.path.hasSuffix("/" + names.last!) } }.isEmpty, "the version 1 segment was written to")
        let after = try segmentFiles(copy.path)
        #expect(after.count == names.count + 1 && Array(after.prefix(names.count)) == names)
        let newest = try readBytes(copy.file(after.last!))
        #expect(newest[8] == UInt8(SegmentHeader.version) && newest[9] == 0)
        try await withWAL(copy.path, options: Self.goldenOptions) { wal, report async throws in
            #expect(report.cutTail == nil)
            #expect(try allEntries(wal) == Self.plainEntries + entries(68...70, term: 2))
        }
        for name in names.dropLast() { #expect(try readBytes(copy.file(name)) == readBytes(v1 + "/" + name), "\(name) changed") }
        // The newest version 1 segment was only cut to its written length, which it already had.
        #expect(try readBytes(copy.file(names.last!)) == readBytes(v1 + "/" + names.last!))
    }

    @Test func goldenSnapshotReadsBack() throws {
        let path = Self.golden + "/" + Self.snapshotMetadata.fileName
        if Self.updating {
            let dir = TemporaryDirectory()
            let writer = try SnapshotWriter(directory: dir.path, metadata: Self.snapshotMetadata, chunkBytes: 4096)
            try writer.write(Self.snapshotBody)
            try? FileManager.default.removeItem(atPath: path)
            try FileManager.default.copyItem(atPath: try writer.finish(), toPath: path)
        }
        let reader = try SnapshotReader(path: path)
        defer { reader.close() }
        #expect(reader.metadata == Self.snapshotMetadata)
        var body: [UInt8] = []
        while let chunk = try reader.nextChunk() { body += chunk }
        #expect(body == Self.snapshotBody)
    }

    @Test(arguments: [
        (["ls", "wal-v1-plain"], "wal-v1-plain.ls.txt"),
        (["dump", "wal-v1-plain"], "wal-v1-plain.dump.txt"),
        (["dump", "--json", "--from", "65", "wal-v1-plain"], "wal-v1-plain.dump-json.txt"),
        (["dump", "wal-v1-compressed", "--payload-bytes", "20"], "wal-v1-compressed.dump.txt"),
        (["verify", "wal-v1-plain"], "wal-v1-plain.verify.txt"),
        (["ls", "wal-v2-plain"], "wal-v2-plain.ls.txt"),
        (["verify", "wal-v2-plain"], "wal-v2-plain.verify.txt"),
        (["snapshot", "00000000000000000036-00000000000000000001.snap"], "snapshot.txt"),
    ])
    func toolOutputMatchesGolden(_ arguments: [String], _ expectedFile: String) throws {
        let (status, output, _) = try runTool("skiff-wal", arguments, in: Self.golden)
        #expect(status == 0)
        let path = Self.golden + "/" + expectedFile
        if Self.updating && arguments.contains(where: { $0.hasPrefix(Self.current) }) {
            try output.write(toFile: path, atomically: true, encoding: .utf8)
        }
        #expect(output == (try String(contentsOfFile: path, encoding: .utf8)))
    }
}

/// Runs a built tool with `arguments` in `directory`; returns exit status, standard output and error.
func runTool(_ name: String, _ arguments: [String], in directory: String? = nil) throws -> (Int32, String, String) {
    let process = Process()
    process.executableURL = try toolURL(name)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let error = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
}
