import Dispatch
import Foundation
import SkiffRaft
@testable import SkiffStorage
import Synchronization
import Testing

/// The writer's two stages (write, then sync) and the next segment prepared ahead, driven step by step by
/// holding the WAL's file writes and syncs.
@Suite struct WriterPipelineTests {
    /// Blocks the WAL's thread at a hook until the test releases it.
    final class Gate: Sendable {
        let armed = Atomic<Bool>(false)
        let entered = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)

        /// Holds the first call made while armed (and disarms), so exactly one step waits.
        func pass() {
            guard armed.compareExchange(expected: true, desired: false, ordering: .sequentiallyConsistent).exchanged else { return }
            entered.signal()
            release.wait()
        }

        func awaitEntered() throws {
            guard entered.wait(timeout: .now() + 10) == .success else { throw Timeout("the WAL never reached the gate") }
        }
    }

    /// The requests answered so far, in the order the WAL answered them.
    final class Answers: Sendable { let names = Mutex<[String]>([]) }

    struct Timeout: Error { var what: String; init(_ what: String) { self.what = what } }

    /// A WAL thread carries its name (what `top -H` shows) and runs under SCHED_BATCH (policy 3 in
    /// `/proc/.../stat`, field 41), so that waking it does not preempt the thread that woke it.
    @Test func aWALThreadIsNamedAndRunsAsBatch() throws {
        let seen = Mutex<(comm: String, stat: String)?>(nil)
        let done = DispatchSemaphore(value: 0)
        WriterThread(name: "skiff-wal-test") {
            let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
            seen.withLock { $0 = (read("/proc/thread-self/comm"), read("/proc/thread-self/stat")) }
            done.signal()
        }.start()
        guard done.wait(timeout: .now() + 10) == .success else { throw Timeout("the thread never ran") }
        let (comm, stat) = try #require(seen.withLock { $0 })
        #expect(comm == "skiff-wal-test\n")
        // The fields after the name in parentheses start at field 3 (state); policy is field 41.
        let fields = stat[stat.range(of: ") ")!.upperBound...].split(separator: " ")
        #expect(fields.count > 38 && fields[38] == "3", "\(stat)")
    }

    /// The tests' payloads compress well; these tests need frames as large as their entries.
    func uncompressed(_ options: WALOptions) -> WALOptions {
        var options = options
        options.compressionThresholdBytes = 1 << 30
        return options
    }

    /// Polls `condition` for up to 10 s.
    func eventually(_ what: String, _ condition: () -> Bool) throws {
        for _ in 0..<1000 where !condition() { usleep(10_000) }
        guard condition() else { throw Timeout(what) }
    }

    @Test func aLargeGroupIsSyncedWhileTheNextIsWrittenAndAnswersKeepTheirOrder() async throws {
        let dir = TemporaryDirectory()
        let files = InstrumentedFileSystem()
        let (writeGate, syncGate) = (Gate(), Gate())
        files.beforeWrite.withLock { $0 = { path in if path.hasSuffix(".wal") { writeGate.pass() } } }
        files.beforeSync.withLock { $0 = { path in if path.hasSuffix(".wal") { syncGate.pass() } } }
        let options = uncompressed(smallOptions(segmentBytes: 4 << 20))
        let (wal, _) = try WAL.open(directory: dir.path, options: options, fileSystem: files, logger: quietLogger)
        let answered = Answers()
        func record(_ name: String) -> @Sendable (Result<Void, WALError>) -> Void {
            { result in answered.names.withLock { $0.append(name + (result.isSuccess ? "" : " failed")) } }
        }
        let framesWritten = { files.writes.withLock { $0.filter { $0.path.hasSuffix(".wal") }.count } }

        // A (100 KiB, above the hand-over size) is held in its write while B queues behind it.
        writeGate.armed.store(true, ordering: .sequentiallyConsistent)
        syncGate.armed.store(true, ordering: .sequentiallyConsistent)
        let framesBefore = framesWritten()
        wal.append(entries(1...10, size: 10 << 10), hardState: nil, done: record("A"))
        try writeGate.awaitEntered()
        wal.append(entries(11...20, size: 10 << 10), hardState: nil, done: record("B"))
        writeGate.release.signal()

        // A goes to the sync stage and is held in its fdatasync; the writer meanwhile writes B.
        try syncGate.awaitEntered()
        try eventually("B written while A syncs") { framesWritten() == framesBefore + 2 }
        #expect(answered.names.withLock { $0 }.isEmpty)

        // A truncation into B, which is written but not durable, knows the term at its cut and waits for it.
        wal.truncate(after: LogIndex(15), done: record("truncate"))
        wal.append(entries(16...17, term: 2), hardState: nil, done: record("C"))
        usleep(50_000)
        #expect(answered.names.withLock { $0 }.isEmpty)
        syncGate.release.signal()
        try eventually("every request answered") { answered.names.withLock { $0.count } == 4 }
        #expect(answered.names.withLock { $0 } == ["A", "B", "truncate", "C"])
        #expect(try allEntries(wal) == entries(1...10, size: 10 << 10) + entries(11...15, size: 10 << 10) + entries(16...17, term: 2))
        await wal.close()
        try await withWAL(dir.path, options: options) { reopened, _ async throws in
            #expect(try allEntries(reopened) == entries(1...10, size: 10 << 10) + entries(11...15, size: 10 << 10) + entries(16...17, term: 2))
        }
    }

    /// A WAL on an instrumented file system, with gates on its segment writes and syncs.
    struct GatedWAL {
        let wal: WAL
        let files = InstrumentedFileSystem()
        let writeGate = Gate(), syncGate = Gate()
        let answered = Answers()

        init(_ directory: String, options: WALOptions) throws {
            let (writeGate, syncGate) = (writeGate, syncGate)
            files.beforeWrite.withLock { $0 = { path in if path.hasSuffix(".wal") { writeGate.pass() } } }
            files.beforeSync.withLock { $0 = { path in if path.hasSuffix(".wal") { syncGate.pass() } } }
            (wal, _) = try WAL.open(directory: directory, options: options, fileSystem: files, logger: quietLogger)
        }

        /// The segment writes so far.
        var frames: [InstrumentedFileSystem.Write] { files.writes.withLock { $0.filter { $0.path.hasSuffix(".wal") } } }

        /// Appends `a`, queues `b` while `a` is being written, and returns once `a` is held in its fdatasync.
        func holdInSync(_ a: [Entry], queueing b: [Entry]) throws {
            writeGate.armed.store(true, ordering: .sequentiallyConsistent)
            syncGate.armed.store(true, ordering: .sequentiallyConsistent)
            wal.append(a, hardState: nil) { _ in answered.names.withLock { $0.append("A") } }
            try writeGate.awaitEntered()
            wal.append(b, hardState: nil) { _ in answered.names.withLock { $0.append("B") } }
            writeGate.release.signal()
            try syncGate.awaitEntered()
        }
    }

    /// What a power cut can leave while the writer is a group ahead of the sync: the disk kept the frame written
    /// during the sync (B) and tore the one being synced (A). Neither was acknowledged, so open cuts both off.
    /// The same damage to A after a later frame (C) was written behind A's finished sync is corruption.
    @Test func aFrameTornDuringItsSyncIsCutOffWithTheFramesWrittenBehindIt() async throws {
        let dir = TemporaryDirectory()
        let options = uncompressed(smallOptions(segmentBytes: 4 << 20))
        let gated = try GatedWAL(dir.path, options: options)
        try await gated.wal.append(entries(1...2))
        let before = gated.frames.count
        try gated.holdInSync(entries(3...12, size: 10 << 10), queueing: entries(13...14))
        try eventually("B written while A syncs") { gated.frames.count == before + 2 }
        let (a, b) = (gated.frames[before], gated.frames[before + 1])
        #expect(b.offset == a.offset + Int64(a.count))
        #expect(try Self.unsyncedBefore(frameAt: b.offset, in: b.path) == (a.count + 4095) / 4096 * 4096, "B says A was not yet durable")
        let image = Self.tear(try readBytes(b.path), at: a.offset)

        gated.syncGate.release.signal()
        try eventually("A and B answered") { gated.answered.names.withLock { $0 } == ["A", "B"] }
        try await gated.wal.append(entries(15...15))
        let c = gated.frames.last!
        #expect(try Self.unsyncedBefore(frameAt: c.offset, in: c.path) < Int(c.offset - a.offset), "C says A was durable")
        await gated.wal.close()

        let torn = TemporaryDirectory()
        try writeBytes(image, to: torn.file((b.path as NSString).lastPathComponent))
        try await withWAL(torn.path, options: options) { reopened, report async throws in
            #expect(report.cutTail?.offset == a.offset)
            #expect(report.cutTail?.laterFrames == 1)
            #expect(try allEntries(reopened) == entries(1...2))
        }
        let damaged = TemporaryDirectory()
        try writeBytes(Self.tear(try readBytes(c.path), at: a.offset), to: damaged.file((c.path as NSString).lastPathComponent))
        let error = #expect(throws: WALError.self) { _ = try WAL.open(directory: damaged.path, options: options, logger: quietLogger) }
        #expect(error?.code == .checksumMismatch && error?.offset == a.offset, "\(String(describing: error))")
    }

    /// A frame can say at most `FrameHeader.unsyncedBytesMax` unsynced bytes behind it (here lowered to 512 KiB);
    /// with more in flight, the writer waits for the sync before it writes the next frame.
    @Test func theWriterWaitsForASyncRatherThanRunMoreThanAFrameCanSayAhead() async throws {
        let dir = TemporaryDirectory()
        var options = uncompressed(smallOptions(segmentBytes: 4 << 20))
        options.unsyncedBytesMax = 512 << 10
        let gated = try GatedWAL(dir.path, options: options)
        let before = gated.frames.count
        try gated.holdInSync(entries(1...60, size: 10 << 10), queueing: entries(61...61))
        #expect(gated.frames[before].count > options.unsyncedBytesMax)
        usleep(200_000)
        #expect(gated.frames.count == before + 1, "B was written while more than a frame can say was unsynced")
        gated.syncGate.release.signal()
        try eventually("A and B answered") { gated.answered.names.withLock { $0 } == ["A", "B"] }
        let b = gated.frames[before + 1]
        #expect(try Self.unsyncedBefore(frameAt: b.offset, in: b.path) == 0)
        await gated.wal.close()
    }

    /// The *unsynced before* field of the frame at `offset` of the segment at `path`, in bytes.
    static func unsyncedBefore(frameAt offset: Int64, in path: String) throws -> Int {
        let bytes = try readBytes(path)
        return Int(UInt16(bytes[Int(offset) + 6]) | UInt16(bytes[Int(offset) + 7]) << 8) * FrameHeader.unsyncedUnit
    }

    /// `bytes` with 4 KiB garbled from 8 KiB into the frame at `offset`, as a write torn by a power cut.
    static func tear(_ bytes: [UInt8], at offset: Int64) -> [UInt8] {
        var bytes = bytes
        for position in Int(offset) + 8192..<Int(offset) + 12288 { bytes[position] = 0xA5 }
        return bytes
    }

    // Swift 6.3.1 crashes (signal 11, splitting the coroutine) when it optimises this function or its
    // appending loop, as `Tools/dev sweep` does; unoptimised they compile. Remove once a compiler builds them.
    @_optimize(none)
    @Test func nextSegmentIsZeroFilledAheadOnlyWhileSyncsAreSmall() async throws {
        let dir = TemporaryDirectory()
        let files = InstrumentedFileSystem()
        let segmentBytes = 256 << 10
        let options = uncompressed(smallOptions(segmentBytes: segmentBytes, preallocate: true))
        let (wal, _) = try WAL.open(directory: dir.path, options: options, fileSystem: files, logger: quietLogger)
        let zeroWrites = { files.writes.withLock { $0.filter(\.allZero) } }
        let zerosAtOpen = zeroWrites().count
        var next: UInt64 = 1

        // Small syncs (1 KiB each): every later segment is filled by the helper, under the spare's name.
        next = try await Self.append(to: wal, in: dir.path, untilSegments: 4, batch: 1, size: 1 << 10, from: next)
        let small = zeroWrites()[zerosAtOpen...]
        #expect(!small.isEmpty)
        #expect(small.allSatisfy { $0.path.hasSuffix("/" + SpareSegment.fileName) })
        #expect(small.reduce(0) { $0 + $1.count } >= 2 * segmentBytes)

        // Large syncs (160 KiB each): once a whole segment has seen them, no segment is filled any more.
        next = try await Self.append(to: wal, in: dir.path, untilSegments: 6, batch: 16, size: 10 << 10, from: next)
        let zerosBefore = zeroWrites().count
        next = try await Self.append(to: wal, in: dir.path, untilSegments: 9, batch: 16, size: 10 << 10, from: next)
        #expect(zeroWrites().count == zerosBefore)
        await wal.close()

        #expect(!FileManager.default.fileExists(atPath: dir.file(SpareSegment.fileName)))  // close removed it
        FileManager.default.createFile(atPath: dir.file(SpareSegment.fileName), contents: Data(count: 4096))  // as a crash leaves one
        try await withWAL(dir.path, options: options) { reopened, report async throws in
            #expect(report.removedFiles == [SpareSegment.fileName])
            #expect(reopened.lastIndex == LogIndex(next - 1))
            #expect(try reopened.entries(in: LogIndex(next - 1)...LogIndex(next - 1)) == entries((next - 1)...(next - 1), size: 10 << 10))
        }
    }

    /// Appends batches from index `next` until the directory holds `segments` segment files; returns the
    /// index after the last one appended. Unoptimised for the same compiler crash as the test above.
    @_optimize(none)
    static func append(to wal: WAL, in directory: String, untilSegments segments: Int, batch: Int, size: Int,
                       from next: UInt64) async throws -> UInt64 {
        var next = next
        while try segmentFiles(directory).count < segments {
            try await wal.append(entries(next...(next + UInt64(batch) - 1), size: size))
            next += UInt64(batch)
        }
        return next
    }
}

extension Result {
    var isSuccess: Bool { if case .success = self { true } else { false } }
}
