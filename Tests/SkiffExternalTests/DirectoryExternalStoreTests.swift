import Foundation
@testable import SkiffExternal
import SkiffRaft
import Testing

/// A fresh store directory, removed when the test is done with it.
final class StoreDirectory: Sendable {
    let path = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
    deinit { try? FileManager.default.removeItem(atPath: path) }
    /// A store with its directories made, as a claim makes them.
    func store() throws -> DirectoryExternalStore {
        let store = DirectoryExternalStore(root: path)
        try store.createLayout()
        return store
    }
}

/// The directory backend and the fencing built on it, with several writers at once.
@Suite struct DirectoryExternalStoreTests {
    /// What a crashed writer left in `tmp/` goes once untouched long enough; a file written lately, and this
    /// store's own upload however old, stay, and the probe that reads the store's clock leaves nothing.
    @Test func abandonedUploadsAreRemovedOnceUntouchedForLong() async throws {
        let directory = StoreDirectory()
        let store = try directory.store()
        let snapshot = ExternalSnapshotID(index: 7, term: 2)
        try await store.writeSnapshotChunk(snapshot, offset: 0, bytes: [1, 2, 3])  // this process's upload
        let tmp = directory.path + "/tmp"
        for name in ["00000000000000000005-00000000000000000001.snap.dead", "00000000000000000009.1234.dead", "recent.snap.beef"] {
            #expect(FileManager.default.createFile(atPath: "\(tmp)/\(name)", contents: Data([9])))
        }
        let hourAgo = Date(timeIntervalSinceNow: -3600)
        for name in try FileManager.default.contentsOfDirectory(atPath: tmp) where !name.hasPrefix("recent") {
            try FileManager.default.setAttributes([.modificationDate: hourAgo], ofItemAtPath: "\(tmp)/\(name)")
        }
        let report = try await store.removeAbandonedUploads(untouchedFor: 900)
        #expect(report.failures.isEmpty)
        #expect(report.removed.sorted() == ["00000000000000000005-00000000000000000001.snap.dead", "00000000000000000009.1234.dead"])
        let left = try FileManager.default.contentsOfDirectory(atPath: tmp).sorted()
        #expect(left.count == 2 && left.contains("recent.snap.beef") && left.contains { $0.hasPrefix(snapshot.fileName + ".") }, "\(left)")
        try await store.publishSnapshot(snapshot)  // the old-looking upload of this process was left alone
        #expect(try await store.snapshots() == [snapshot])
        #expect(try await store.removeAbandonedUploads(untouchedFor: 900) == AbandonedUploads())
    }

    @Test func aSlotIsWrittenOnceAndOfManyWritersExactlyOneWins() async throws {
        let directory = StoreDirectory()
        let stores = try (0..<8).map { _ in try directory.store() }
        for slot: UInt64 in 0..<20 {
            let winners = await withTaskGroup(of: Int?.self) { group in
                for (writer, store) in stores.enumerated() {
                    group.addTask { try! await store.createSlot(slot, bytes: [UInt8(writer), 1, 2, 3]) ? writer : nil }
                }
                return await group.reduce(into: [Int]()) { if let writer = $1 { $0.append(writer) } }
            }
            #expect(winners.count == 1)
            #expect(try await stores[3].readSlot(slot) == [UInt8(winners[0]), 1, 2, 3])
        }
        #expect(try await stores[0].readSlot(20) == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/tmp").isEmpty)
    }

