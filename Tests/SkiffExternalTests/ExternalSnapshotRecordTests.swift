import Foundation
import Logging
import SkiffExternal
import SkiffRaft
import SkiffStorage
import Testing

/// Snapshot records: how a leader whose log was compacted past the end of the external log (the store was
/// new, or missing while the cluster ran) continues it, as Raft's InstallSnapshot continues a follower's.
@Suite struct ExternalSnapshotRecordTests {
    func snapshot(_ term: UInt64, at index: UInt64, of snapshotTerm: UInt64) -> ExternalRecord {
        .snapshot(term: Term(term), index: LogIndex(index), snapshotTerm: Term(snapshotTerm))
    }

    @Test func aLogThatEndsBeforeTheSnapshotIsReplacedByIt() throws {
        var view = ExternalLogView(keepsEntries: true)
        try view.apply(batch(2, after: (0, 0), [2, 2, 2]))
        try view.apply(.seal(term: Term(3)))
        #expect(try view.apply(snapshot(4, at: 10, of: 3)))
        #expect(view.baseIndex == LogIndex(10) && view.baseTerm == Term(3) && view.entries.isEmpty)
        #expect(view.lastIndex == LogIndex(10) && view.lastTerm == Term(3) && view.committedIndex == LogIndex(10))
        #expect(view.floor == Term(4) && view.lastWriterTerm == Term(4) && view.writerLastIndex == LogIndex(10))
        // The leader's next batch continues from the snapshot.
        #expect(try view.apply(batch(4, after: (10, 3), [4])))
        #expect(view.entries.map(\.index) == [LogIndex(11)] && view.lastTerm == Term(4))
    }

    @Test func aLogThatHoldsTheSnapshotsLastEntryKeepsWhatFollows() throws {
        var view = ExternalLogView(keepsEntries: true)
        try view.apply(batch(2, after: (0, 0), [2, 2, 2, 2]))
        #expect(try view.apply(snapshot(3, at: 2, of: 2)))
        #expect(view.baseIndex == .zero && view.entries.map(\.index.rawValue) == [1, 2, 3, 4])
        #expect(view.floor == Term(3) && view.writerLastIndex == LogIndex(2) && view.committedIndex == LogIndex(2))
    }

    @Test func aFencedOrBackwardSnapshotDoesNotCountAndAMalformedOneIsRefused() throws {
        var view = ExternalLogView(keepsEntries: true)
        try view.apply(.seal(term: Term(4)))
        #expect(try !view.apply(snapshot(4, at: 10, of: 3)))  // its writer's term is sealed
        #expect(try view.apply(snapshot(5, at: 10, of: 3)))
        #expect(try !view.apply(snapshot(6, at: 8, of: 3)))  // would move the base back
        #expect(view.baseIndex == LogIndex(10) && view.floor == Term(5) && view.unjoinedBatches == 1)
        #expect(throws: ExternalLogError.self) { try view.apply(snapshot(6, at: 12, of: 7)) }  // a snapshot of a later term
        #expect(throws: ExternalLogError.self) { try view.apply(snapshot(6, at: 0, of: 0)) }
    }

    /// A committed entry is never replaced: a snapshot record that disagrees with one does not count.
    @Test func aSnapshotThatContradictsACommittedEntryDoesNotCount() throws {
        var view = ExternalLogView(keepsEntries: true)
        try view.apply(.batch(term: Term(2), previousIndex: .zero, previousTerm: .zero, entries: entries(from: 1, terms: [2, 2, 2]), commit: LogIndex(2)))
        #expect(try !view.apply(snapshot(3, at: 2, of: 1)))
        #expect(view.entries.count == 3 && view.floor == Term(2))
        #expect(try view.apply(snapshot(3, at: 4, of: 3)))  // past the commit: the uncommitted entry 3 goes with the rest
        #expect(view.baseIndex == LogIndex(4) && view.entries.isEmpty)
    }

    /// In witness mode the view is a voter's log: after a snapshot record, a candidate that lacks the
    /// snapshot's entries is refused, and one that holds them gets the vote.
    @Test func aWitnessVoteIsJudgedAgainstTheSnapshot() throws {
        var view = ExternalLogView(keepsEntries: false)
        try view.apply(batch(1, after: (0, 0), [1]))
        try view.apply(snapshot(2, at: 10, of: 2))
        #expect(try !view.apply(.vote(term: Term(3), candidate: NodeID(1), lastIndex: LogIndex(9), lastTerm: Term(2))))
        #expect(try view.apply(.vote(term: Term(3), candidate: NodeID(2), lastIndex: LogIndex(10), lastTerm: Term(2))))
    }

    /// Through a real directory store: a leader of term 3 continues a log that ended at 2 from its snapshot
    /// at 7, another reader sees the same, a leader of term 2 that was deposed is fenced, and a node
    /// rebuilt from the store gets the snapshot and the entries after it.
    @Test func aLeaderContinuesAStoreThatEndsBeforeItsSnapshotAndANodeIsRebuiltFromIt() async throws {
        let directory = StoreDirectory()
        let store = try directory.store()
        let old = ExternalLog(store: store, keepsEntries: false)
        var view = try await old.attach(asLeaderOf: Term(2))
        #expect(try await old.write(term: Term(2), previousIndex: .zero, previousTerm: .zero, entries: entries(from: 1, terms: [2, 2]),
                                    commit: .zero, slot: view.nextSlot))

        let scratch = directory.path + "-scratch", target = directory.path + "-node"
        defer { for path in [scratch, target] { try? FileManager.default.removeItem(atPath: path) } }
        let writer = try SnapshotStore(directory: scratch).writer(for: SnapshotMetadata(index: LogIndex(7), term: Term(2)))
        try writer.write(Array("state at 7".utf8))
        try await ExternalSnapshotTransfer.upload(file: try writer.finish(), as: ExternalSnapshotID(index: 7, term: 2), to: store)

        let leader = ExternalLog(store: store, keepsEntries: false)
        view = try await leader.attach(asLeaderOf: Term(3))
        #expect(view.lastIndex == LogIndex(2))
        #expect(try await leader.writeSnapshot(term: Term(3), index: LogIndex(7), snapshotTerm: Term(2), slot: view.nextSlot))
        #expect(try await leader.write(term: Term(3), previousIndex: LogIndex(7), previousTerm: Term(2), entries: entries(from: 8, terms: [3]),
                                       commit: LogIndex(8), slot: view.nextSlot + 1))
        await #expect(throws: ExternalLogError.self) {
            try await old.write(term: Term(2), previousIndex: LogIndex(2), previousTerm: Term(2), entries: entries(from: 3, terms: [2]),
                                commit: .zero, slot: view.nextSlot)
        }

        let reader = try await ExternalLog(store: store, keepsEntries: true).catchUp()
        #expect(reader.baseIndex == LogIndex(7) && reader.entries == entries(from: 8, terms: [3]) && reader.committedIndex == LogIndex(8))

        let report = try await ExternalRestore.rebuild(directory: target, from: store, logger: Logger(label: "test"))
        #expect(report.snapshot == ExternalSnapshotID(index: 7, term: 2) && report.entries == 1 && report.committedIndex == LogIndex(8))
        let (storage, recovery) = try await NodeStorage.open(directory: target, logger: Logger(label: "test"))
        #expect(recovery.snapshot?.index == LogIndex(7))
        #expect(try storage.wal.entries(in: LogIndex(8)...LogIndex(8)) == entries(from: 8, terms: [3]))
        await storage.close()
    }
}
