import Foundation
import SkiffRaft
@testable import SkiffStorage
import Testing

@Suite struct SnapshotTests {
    static let metadata = SnapshotMetadata(index: LogIndex(120), term: Term(4), configuration: Array("1,2,3".utf8))

    /// Compressible text and incompressible noise, so chunks of both kinds appear.
    static func body(_ size: Int) -> [UInt8] {
        var state: UInt64 = 42
        return (0..<size).map { position in
            if (position / 5000) % 2 == 0 { return UInt8(ascii: "a") + UInt8(position % 7) }
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
    }

    private func write(_ dir: String, body: [UInt8], chunkBytes: Int = 4096) throws -> String {
        let writer = try SnapshotWriter(directory: dir, metadata: Self.metadata, chunkBytes: chunkBytes)
        for piece in stride(from: 0, to: body.count, by: 1000) { try writer.write(body[piece..<min(piece + 1000, body.count)]) }
        return try writer.finish()
    }

    @Test func streamsBackWhatWasWritten() throws {
        let dir = TemporaryDirectory()
        let body = Self.body(50_000)
        let path = try write(dir.path, body: body)
        #expect(path.hasSuffix("00000000000000000120-00000000000000000004.snap"))
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        let reader = try SnapshotReader(path: path)
        #expect(reader.metadata == Self.metadata)
        var read: [UInt8] = []
        var chunks = 0
        while let chunk = try reader.nextChunk() { read += chunk; chunks += 1 }
        #expect(read == body)
        #expect(chunks == 13)
        #expect(try readBytes(path).count < body.count)  // the text half compressed
    }

    @Test func everyFlippedByteAndEveryTruncationIsDetected() throws {
        let dir = TemporaryDirectory()
        let path = try write(dir.path, body: Self.body(12_000), chunkBytes: 2048)
        let original = try readBytes(path)
        for position in original.indices {
            var damaged = original
            damaged[position] ^= 0x04
            try writeBytes(damaged, to: path)
            #expect(throws: WALError.self, "flip at \(position)") { try SnapshotReader(path: path).verify() }
        }
        for length in 0..<original.count {
            try writeBytes(Array(original[..<length]), to: path)
            #expect(throws: WALError.self, "cut at \(length)") { try SnapshotReader(path: path).verify() }
        }
        try writeBytes(original + [0], to: path)
        #expect(throws: WALError.self) { try SnapshotReader(path: path).verify() }
        try writeBytes(original, to: path)
        #expect(try SnapshotReader(path: path).verify() == 12_000)
    }

    @Test func anAbandonedWriterLeavesNoSnapshot() throws {
        let dir = TemporaryDirectory()
        let writer = try SnapshotWriter(directory: dir.path, metadata: Self.metadata)
        try writer.write([1, 2, 3])
        writer.abandon()
        #expect(try SnapshotStore(directory: dir.path).list().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}

@Suite struct NodeStorageTests {
    private func open(_ dir: String) async throws -> (NodeStorage, StorageRecovery) {
        var options = StorageOptions()
        options.wal = smallOptions()
        return try await NodeStorage.open(directory: dir, options: options, logger: quietLogger)
    }

    /// A log of 300 entries with snapshots at 100, 200 and 250 (so the newest two are kept).
    private func populate(_ dir: String) async throws {
        let (storage, _) = try await open(dir)
        for index in stride(from: UInt64(1), through: 300, by: 10) {
            try await storage.wal.append(entries(index...(index + 9)))
            if [100, 200, 250].contains(index + 9) {
                try await storage.saveSnapshot(SnapshotMetadata(index: LogIndex(index + 9), term: Term(1))) { writer throws(WALError) in
                    try writer.write(Array("state at \(index + 9)".utf8))
                }
            }
        }
        await storage.close()
    }

    @Test func keepsTwoSnapshotsAndCompactsOnlyBehindTheOlder() async throws {
        let dir = TemporaryDirectory()
        try await populate(dir.path)
        let (storage, recovery) = try await open(dir.path)
        #expect(try storage.snapshots.list().map(\.index) == [LogIndex(250), LogIndex(200)])
        #expect(recovery.snapshot?.index == LogIndex(250))
        #expect(storage.wal.firstIndex > LogIndex(1))
        #expect(storage.wal.firstIndex <= LogIndex(201))
        await storage.close()
    }

    @Test func aCorruptNewestSnapshotFallsBackToTheOlderOne() async throws {
        let dir = TemporaryDirectory()
        try await populate(dir.path)
        let newest = dir.path + "/snap/00000000000000000250-00000000000000000001.snap"
        var bytes = try readBytes(newest)
        bytes[bytes.count - 40] ^= 0xff
        try writeBytes(bytes, to: newest)
        let (storage, recovery) = try await open(dir.path)
        #expect(recovery.snapshot?.index == LogIndex(200))
        #expect(recovery.rejectedSnapshots.count == 1)
        #expect(recovery.rejectedSnapshots[0].contains("250"))
        #expect(try storage.wal.entries(in: LogIndex(201)...LogIndex(300)) == entries(201...300))
        await storage.close()
    }

    @Test func refusesToStartWhenNoSnapshotJoinsTheLog() async throws {
        let dir = TemporaryDirectory()
        try await populate(dir.path)
        // Compact the WAL past the older snapshot, then corrupt the newer one.
        let (storage, _) = try await open(dir.path)
        for index in stride(from: UInt64(301), through: 500, by: 10) { try await storage.wal.append(entries(index...(index + 9))) }
        try await storage.wal.compact(through: LogIndex(450))
        let first = storage.wal.firstIndex.rawValue
        #expect(first > 201)
        await storage.close()
        let newest = dir.path + "/snap/00000000000000000250-00000000000000000001.snap"
        try writeBytes(Array(try readBytes(newest).dropLast(10)), to: newest)
        await #expect {
            _ = try await open(dir.path)
        } throws: { error in
            let text = "\(error)"
            return text.contains("entries 201...\(first - 1) exist nowhere") && text.contains("250")
        }
    }

    /// A leader applies, and may snapshot, entries its followers made durable before its own fsync ends; a
    /// power cut then leaves a snapshot past the end of the log. The log starts again after the snapshot.
    @Test func aLogThatEndsBeforeTheSnapshotStartsAgainAfterIt() async throws {
        let dir = TemporaryDirectory()
        try await populate(dir.path)
        // The power cut: of the log's segments only the oldest one's header survives.
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/wal").filter { $0.hasSuffix(".wal") }.sorted()
        for name in segments.dropFirst() { try FileManager.default.removeItem(atPath: dir.path + "/wal/" + name) }
        let oldest = dir.path + "/wal/" + segments[0]
        try writeBytes(Array(try readBytes(oldest).prefix(SegmentHeader.size)), to: oldest)
        let (storage, recovery) = try await open(dir.path)
        #expect(recovery.snapshot?.index == LogIndex(250))
        #expect(storage.wal.firstIndex == LogIndex(251))
        #expect(storage.wal.lastIndex == LogIndex(250))
        try await storage.wal.append(entries(251...260))
        await storage.close()
        let (reopened, _) = try await open(dir.path)
        #expect(try reopened.wal.entries(in: LogIndex(251)...LogIndex(260)) == entries(251...260))
        await reopened.close()
    }

    @Test func refusesALogThatStartsLateWithNoSnapshot() async throws {
        let dir = TemporaryDirectory()
        try await populate(dir.path)
        try FileManager.default.removeItem(atPath: dir.path + "/snap")
        await #expect { _ = try await open(dir.path) } throws: { "\($0)".contains("there is no snapshot") }
    }
}
