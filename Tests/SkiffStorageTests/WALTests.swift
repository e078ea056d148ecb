import Foundation
import SkiffRaft
@testable import SkiffStorage
import Synchronization
import Testing

@Suite struct WALTests {
    @Test func appendedEntriesAndHardStateSurviveReopen() async throws {
        let dir = TemporaryDirectory()
        let state = HardState(term: Term(3), vote: NodeID(2), commit: LogIndex(40))
        try await withWAL(dir.path) { wal, _ async throws in
            try await wal.append(entries(1...40))
            try await wal.append(entries(41...50, term: 3), hardState: state)
            #expect(wal.lastIndex == LogIndex(50))
        }
        try await withWAL(dir.path) { wal, report async throws in
            #expect(report.cutTail == nil)
            #expect(wal.firstIndex == LogIndex(1))
            #expect(wal.lastIndex == LogIndex(50))
            #expect(wal.hardState == state)
            #expect(try allEntries(wal) == entries(1...40) + entries(41...50, term: 3))
            #expect(wal.term(at: LogIndex(40)) == Term(1))
            #expect(wal.term(at: LogIndex(41)) == Term(3))
            #expect(wal.term(at: LogIndex(0)) == Term(0))
            #expect(wal.term(at: LogIndex(51)) == nil)
        }
    }

    @Test func smallSegmentsRotateAndStillReadBack() async throws {
        let dir = TemporaryDirectory()
        try await withWAL(dir.path) { wal, _ async throws in
            for index in stride(from: UInt64(1), through: 400, by: 4) {
                try await wal.append(entries(index...(index + 3)))
            }
        }
        let files = try segmentFiles(dir.path)
        #expect(files.count > 3)
        // Names sort in log order and carry each segment's first index.
        let firsts = files.map { UInt64($0.split(separator: "-")[1].dropLast(4))! }
        #expect(firsts == firsts.sorted())
        try await withWAL(dir.path) { wal, _ async throws in
            #expect(try allEntries(wal) == entries(1...400))
            #expect(try wal.entries(in: LogIndex(123)...LogIndex(130)) == entries(123...130))
            #expect(try wal.entries(in: LogIndex(1)...LogIndex(400), byteLimit: 100).count == 4)
        }
    }

