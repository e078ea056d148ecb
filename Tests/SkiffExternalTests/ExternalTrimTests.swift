import Foundation
import Logging
import SkiffExternal
import SkiffRaft
import SkiffStorage
import Testing

/// Checkpoints, trimming, snapshots in the store, and rebuilding a node from the store alone.
@Suite struct ExternalTrimTests {
    /// A store where a leader of term 2 wrote 1...3, a leader of term 3 (after a seal of 2) wrote 4...6, one
    /// batch each, committing as it went. Returns the term 3 leader, its attach view, and the store.
    static func twoLeaders(in directory: StoreDirectory) async throws -> (ExternalLog, ExternalLogView, DirectoryExternalStore) {
        let store = try directory.store()
        let first = ExternalLog(store: store, keepsEntries: false)
        var view = try await first.attach(asLeaderOf: Term(2))
        for index: UInt64 in 1...3 {
            #expect(try await first.write(term: Term(2), previousIndex: LogIndex(index - 1), previousTerm: Term(index == 1 ? 0 : 2),
                                          entries: entries(from: index, terms: [2]), commit: LogIndex(index - 1), slot: view.nextSlot + index - 1))
        }
        _ = try await ExternalLog(store: store, keepsEntries: false).seal(term: Term(2))
        let second = ExternalLog(store: store, keepsEntries: false)
        view = try await second.attach(asLeaderOf: Term(3))
        for index: UInt64 in 4...6 {
            #expect(try await second.write(term: Term(3), previousIndex: LogIndex(index - 1), previousTerm: Term(index == 4 ? 2 : 3),
                                           entries: entries(from: index, terms: [3]), commit: LogIndex(index - 2), slot: view.nextSlot + index - 4))
        }
        return (second, view, store)
    }

    static func publish(_ snapshot: ExternalSnapshotID, _ bytes: [UInt8], to store: DirectoryExternalStore) async throws {
        try await store.writeSnapshotChunk(snapshot, offset: 0, bytes: bytes)
        try await store.publishSnapshot(snapshot)
    }

    @Test func checkpointsRoundTripAndADamagedOrMovedOneIsRefused() throws {
        let checkpoint = ExternalCheckpoint(slot: 9, floor: Term(4), lastWriterTerm: Term(3), baseIndex: LogIndex(20), baseTerm: Term(2))
        let bytes = ExternalCheckpointCoding.encode(checkpoint)
        #expect(try ExternalCheckpointCoding.decode(bytes, slot: 9) == checkpoint)
        #expect(throws: ExternalLogError.self) { try ExternalCheckpointCoding.decode(bytes, slot: 10) }
        for position in [0, 20, bytes.count - 1] {
            var damaged = bytes
            damaged[position] ^= 0x10
            #expect(throws: ExternalLogError.self) { try ExternalCheckpointCoding.decode(damaged, slot: 9) }
        }
        #expect(throws: ExternalLogError.self) { try ExternalCheckpointCoding.decode(Array(bytes.dropLast()), slot: 9) }
    }

    /// A reader that starts at the checkpoint ends in the state of one that read every slot, less the
    /// entries up to the base; the trim removed the slots, checkpoints and snapshots before it.
    @Test func aReaderFromTheCheckpointReachesTheViewOfOneThatReadEverySlot() async throws {
        let directory = StoreDirectory()
        let (leader, attached, store) = try await Self.twoLeaders(in: directory)
        let whole = try await ExternalLog(store: store, keepsEntries: true).catchUp()
        try await Self.publish(ExternalSnapshotID(index: 2, term: 2), [1], to: store)
        try await Self.publish(ExternalSnapshotID(index: 5, term: 3), [2], to: store)
        // After the term 3 leader's batch that ended at 5.
        let checkpoint = ExternalCheckpoint(slot: attached.nextSlot + 2, floor: Term(3), lastWriterTerm: Term(3), baseIndex: LogIndex(5), baseTerm: Term(3))
        try await leader.trim(to: checkpoint)

        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path + "/log").sorted()
        #expect(names == [DirectoryExternalStore.name(of: checkpoint.slot)])
        #expect(try await store.snapshots() == [ExternalSnapshotID(index: 5, term: 3)])  // the older one ends before the base
        let trimmed = try await ExternalLog(store: store, keepsEntries: true).catchUp()
        #expect(trimmed.nextSlot == whole.nextSlot && trimmed.floor == whole.floor && trimmed.lastWriterTerm == whole.lastWriterTerm)
        #expect(trimmed.lastIndex == whole.lastIndex && trimmed.lastTerm == whole.lastTerm && trimmed.writerLastIndex == whole.writerLastIndex)
        // The checkpoint knows its base is committed; the batches said only 4 when they were written.
        #expect(whole.committedIndex == LogIndex(4) && trimmed.committedIndex == LogIndex(5))
        #expect(trimmed.entries == whole.entries.filter { $0.index > LogIndex(5) })
        #expect(trimmed.baseIndex == LogIndex(5) && trimmed.term(at: LogIndex(5)) == Term(3))
    }

    @Test func aTrimNeedsASnapshotThatReachesItsBase() async throws {
        let directory = StoreDirectory()
        let (leader, attached, store) = try await Self.twoLeaders(in: directory)
        try await Self.publish(ExternalSnapshotID(index: 4, term: 3), [1], to: store)
        let checkpoint = ExternalCheckpoint(slot: attached.nextSlot + 2, floor: Term(3), lastWriterTerm: Term(3), baseIndex: LogIndex(5), baseTerm: Term(3))
        await #expect(throws: ExternalLogError.self) { try await leader.trim(to: checkpoint) }
        #expect(try await store.newestCheckpointSlot() == nil)
        #expect(try await ExternalLog(store: store, keepsEntries: true).catchUp().entries.count == 6)
    }

    /// A reader that read part of the log before a trim finds the rest gone, and starts again from the
    /// checkpoint; a seal it then writes lands after the end, not in a trimmed slot that nobody reads.
    @Test func aReaderOvertakenByATrimStartsAgainFromTheCheckpoint() async throws {
        let directory = StoreDirectory()
        let (leader, attached, store) = try await Self.twoLeaders(in: directory)
        let early = ExternalLog(store: store, keepsEntries: true)
        #expect(try await early.catchUp().lastIndex == LogIndex(6))
        #expect(try await leader.write(term: Term(3), previousIndex: LogIndex(6), previousTerm: Term(3), entries: entries(from: 7, terms: [3]),
                                       commit: LogIndex(6), slot: attached.nextSlot + 3))
        try await Self.publish(ExternalSnapshotID(index: 7, term: 3), [1], to: store)
        try await leader.trim(to: ExternalCheckpoint(slot: attached.nextSlot + 4, floor: Term(3), lastWriterTerm: Term(3),
                                                     baseIndex: LogIndex(7), baseTerm: Term(3)))

        let sealed = try await early.seal(term: Term(3))
        #expect(sealed.nextSlot == attached.nextSlot + 5 && sealed.baseIndex == LogIndex(7) && sealed.lastIndex == LogIndex(7))
        let fresh = try await ExternalLog(store: store, keepsEntries: true).catchUp()
        #expect(fresh.floor == Term(4) && fresh.nextSlot == sealed.nextSlot)
    }

    /// A write in flight whose slot was trimmed before it landed creates the file anew below the checkpoint,
    /// where no reader looks: it must report that it did not count.
    @Test func aWriteThatLandsInATrimmedSlotDoesNotCount() async throws {
        let directory = StoreDirectory()
        let (leader, attached, store) = try await Self.twoLeaders(in: directory)
        try await Self.publish(ExternalSnapshotID(index: 6, term: 3), [1], to: store)
        try await leader.trim(to: ExternalCheckpoint(slot: attached.nextSlot + 3, floor: Term(3), lastWriterTerm: Term(3),
                                                     baseIndex: LogIndex(6), baseTerm: Term(3)))
        #expect(try await leader.write(term: Term(3), previousIndex: LogIndex(4), previousTerm: Term(3), entries: entries(from: 5, terms: [3]),
                                       commit: LogIndex(4), slot: attached.nextSlot + 1) == false)
        #expect(try await store.readSlot(attached.nextSlot + 1) != nil)  // it is there, below the checkpoint
        #expect(try await ExternalLog(store: store, keepsEntries: true).catchUp().lastIndex == LogIndex(6))
    }

    @Test func aSnapshotIsInvisibleUntilPublishedAndReadsBackInPieces() async throws {
        let directory = StoreDirectory()
        let store = try directory.store()
        let source = directory.path + "-source"
        defer { try? FileManager.default.removeItem(atPath: source) }
        let bytes = (0..<(2_500_000)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try Data(bytes).write(to: URL(fileURLWithPath: source))
        let snapshot = ExternalSnapshotID(index: 40, term: 2)
        try await store.writeSnapshotChunk(snapshot, offset: 0, bytes: [1, 2, 3])
        #expect(try await store.snapshots().isEmpty)
        await store.abandonSnapshot(snapshot)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/tmp").isEmpty)

        try await ExternalSnapshotTransfer.upload(file: source, as: snapshot, to: store)
        #expect(try await store.snapshots() == [snapshot])
        let copy = directory.path + "-copy"
        defer { try? FileManager.default.removeItem(atPath: copy) }
        #expect(try await ExternalSnapshotTransfer.download(snapshot, from: store, to: copy) == UInt64(bytes.count))
        #expect(try Array(Data(contentsOf: URL(fileURLWithPath: copy))) == bytes)
        #expect(try await store.readSnapshot(snapshot, offset: UInt64(bytes.count - 2), count: 10) == Array(bytes.suffix(2)))
        try await store.removeSnapshot(snapshot)
        #expect(try await store.snapshots().isEmpty)
    }
}