    @Test func theFirstClusterToClaimTheStoreOwnsItAndAnotherIsRefused() async throws {
        let directory = StoreDirectory()
        // Nothing is there yet: the store is missing (unavailable), not unowned, until a claim makes it.
        let stores = (0..<6).map { _ in DirectoryExternalStore(root: directory.path) }
        await #expect(throws: ExternalLogError.unavailable("\(directory.path) is missing")) { try await ExternalStoreOwner.recorded(in: stores[0]) }
        #expect(!FileManager.default.fileExists(atPath: directory.path))
        let claimants = (0..<6).map { ExternalStoreOwner(cluster: "c\($0)", uuid: "0000000\($0)-0000-8000-8000-00000000000A")! }
        let refused = await withTaskGroup(of: Int?.self) { group in
            for (index, store) in stores.enumerated() {
                group.addTask {
                    do { try await claimants[index].claim(store) } catch { return index }
                    return nil
                }
            }
            return await group.reduce(into: Set<Int>()) { if let index = $1 { $0.insert(index) } }
        }
        #expect(refused.count == 5)
        let owner = try #require(try await ExternalStoreOwner.recorded(in: stores[0]))
        let winner = try #require((0..<6).first { !refused.contains($0) })
        #expect(owner == claimants[winner] && Set(claimants.map(\.store)).count == 6)
        #expect(try await owner.claim(stores[1]) == owner)  // the owner claims again, from any node, as often as it starts
        // The same cluster (its UUID in any case) with another store id drawn: the store keeps the id it has.
        #expect(try await ExternalStoreOwner(cluster: owner.cluster, uuid: owner.uuid.uppercased())!.claim(stores[4]) == owner)
        #expect(ExternalStoreOwner(cluster: "two words", uuid: owner.uuid) == nil && ExternalStoreOwner(cluster: "c", uuid: "a b") == nil)
        #expect(ExternalStoreOwner(cluster: "c", uuid: owner.uuid, store: "0000") == nil)
        await #expect(throws: ExternalLogError.ownedByAnotherCluster(store: "dir:\(directory.path)", owner: owner.description,
                                                                     claimant: claimants[(winner + 1) % 6].description)) {
            try await claimants[(winner + 1) % 6].claim(stores[2])
        }
        let text = try String(contentsOfFile: directory.path + "/owner", encoding: .utf8)
        #expect(text == "skiff-external-store 1\ncluster \(owner.cluster)\nuuid \(owner.uuid)\nstore \(owner.store)\n")
        for malformed in ["skiff-external-store 2\n", "skiff-external-store 1\ncluster c\nuuid a b\nstore \(owner.store)\n",
                          "skiff-external-store 1\ncluster c\nuuid \(owner.uuid)\n"] {
            try Data(malformed.utf8).write(to: URL(fileURLWithPath: directory.path + "/owner"))
            let error = await #expect(throws: ExternalLogError.self) { try await owner.claim(stores[3]) }
            guard case .malformedOwner = error else { Issue.record("\(malformed.debugDescription): \(String(describing: error))"); continue }
        }
        try FileManager.default.removeItem(atPath: directory.path)  // the whole store gone, say a lost mount: not an unowned store
        await #expect(throws: ExternalLogError.self) { try await ExternalStoreOwner.recorded(in: stores[5]) }
    }

    @Test func aSealDeposesTheLeaderAndItsLaterWritesNeverCount() async throws {
        let directory = StoreDirectory()
        let leader = ExternalLog(store: try directory.store(), keepsEntries: false)
        let follower = ExternalLog(store: try directory.store(), keepsEntries: true)
        let attached = try await leader.attach(asLeaderOf: Term(2))
        #expect(attached.lastIndex == .zero && attached.nextSlot == 1)
        // Two batches in flight at once, the second landing first.
        #expect(try await leader.write(term: Term(2), previousIndex: LogIndex(2), previousTerm: Term(2), entries: entries(from: 3, terms: [2]), commit: .zero, slot: 2))
        #expect(try await follower.catchUp().lastIndex == .zero)  // the first slot is still empty: nothing after it counts yet
        #expect(try await leader.write(term: Term(2), previousIndex: .zero, previousTerm: .zero, entries: entries(from: 1, terms: [2, 2]), commit: .zero, slot: 1))

        let sealed = try await follower.seal(term: Term(2))
        #expect(sealed.entries.map(\.index.rawValue) == [1, 2, 3] && sealed.nextSlot == 4)
        await #expect(throws: ExternalLogError.deposed(floor: Term(3))) {
            try await leader.write(term: Term(2), previousIndex: LogIndex(3), previousTerm: Term(2), entries: entries(from: 4, terms: [2]), commit: .zero, slot: 3)
        }
        // Written into a slot past the seal, it lands but does not count.
        #expect(try await leader.write(term: Term(2), previousIndex: LogIndex(3), previousTerm: Term(2), entries: entries(from: 4, terms: [2]), commit: .zero, slot: 4))
        // The new leader continues from what the old one wrote before the seal.
        let successor = ExternalLog(store: try directory.store(), keepsEntries: false)
        let view = try await successor.attach(asLeaderOf: Term(3))
        #expect(view.lastIndex == LogIndex(3) && view.lastTerm == Term(2) && view.nextSlot == 6)
        #expect(try await successor.write(term: Term(3), previousIndex: LogIndex(3), previousTerm: Term(2), entries: entries(from: 4, terms: [3]), commit: .zero, slot: 6))
        let reader = ExternalLog(store: try directory.store(), keepsEntries: true)
        #expect(try await reader.catchUp().entries.map(\.term.rawValue) == [2, 2, 2, 3])
    }

    @Test func aLeaderOfAnEarlierTermCannotWriteOnceALaterOneAttached() async throws {
        let directory = StoreDirectory()
        let late = ExternalLog(store: try directory.store(), keepsEntries: false)
        let lateView = try await late.attach(asLeaderOf: Term(4))
        let current = ExternalLog(store: try directory.store(), keepsEntries: false)
        let view = try await current.attach(asLeaderOf: Term(5))
        await #expect(throws: ExternalLogError.deposed(floor: Term(5))) {
            try await late.write(term: Term(4), previousIndex: .zero, previousTerm: .zero, entries: entries(from: 1, terms: [4]), commit: .zero, slot: lateView.nextSlot)
        }
        await #expect(throws: ExternalLogError.deposed(floor: Term(5))) { _ = try await late.attach(asLeaderOf: Term(4)) }
        // A record of an earlier term that takes a slot first costs the leader that slot, and its next batch,
        // written meanwhile, does not join the log: it must attach again.
        #expect(try await late.write(term: Term(4), previousIndex: .zero, previousTerm: .zero, entries: entries(from: 1, terms: [4]), commit: .zero, slot: view.nextSlot))
        #expect(try await current.write(term: Term(5), previousIndex: .zero, previousTerm: .zero, entries: entries(from: 1, terms: [5]), commit: .zero, slot: view.nextSlot) == false)
        #expect(try await current.write(term: Term(5), previousIndex: LogIndex(1), previousTerm: Term(5), entries: entries(from: 2, terms: [5]), commit: .zero, slot: view.nextSlot + 1))
        let seen = try await ExternalLog(store: try directory.store(), keepsEntries: true).catchUp()
        #expect(seen.entries.isEmpty && seen.unjoinedBatches == 1)
        let again = try await current.attach(asLeaderOf: Term(5))
        #expect(again.lastIndex == .zero)
        // A leader of term 5 that a seal of term 5 already deposed cannot attach.
        _ = try await ExternalLog(store: try directory.store(), keepsEntries: false).seal(term: Term(5))
        await #expect(throws: ExternalLogError.deposed(floor: Term(6))) {
            _ = try await ExternalLog(store: try directory.store(), keepsEntries: false).attach(asLeaderOf: Term(5))
        }
    }

    /// Leaders of rising terms and sealers race on one store, each leader with up to three batches in flight;
    /// every reader must then agree on one log, made only of entries some leader wrote at that index, and
    /// holding every entry that the last counted writer saw land with nothing missing before it.
    @Test(arguments: [1, 2, 3]) func racingLeadersAndSealersLeaveOneConsistentLog(attempt: Int) async throws {
        let directory = StoreDirectory()
        let outcomes = await withTaskGroup(of: (term: UInt64, held: [UInt64], written: [UInt64]).self) { group in
            for term: UInt64 in 1...6 {
                group.addTask { await Self.lead(term: term, store: try! directory.store()) }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let first = try await ExternalLog(store: try directory.store(), keepsEntries: true).catchUp()
        let second = try await ExternalLog(store: try directory.store(), keepsEntries: true).catchUp()
        #expect(first.entries == second.entries)
        let finalWriter = first.lastWriterTerm.rawValue
        let heldByFinal = outcomes.first { $0.term == finalWriter }?.held ?? []
        #expect(heldByFinal.allSatisfy { index in first.entries.contains { $0.index.rawValue == index && $0.term.rawValue == finalWriter } })
        for entry in first.entries {
            #expect(entry.payload == Array("e\(entry.index)t\(entry.term)".utf8))
            #expect(outcomes.contains { $0.term == entry.term.rawValue && $0.written.contains(entry.index.rawValue) })
        }
        _ = attempt  // each attempt is a fresh race
    }

    /// Slot files: small records go into files prepared ahead of time and shared by a group of slots, each
    /// record in its own region, so a group costs one inode; a large record goes into a new file. All read
    /// back as written, nothing named is left in `tmp/`, and a file whose length prefix overstates its
    /// record is refused as corrupt.
    @Test func slotsShareFilesPreparedAheadAndReadBackAsWritten() async throws {
        let directory = StoreDirectory()
        let store = try directory.store()
        func attributes(_ slot: UInt64) throws -> [FileAttributeKey: Any] {
            try FileManager.default.attributesOfItem(atPath: "\(directory.path)/log/\(DirectoryExternalStore.name(of: slot))")
        }
        func inode(_ slot: UInt64) throws -> Int { try attributes(slot)[.systemFileNumber] as! Int }
        let group = DirectoryExternalStore.slotsPerFile
        let fileSize = DirectoryExternalStore.regionSize * Int(group)
        // The first write starts preparing files; wait until the first group's slots go into one.
        var written: [[UInt8]] = []
        func write(_ slot: UInt64) async throws {
            written.append(Array("record \(slot)".utf8))
            #expect(try await store.createSlot(slot, bytes: written.last!))
        }
        try await write(0)
        var slot: UInt64 = 1
        while try slot < 8 * group && attributes(slot - 1)[.size] as! Int != fileSize {
            try await write(slot)
            slot += 1
            try await Task.sleep(for: .milliseconds(50))
        }
        let shared = slot - 1
        let next = (shared / group + 1) * group  // the first slot of the next group
        #expect(try slot < 8 * group && attributes(shared)[.size] as! Int == fileSize)
        while slot < next + 2 {
            try await write(slot)
            slot += 1
        }
        #expect(try (shared..<next).allSatisfy { try inode($0) == inode(shared) })
        #expect(try inode(next) != inode(shared) && inode(next + 1) == inode(next))
        #expect(try attributes(shared)[.referenceCount] as! Int == Int(next - shared))

        let large = [UInt8](repeating: 7, count: DirectoryExternalStore.regionSize)
        #expect(try await store.createSlot(slot, bytes: large))
        #expect(try attributes(slot)[.size] as! Int == Int(DirectoryExternalStore.offset(of: slot)) + large.count + 4)
        #expect(try await !store.createSlot(slot, bytes: [1]))
        for (position, bytes) in written.enumerated() { #expect(try await store.readSlot(UInt64(position)) == bytes) }
        #expect(try await store.readSlot(slot) == large)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/tmp").isEmpty)

        let path = "\(directory.path)/log/\(DirectoryExternalStore.name(of: shared + 1))"
        let file = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try file.seek(toOffset: UInt64(DirectoryExternalStore.offset(of: shared + 1)) + 2)
        try file.write(contentsOf: [0x40])  // the length now says 4 MiB more than the file holds
        try file.close()
        await #expect(throws: ExternalLogError.self) { try await store.readSlot(shared + 1) }
        #expect(try await store.readSlot(shared) == written[Int(shared)])
    }

    /// A shared file's region is written once: a second write of a slot through the same store (a node's
    /// seal racing its own batch) finds the name taken and leaves the first record as it was. And a group
    /// whose every named slot was trimmed, which Linux will not let be named again, still takes new slots.
    @Test func sharedFilesNeverRewriteARecordAndOutliveATrimOfTheirSlots() async throws {
        let directory = StoreDirectory()
        let store = try directory.store()
        func inode(_ slot: UInt64) throws -> Int {
            try FileManager.default.attributesOfItem(atPath: "\(directory.path)/log/\(DirectoryExternalStore.name(of: slot))")[.systemFileNumber] as! Int
        }
        #expect(try await store.createSlot(0, bytes: [0]))  // starts preparing files
        var first: UInt64 = 1
        repeat {  // until two slots in a row share a prepared file
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await store.createSlot(first, bytes: Array("first \(first)".utf8)))
            #expect(try await store.createSlot(first + 1, bytes: Array("first \(first + 1)".utf8)))
            first += 2
        } while try inode(first - 2) != inode(first - 1) && first < 40
        let slot = first - 2
        #expect(try inode(slot) == inode(slot + 1))
        #expect(try await store.createSlot(slot, bytes: Array("second".utf8)) == false)
        #expect(try await store.readSlot(slot) == Array("first \(slot)".utf8))

        // The trim removes every name of the shared file, and the next slot is of the same group.
        #expect((slot + 2) / DirectoryExternalStore.slotsPerFile == slot / DirectoryExternalStore.slotsPerFile)
        try await store.trim(below: slot + 2)
        #expect(try await store.createSlot(slot + 2, bytes: Array("after the trim".utf8)))
        #expect(try await store.readSlot(slot + 2) == Array("after the trim".utf8))
    }

    /// Preparing files fails while the store fails (here `tmp/` is replaced by a plain file, so nothing can
    /// be made in it), and is tried again later: once the store is back, slots share files again.
    @Test func preparedFilesComeBackAfterTheStoreFailed() async throws {
        let directory = StoreDirectory()
        let store = try directory.store()
        let temporary = directory.path + "/tmp"
        func inode(_ slot: UInt64) throws -> Int {
            try FileManager.default.attributesOfItem(atPath: "\(directory.path)/log/\(DirectoryExternalStore.name(of: slot))")[.systemFileNumber] as! Int
        }
        try FileManager.default.removeItem(atPath: temporary)
        FileManager.default.createFile(atPath: temporary, contents: nil)
        await #expect(throws: ExternalLogError.self) { try await store.createSlot(0, bytes: [0]) }  // and the refill it starts fails
        try await Task.sleep(for: .milliseconds(200))
        try FileManager.default.removeItem(atPath: temporary)
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: false)
        #expect(try await store.createSlot(0, bytes: [0]))
        try await Task.sleep(for: PreparedSlotFiles.refillRetryDelay + .milliseconds(100))
        var slot: UInt64 = 1
        repeat {  // until two slots in a row share a prepared file, for at most one group
            #expect(try await store.createSlot(slot, bytes: [UInt8(slot)]))
            slot += 1
            try await Task.sleep(for: .milliseconds(20))
        } while try inode(slot - 1) != inode(slot - 2) && slot < DirectoryExternalStore.slotsPerFile
        #expect(try inode(slot - 1) == inode(slot - 2))
        for written in 0..<slot { #expect(try await store.readSlot(written) == [UInt8(written)]) }
    }

    /// Term 3 and 6 only seal the term before them; the others attach and write five one-entry batches in
    /// groups of three slots at once, attaching again when a slot was lost. Returns the indices that landed
    /// with every earlier batch of the group landed too (held), and every index written.
    static func lead(term: UInt64, store: DirectoryExternalStore) async -> (term: UInt64, held: [UInt64], written: [UInt64]) {
        let log = ExternalLog(store: store, keepsEntries: false)
        if term % 3 == 0 {
            _ = try! await log.seal(term: Term(term - 1))
            return (term, [], [])
        }
        var held: [UInt64] = [], written: [UInt64] = []
        do {
            var view = try await log.attach(asLeaderOf: Term(term))
            var sent = 0
            while sent < 5 {
                let base = view.lastIndex.rawValue
                let count = min(3, 5 - sent)
                let landed = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                    for offset in 0..<count {
                        let index = base + 1 + UInt64(offset)
                        let previousTerm = offset == 0 ? view.lastTerm : Term(term)
                        let slot = view.nextSlot + UInt64(offset)
                        group.addTask {
                            (offset, try await log.write(term: Term(term), previousIndex: LogIndex(index - 1), previousTerm: previousTerm,
                                                         entries: entries(from: index, terms: [term]), commit: .zero, slot: slot))
                        }
                    }
                    return try await group.reduce(into: [Bool](repeating: false, count: count)) { $0[$1.0] = $1.1 }
                }
                written += (0..<count).map { base + 1 + UInt64($0) }
                let prefix = landed.prefix { $0 }.count
                held += (0..<prefix).map { base + 1 + UInt64($0) }
                sent += prefix == count ? count : 0
                view = try await log.attach(asLeaderOf: Term(term))
                if prefix < count { held = held.filter { index in view.term(at: LogIndex(index)) == Term(term) } }
            }
            return (term, held, written)
        } catch {
            return (term, [], written)
        }
    }
}

