import Foundation
import SkiffExternal
import SkiffRaft
import Testing

/// `skiff-wal external` on a store written through `ExternalLog`: what each slot is, and what readers make of it.
@Suite struct ExternalToolTests {
    static func entry(_ index: UInt64, term: UInt64) -> Entry {
        Entry(index: LogIndex(index), term: Term(term), payload: Array("e\(index)".utf8))
    }

    @Test func showsASnapshotRecordAndTheLogItStartsAgain() async throws {
        let directory = TemporaryDirectory()
        let store = DirectoryExternalStore(root: directory.path)
        try store.createLayout()
        let old = ExternalLog(store: store, keepsEntries: false)
        var view = try await old.attach(asLeaderOf: Term(2))
        #expect(try await old.write(term: Term(2), previousIndex: .zero, previousTerm: .zero, entries: [Self.entry(1, term: 2)],
                                    commit: .zero, slot: view.nextSlot))
        let leader = ExternalLog(store: store, keepsEntries: false)
        view = try await leader.attach(asLeaderOf: Term(3))
        #expect(try await leader.writeSnapshot(term: Term(3), index: LogIndex(7), snapshotTerm: Term(2), slot: view.nextSlot))
        let (status, output, _) = try runTool("skiff-wal", ["external", directory.path])
        #expect(status == 0)
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.first == "owner: none recorded")
        #expect(lines.contains("slot \(view.nextSlot)  snapshot term 3: the log continues from the stored snapshot at 7/2  counts"))
        #expect(lines.contains { $0.hasPrefix("log: last 7/2, written by the leader of term 3;") && $0.contains("committed through at least 7") })
    }

    @Test func listsEverySlotWithItsFateAndRefusesACorruptOne() async throws {
        let directory = TemporaryDirectory()
        let store = DirectoryExternalStore(root: directory.path)
        try store.createLayout()
        let leader = ExternalLog(store: store, keepsEntries: false)
        let view = try await leader.attach(asLeaderOf: Term(2))
        #expect(try await leader.write(term: Term(2), previousIndex: .zero, previousTerm: .zero,
                                       entries: [Self.entry(1, term: 2), Self.entry(2, term: 2)], commit: .zero, slot: view.nextSlot))
        _ = try await ExternalLog(store: store, keepsEntries: false).seal(term: Term(2))
        #expect(try await leader.write(term: Term(2), previousIndex: LogIndex(2), previousTerm: Term(2),
                                       entries: [Self.entry(3, term: 2)], commit: LogIndex(2), slot: view.nextSlot + 2))
        let successor = ExternalLog(store: store, keepsEntries: false)
        let next = try await successor.attach(asLeaderOf: Term(3))
        #expect(try await successor.write(term: Term(3), previousIndex: LogIndex(5), previousTerm: Term(3),
                                          entries: [Self.entry(6, term: 3)], commit: LogIndex(2), slot: next.nextSlot))  // unjoined
        #expect(try await successor.write(term: Term(3), previousIndex: LogIndex(2), previousTerm: Term(2),
                                          entries: [Self.entry(3, term: 3)], commit: LogIndex(2), slot: next.nextSlot + 2))  // after a gap

        let (status, output, _) = try runTool("skiff-wal", ["external", directory.path, "--entries"])
        #expect(status == 0)
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.contains("slot 1  batch term 2 after 0/0: 1...2 (2 entries)  counts"))
        #expect(lines.contains { $0.hasSuffix("2 term 2 \"e2\"") })
        #expect(lines.contains("slot 2  seal term 2"))
        #expect(lines.contains("slot 3  batch term 2 after 2/2: 3...3 (1 entry)  fenced"))
        #expect(lines.contains("slot 5  batch term 3 after 5/3: 6...6 (1 entry)  unjoined"))
        #expect(lines.contains("slot 7  batch term 3 after 2/2: 3...3 (1 entry)  (after a gap at slot 6: not read by nodes yet)"))
        #expect(lines.suffix(2) == ["log: last 2/2, written by the leader of term 2; records of terms below 3 no longer count; "
                                    + "committed through at least 0; next slot 6", "snapshots: none"])

        var damaged = try Array(Data(contentsOf: URL(fileURLWithPath: directory.path + "/log/00000000000000000001")))
        damaged[Int(DirectoryExternalStore.offset(of: 1)) + 12] ^= 0xFF  // in the record's term, after its 4-byte length and magic
        try Data(damaged).write(to: URL(fileURLWithPath: directory.path + "/log/00000000000000000001"))
        let (corruptStatus, corruptOutput, _) = try runTool("skiff-wal", ["external", directory.path])
        #expect(corruptStatus == 1)
        #expect(corruptOutput.contains("slot 1  CORRUPT"))
        try Data("skiff-external-store 1\ncluster".utf8).write(to: URL(fileURLWithPath: directory.path + "/owner"))
        let (ownerStatus, ownerOutput, _) = try runTool("skiff-wal", ["external", directory.path])
        #expect(ownerStatus == 1 && ownerOutput.hasPrefix("owner  CORRUPT"))
        let (missingStatus, _, missingError) = try runTool("skiff-wal", ["external", directory.path + "/nothing"])
        #expect(missingStatus == 2 && missingError.contains("not an external log directory"))
    }

    /// After a trim the tool starts where nodes start, at the newest checkpoint, and lists the snapshots kept.
    @Test func startsAtTheCheckpointAndListsSnapshots() async throws {
        let directory = TemporaryDirectory()
        let store = DirectoryExternalStore(root: directory.path)
        try store.createLayout()
        let leader = ExternalLog(store: store, keepsEntries: false)
        let view = try await leader.attach(asLeaderOf: Term(2))
        for index: UInt64 in 1...4 {
            #expect(try await leader.write(term: Term(2), previousIndex: LogIndex(index - 1), previousTerm: Term(index == 1 ? 0 : 2),
                                           entries: [Self.entry(index, term: 2)], commit: LogIndex(index - 1), slot: view.nextSlot + index - 1))
        }
        let snapshot = ExternalSnapshotID(index: 3, term: 2)
        try await store.writeSnapshotChunk(snapshot, offset: 0, bytes: Array("not checked here".utf8))
        try await store.publishSnapshot(snapshot)
        // The slot after the batch that ended at 2 (slot 2 of the store: the seal took slot 0).
        try await leader.trim(to: ExternalCheckpoint(slot: view.nextSlot + 2, floor: Term(2), lastWriterTerm: Term(2),
                                                     baseIndex: LogIndex(2), baseTerm: Term(2)))
        try await ExternalStoreOwner(cluster: "tool", uuid: "11111111-2222-8333-8444-555555555555", store: "AAAAAAAA-2222-8333-8444-555555555555")!
            .claim(store)
        let (status, output, _) = try runTool("skiff-wal", ["external", directory.path])
        #expect(status == 0)
        #expect(output.split(separator: "\n").map(String.init) == [
            "owner: cluster tool (11111111-2222-8333-8444-555555555555), store aaaaaaaa-2222-8333-8444-555555555555",
            "checkpoint at slot 3: log trimmed through 2/2, written by the leader of term 2; records of terms below 2 no longer count",
            "slot 3  batch term 2 after 2/2: 3...3 (1 entry)  counts",
            "slot 4  batch term 2 after 3/2: 4...4 (1 entry)  counts",
            "log: last 4/2, written by the leader of term 2; records of terms below 2 no longer count; committed through at least 3; next slot 5",
            "snapshots: 3/2",
        ])
    }
}