/// A store from `twoLeaders` holding a real snapshot file at 5/3 (whose "state" is `body`), trimmed after the
/// term 3 batch that ended at `base`, and a data directory to rebuild into; all removed when done with.
final class RestoreFixture {
    let directory = StoreDirectory()
    let store: DirectoryExternalStore
    var target: String { directory.path + "-node" }
    private var scratch: String { directory.path + "-scratch" }

    init(body: [UInt8], trimmedThrough base: UInt64) async throws {
        let (leader, attached, store) = try await ExternalTrimTests.twoLeaders(in: directory)
        self.store = store
        let writer = try SnapshotStore(directory: scratch).writer(for: SnapshotMetadata(index: LogIndex(5), term: Term(3)))
        try writer.write(body)
        try await ExternalSnapshotTransfer.upload(file: try writer.finish(), as: ExternalSnapshotID(index: 5, term: 3), to: store)
        try await leader.trim(to: ExternalCheckpoint(slot: attached.nextSlot + base - 3, floor: Term(3), lastWriterTerm: Term(3),
                                                     baseIndex: LogIndex(base), baseTerm: Term(3)))
    }

    deinit { for path in [scratch, target] { try? FileManager.default.removeItem(atPath: path) } }
}

/// Rebuilding a data directory from the store.
extension ExternalTrimTests {
    @Test func aNodeIsRebuiltFromTheNewestSnapshotAndTheLogAfterIt() async throws {
        let fixture = try await RestoreFixture(body: Array("state at 5".utf8), trimmedThrough: 4)
        let logger = Logger(label: "test")
        let report = try await ExternalRestore.rebuild(directory: fixture.target, from: fixture.store, logger: logger)
        #expect(report.snapshot == ExternalSnapshotID(index: 5, term: 3) && report.entries == 1 && report.lastIndex == LogIndex(6))
        #expect(report.committedIndex == LogIndex(5) && report.term == Term(3))

        let (storage, recovery) = try await NodeStorage.open(directory: fixture.target, logger: logger)
        #expect(recovery.snapshot?.index == LogIndex(5) && recovery.snapshot?.term == Term(3))
        #expect(storage.wal.hardState == HardState(term: Term(3), vote: .none, commit: LogIndex(5)))
        #expect(try storage.wal.entries(in: LogIndex(6)...LogIndex(6)) == entries(from: 6, terms: [3]))
        await storage.close()
        await #expect(throws: RestoreError.self) { try await ExternalRestore.rebuild(directory: fixture.target, from: fixture.store, logger: logger) }
    }

    @Test func aRebuildRefusesWhenNoSnapshotReachesTheTrimmedLog() async throws {
        let fixture = try await RestoreFixture(body: [1], trimmedThrough: 5)
        // The snapshot file is damaged in the store: the log after it exists, the state before it does not.
        let path = fixture.directory.path + "/snap/" + ExternalSnapshotID(index: 5, term: 3).fileName
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 40] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        await #expect(throws: RestoreError.self) {
            try await ExternalRestore.rebuild(directory: fixture.target, from: fixture.store, logger: Logger(label: "test"))
        }
        #expect(!ExternalRestore.holdsNodeData(fixture.target))
    }
}
