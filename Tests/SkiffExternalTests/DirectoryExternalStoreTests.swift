import Foundation
import SkiffExternal
import SkiffRaft
import Testing

/// A fresh store directory, removed when the test is done with it.
final class StoreDirectory: Sendable {
    let path = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func store() throws -> DirectoryExternalStore { try DirectoryExternalStore(root: path) }
}

/// The directory backend and the fencing built on it, with several writers at once.
@Suite struct DirectoryExternalStoreTests {
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
        #expect(try await stores[0].firstSlot() == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/tmp").isEmpty)
    }

    @Test func aSealDeposesTheLeaderAndItsLaterWritesNeverCount() async throws {
        let directory = StoreDirectory()
        let leader = ExternalLog(store: try directory.store(), keepsEntries: false)
        let follower = ExternalLog(store: try directory.store(), keepsEntries: true)
        let attached = try await leader.attach(asLeaderOf: Term(2))
        #expect(attached.lastIndex == .zero)
        try await leader.append(term: Term(2), previousIndex: .zero, previousTerm: .zero, entries: entries(from: 1, terms: [2, 2]))
        try await leader.append(term: Term(2), previousIndex: LogIndex(2), previousTerm: Term(2), entries: entries(from: 3, terms: [2]))

        let sealed = try await follower.seal(term: Term(2))
        #expect(sealed.entries.map(\.index.rawValue) == [1, 2, 3])
        await #expect(throws: ExternalLogError.deposed(floor: Term(3))) {
            try await leader.append(term: Term(2), previousIndex: LogIndex(3), previousTerm: Term(2), entries: entries(from: 4, terms: [2]))
        }
        // The new leader continues from what the old one wrote before the seal.
        let successor = ExternalLog(store: try directory.store(), keepsEntries: false)
        let view = try await successor.attach(asLeaderOf: Term(3))
        #expect(view.lastIndex == LogIndex(3) && view.lastTerm == Term(2))
        try await successor.append(term: Term(3), previousIndex: LogIndex(3), previousTerm: Term(2), entries: entries(from: 4, terms: [3]))
        let reader = ExternalLog(store: try directory.store(), keepsEntries: true)
        #expect(try await reader.catchUp().entries.map(\.term.rawValue) == [2, 2, 2, 3])
    }

    @Test func aLeaderOfAnEarlierTermCannotWriteOnceALaterOneAttached() async throws {
        let directory = StoreDirectory()
        let late = ExternalLog(store: try directory.store(), keepsEntries: false)
        let current = ExternalLog(store: try directory.store(), keepsEntries: false)
        _ = try await current.attach(asLeaderOf: Term(5))
        await #expect(throws: ExternalLogError.deposed(floor: Term(5))) { _ = try await late.attach(asLeaderOf: Term(4)) }
        try await current.append(term: Term(5), previousIndex: .zero, previousTerm: .zero, entries: entries(from: 1, terms: [5]))
        // A leader of term 5 that a seal of term 5 already deposed cannot attach either.
        _ = try await ExternalLog(store: try directory.store(), keepsEntries: false).seal(term: Term(5))
        await #expect(throws: ExternalLogError.deposed(floor: Term(6))) {
            _ = try await ExternalLog(store: try directory.store(), keepsEntries: false).attach(asLeaderOf: Term(5))
        }
    }

    /// Leaders of rising terms and sealers race on one store; every reader must then agree on one log in
    /// which each counted batch continues the one before, and every leader that was not deposed must find
    /// all of its batches in it.
    @Test(arguments: [1, 2, 3]) func racingLeadersAndSealersLeaveOneConsistentLog(attempt: Int) async throws {
        let directory = StoreDirectory()
        let outcomes = await withTaskGroup(of: (term: UInt64, written: [UInt64], deposed: Bool).self) { group in
            for term: UInt64 in 1...6 {
                group.addTask {
                    let log = ExternalLog(store: try! directory.store(), keepsEntries: false)
                    if term % 3 == 0 {
                        _ = try! await log.seal(term: Term(term - 1))
                        return (term, [], false)
                    }
                    var written: [UInt64] = []
                    do {
                        let view = try await log.attach(asLeaderOf: Term(term))
                        var last = (view.lastIndex, view.lastTerm)
                        for _ in 0..<5 {
                            let next = entries(from: last.0.rawValue + 1, terms: [term])
                            try await log.append(term: Term(term), previousIndex: last.0, previousTerm: last.1, entries: next)
                            written.append(next[0].index.rawValue)
                            last = (next[0].index, Term(term))
                        }
                        return (term, written, false)
                    } catch {
                        return (term, written, true)
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let first = try await ExternalLog(store: try directory.store(), keepsEntries: true).catchUp()
        let second = try await ExternalLog(store: try directory.store(), keepsEntries: true).catchUp()
        #expect(first.entries == second.entries)
        // The log is the last counted writer's: every entry of its term that it wrote is there, and every
        // entry is one a leader wrote at that index.
        let finalWriter = first.lastWriterTerm.rawValue
        let writtenByFinal = outcomes.first { $0.term == finalWriter }?.written ?? []
        #expect(writtenByFinal.allSatisfy { index in first.entries.contains { $0.index.rawValue == index && $0.term.rawValue == finalWriter } })
        for entry in first.entries {
            #expect(entry.payload == Array("e\(entry.index)t\(entry.term)".utf8))
            #expect(outcomes.contains { $0.term == entry.term.rawValue && $0.written.contains(entry.index.rawValue) })
        }
        _ = attempt  // each attempt is a fresh race
    }
}