    @Test func largeBatchesAreCompressedAndReadBack() async throws {
        let dir = TemporaryDirectory()
        let big = (1...64).map { Entry(index: LogIndex($0), term: Term(1), payload: Array(repeating: UInt8($0), count: 1000)) }
        try await withWAL(dir.path, options: smallOptions(segmentBytes: 1 << 20)) { wal, _ async throws in
            try await wal.append(big)
        }
        let inspection = try WALInspection.inspect(directory: dir.path)
        #expect(inspection.segments[0].storedBodyBytes * 10 < inspection.segments[0].rawBodyBytes)
        try await withWAL(dir.path) { wal, _ async throws in #expect(try allEntries(wal) == big) }
    }

    @Test func truncateSuffixReplacesEntriesAcrossSegments() async throws {
        let dir = TemporaryDirectory()
        try await withWAL(dir.path) { wal, _ async throws in
            for index in stride(from: UInt64(1), through: 200, by: 10) { try await wal.append(entries(index...(index + 9))) }
            try await wal.truncate(after: LogIndex(37))
            #expect(wal.lastIndex == LogIndex(37))
            try await wal.append(entries(38...60, term: 2))
        }
        try await withWAL(dir.path) { wal, _ async throws in
            #expect(try allEntries(wal) == entries(1...37) + entries(38...60, term: 2))
            #expect(wal.term(at: LogIndex(37)) == Term(1))
        }
    }

    @Test func restartDiscardsTheLogAndStartsAfterTheSnapshot() async throws {
        let dir = TemporaryDirectory()
        let state = HardState(term: Term(5), vote: .none, commit: LogIndex(1000))
        try await withWAL(dir.path) { wal, _ async throws in
            try await wal.append(entries(1...100))
            try await wal.restart(after: LogIndex(1000), term: Term(4), hardState: state)
            #expect(wal.firstIndex == LogIndex(1001))
            #expect(wal.lastIndex == LogIndex(1000))
            try await wal.append(entries(1001...1010, term: 5))
        }
        #expect(try segmentFiles(dir.path).count == 1)
        try await withWAL(dir.path) { wal, _ async throws in
            #expect(wal.firstIndex == LogIndex(1001))
            #expect(wal.term(at: LogIndex(1000)) == Term(4))
            #expect(wal.hardState == state)
            #expect(try allEntries(wal) == entries(1001...1010, term: 5))
        }
    }

    @Test func compactRemovesWholeSegmentsBelowTheIndexOnly() async throws {
        let dir = TemporaryDirectory()
        let state = HardState(term: Term(1), vote: NodeID(1), commit: LogIndex(300))
        try await withWAL(dir.path) { wal, _ async throws in
            try await wal.save(hardState: state)
            for index in stride(from: UInt64(1), through: 300, by: 10) { try await wal.append(entries(index...(index + 9))) }
            let before = try segmentFiles(dir.path).count
            try await wal.compact(through: LogIndex(150))
            #expect(try segmentFiles(dir.path).count < before)
            #expect(wal.firstIndex <= LogIndex(151))
            #expect(wal.firstIndex > LogIndex(1))
            #expect(try wal.entries(in: LogIndex(151)...LogIndex(300)) == entries(151...300))
            #expect(throws: WALError.self) { try wal.entries(in: LogIndex(1)...LogIndex(2)) }
        }
        try await withWAL(dir.path) { wal, _ async throws in
            #expect(wal.hardState == state)
            #expect(wal.lastIndex == LogIndex(300))
            let first = wal.firstIndex.rawValue
            #expect(try allEntries(wal) == entries(first...300))
        }
    }

    @Test func concurrentAppendersAreAllDurableAndInOrder() async throws {
        let dir = TemporaryDirectory()
        let assigned = try await withWAL(dir.path, options: smallOptions(segmentBytes: 64 << 10)) { wal, _ async throws in
            try await withThrowingTaskGroup(of: (UInt64, Int).self) { group in
                for appender in 0..<64 {
                    group.addTask {
                        var last: UInt64 = 0
                        for round in 0..<20 {
                            let index = try await wal.append(payload: Array("a\(appender)r\(round)".utf8), term: Term(1)).rawValue
                            #expect(index > last)  // one appender's entries land in the order it wrote them
                            last = index
                        }
                        return (last, appender)
                    }
                }
                var results: [(UInt64, Int)] = []
                for try await result in group { results.append(result) }
                return results
            }
        }
        #expect(assigned.count == 64)
        try await withWAL(dir.path) { wal, _ async throws in
            let all = try allEntries(wal)
            #expect(all.count == 64 * 20)
            #expect(all.map(\.index.rawValue) == Array(1...1280))
            for appender in 0..<64 {  // each appender's payloads appear, in its own order
                let mine = all.map { String(decoding: $0.payload, as: UTF8.self) }.filter { $0.hasPrefix("a\(appender)r") }
                #expect(mine == (0..<20).map { "a\(appender)r\($0)" })
            }
        }
    }

    @Test func preallocatedSegmentsReopenWithoutLoss() async throws {
        let dir = TemporaryDirectory()
        try await withWAL(dir.path, options: smallOptions(segmentBytes: 1 << 20, preallocate: true)) { wal, _ async throws in
            try await wal.append(entries(1...30))
            // While open, the file carries zeroed preallocated space after the data.
            let size = try FileManager.default.attributesOfItem(atPath: dir.file(try segmentFiles(dir.path)[0]))[.size] as! Int
            #expect(size == 1 << 20)
        }
        try await withWAL(dir.path, options: smallOptions(segmentBytes: 1 << 20, preallocate: true)) { wal, _ async throws in
            #expect(try allEntries(wal) == entries(1...30))
            try await wal.append(entries(31...40))
        }
        try await withWAL(dir.path) { wal, _ async throws in #expect(try allEntries(wal) == entries(1...40)) }
    }

    @Test func closedWALRefusesWrites() async throws {
        let dir = TemporaryDirectory()
        let (wal, _) = try WAL.open(directory: dir.path, options: smallOptions())
        await wal.close()
        await #expect(throws: WALError.self) { try await wal.append(entries(1...1)) }
    }
}

@Suite struct WALEdgeTests {
    @Test func anOversizedAppendIsRefusedAndTheWALStaysUsable() async throws {
        let dir = TemporaryDirectory()
        try await withWAL(dir.path) { wal, _ async throws in
            try await wal.append(entries(1...3))
            let huge = Entry(index: LogIndex(4), term: Term(1), payload: [UInt8](repeating: 7, count: WAL.appendBytesMax))
            await #expect { try await wal.append([huge]) } throws: { ($0 as? WALError)?.code == .recordTooLarge }
            try await wal.append(entries(4...5))
            #expect(try allEntries(wal) == entries(1...5))
        }
    }

    @Test func truncatingIntoQueuedAppendsTakesTheirTerm() async throws {
        let dir = TemporaryDirectory()
        try await withWAL(dir.path) { wal, _ async throws in
            try await wal.append(entries(1...10))
            // Enqueue without waiting, so the truncation point may still be in the queue.
            async let first: Void = wal.append(entries(11...15, term: 2))
            async let second: Void = wal.append(entries(16...20, term: 3))
            try await first
            try await second
            try await wal.truncate(after: LogIndex(15))
            try await wal.append(entries(16...17, term: 2))  // term 2 follows term 2: must be accepted
            #expect(try allEntries(wal) == entries(1...10) + entries(11...17, term: 2))
        }
    }

    @Test func truncationAfterCompactionKeepsTheLogWhole() async throws {
        let dir = TemporaryDirectory()
        try await withWAL(dir.path) { wal, _ async throws in
            for index in stride(from: UInt64(1), through: 300, by: 10) { try await wal.append(entries(index...(index + 9))) }
            try await wal.compact(through: LogIndex(200))
            let first = wal.firstIndex.rawValue
            #expect(first > 1)
            try await wal.truncate(after: LogIndex(250))
            try await wal.append(entries(251...260, term: 2))
        }
        try await withWAL(dir.path) { wal, _ async throws in
            let first = wal.firstIndex.rawValue
            #expect(try allEntries(wal) == entries(first...250) + entries(251...260, term: 2))
        }
    }
}

@Suite struct PreallocationTests {
    @Test func aCrashImageKeepsItsZerosAndOpenWritesNothing() async throws {
        let dir = TemporaryDirectory(), image = TemporaryDirectory()
        let options = smallOptions(segmentBytes: 1 << 20, preallocate: true)
        let (wal, _) = try WAL.open(directory: dir.path, options: options, logger: quietLogger)
        try await wal.append(entries(1...30))
        for name in try segmentFiles(dir.path) {  // the files as a crash leaves them: zeros after the frames
            try FileManager.default.copyItem(atPath: dir.file(name), toPath: image.file(name))
        }
        await wal.close()
        let files = InstrumentedFileSystem()
        let (reopened, report) = try WAL.open(directory: image.path, options: options, fileSystem: files, logger: quietLogger)
        #expect(report.cutTail?.allZero == true)
        #expect(files.writes.withLock { $0 }.isEmpty)
        #expect(try FileManager.default.attributesOfItem(atPath: image.file(try segmentFiles(image.path)[0]))[.size] as? Int == 1 << 20)
        try await reopened.append(entries(31...40))
        await reopened.close()
        try await withWAL(image.path, options: options) { wal, _ async throws in #expect(try allEntries(wal) == entries(1...40)) }
    }

    @Test func segmentsAreFilledWithZerosToTheirFullSizeAndFramesOverwriteThem() async throws {
        let dir = TemporaryDirectory()
        let files = InstrumentedFileSystem()
        let options = smallOptions(segmentBytes: 1 << 20, preallocate: true)
        let segmentBytes = Int64(1 << 20)
        func zeroRanges() -> [(Int64, Int64)] {
            files.writes.withLock { writes in writes.filter(\.allZero).map { ($0.offset, $0.offset + Int64($0.count)) } }
        }
        let (wal, _) = try WAL.open(directory: dir.path, options: options, fileSystem: files, logger: quietLogger)
        let headerEnd = files.writes.withLock { $0[0].count }  // the new segment's header and first frame
        #expect(zeroRanges().first?.0 == Int64(headerEnd))
        #expect(zeroRanges().last?.1 == segmentBytes)
        #expect(zeroRanges().reduce(0) { $0 + $1.1 - $1.0 } == segmentBytes - Int64(headerEnd))
        let filled = zeroRanges().count
        try await wal.append(entries(1...30))
        #expect(zeroRanges().count == filled)  // appends overwrite the zeros; nothing grows the file
        await wal.close()
        let (reopened, _) = try WAL.open(directory: dir.path, options: options, fileSystem: files, logger: quietLogger)
        #expect(zeroRanges().last?.1 == segmentBytes)  // close cut the zeros off; open fills them in again
        #expect(try allEntries(reopened) == entries(1...30))
        try await reopened.append(entries(31...60))
        await reopened.close()
        // Zeros only ever went past every frame written before them.
        var written: [String: Int64] = [:]
        for write in files.writes.withLock({ $0 }) {
            let segment = write.path.replacingOccurrences(of: ".tmp", with: "")  // created under a temporary name
            if write.allZero { #expect(write.offset >= written[segment, default: 0]) }
            else { written[segment] = max(written[segment, default: 0], write.offset + Int64(write.count)) }
        }
        try await withWAL(dir.path, options: options) { wal, _ async throws in #expect(try allEntries(wal) == entries(1...60)) }
    }
}
