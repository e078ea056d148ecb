import Foundation
import SkiffRaft
@testable import SkiffStorage
import Testing

/// Crashes and corruption, made for real: files cut at every byte, bytes flipped one by one, a file system
/// that dies between the steps of every multi-step operation, and a writer process killed with SIGKILL.
@Suite struct CrashRecoveryTests {
    /// Writes 3 segments, the last with single-entry frames, and returns where each frame of the last one ends.
    private func makeLog(_ dir: String) async throws -> (lastSegment: String, frames: [(offset: Int64, end: Int64, last: UInt64)]) {
        try await withWAL(dir) { wal, _ async throws in
            for index in stride(from: UInt64(1), through: 240, by: 8) { try await wal.append(entries(index...(index + 7))) }
            for index in UInt64(241)...250 { try await wal.append(entries(index...index)) }
        }
        let last = try segmentFiles(dir).last!
        var frames: [(Int64, Int64, UInt64)] = []
        try WALInspection.forEachRecord(directory: dir) { location, record, _ in
            guard location.fileName == last, case .entries(let run) = record else { return }
            let end = location.frameOffset + Int64((FrameHeader.size + location.frameStoredBytes).alignedTo8)
            frames.append((location.frameOffset, end, run.last!.index.rawValue))
        }
        return (last, frames)
    }

    @Test func cuttingTheNewestSegmentAtEveryByteKeepsExactlyTheWholeFrames() async throws {
        let source = TemporaryDirectory()
        let (last, frames) = try await makeLog(source.path)
        #expect(try segmentFiles(source.path).count >= 3)
        let original = try readBytes(source.file(last))
        let firstCut = frames[frames.count - 5].offset
        for zeroFill in [false, true] {
            for cut in firstCut...Int64(original.count) {
                let scratch = TemporaryDirectory()
                for name in try segmentFiles(source.path) { try FileManager.default.copyItem(atPath: source.file(name), toPath: scratch.file(name)) }
                var bytes = Array(original[..<Int(cut)])
                if zeroFill { bytes += Array(repeating: 0, count: original.count - Int(cut) + 4096) }  // like preallocation
                try writeBytes(bytes, to: scratch.file(last))
                // With zero-fill, a frame is whole again if every byte cut off was a zero (padding, say).
                let expectedLast = frames.last { frame in
                    frame.end <= cut || (zeroFill && original[Int(cut)..<Int(frame.end)].allSatisfy { $0 == 0 })
                }!.last
                try await withWAL(scratch.path) { wal, report async throws in
                    #expect(wal.lastIndex.rawValue == expectedLast, "cut at \(cut)")
                    #expect((report.cutTail != nil) == (zeroFill || cut != frames.last { $0.end <= cut }!.end), "cut at \(cut)")
                    #expect(try allEntries(wal) == entries(1...expectedLast))
                }
            }
        }
    }

    @Test func everyFlippedByteIsDetected() async throws {
        let dir = TemporaryDirectory()
        let (last, frames) = try await makeLog(dir.path)
        let lastFrameStart = frames.last!.offset
        var flips = 0
        for name in try segmentFiles(dir.path) {
            let path = dir.file(name)
            let original = try readBytes(path)
            // Each segment's header, first frames and last frames: every kind of byte a segment has.
            let positions = Set(0..<min(original.count, 700)).union(max(0, original.count - 700)..<original.count)
            for position in positions.sorted() {
                var damaged = original
                damaged[position] ^= 0x20
                try writeBytes(damaged, to: path)
                let inspection = try WALInspection.inspect(directory: dir.path)
                #expect(!inspection.isSound, "flip at \(name):\(position) went unnoticed")
                if name == last && Int64(position) >= lastFrameStart {
                    // The newest frame: indistinguishable from a write cut short, so it is reported as a torn tail.
                    #expect(inspection.problems.isEmpty && inspection.unfinishedTail?.offset == lastFrameStart)
                } else {
                    #expect(!inspection.problems.isEmpty, "flip at \(name):\(position) not reported as corruption")
                }
                flips += 1
            }
            try writeBytes(original, to: path)
        }
        #expect(flips > 3 * 1000)
        #expect(try WALInspection.inspect(directory: dir.path).isSound)
    }

    @Test func openRefusesCorruptionBeforeTheTailNamingFileOffsetAndIndices() async throws {
        let dir = TemporaryDirectory()
        _ = try await makeLog(dir.path)
        let segments = try segmentFiles(dir.path)
        // A frame in the middle of an older segment.
        var frameOffset: Int64 = 0
        var frameIndices: ClosedRange<UInt64> = 0...0
        try WALInspection.forEachRecord(directory: dir.path) { location, record, _ in
            if location.fileName == segments[1], frameOffset == 0, case .entries(let run) = record {
                frameOffset = location.frameOffset
                frameIndices = run.first!.index.rawValue...run.last!.index.rawValue
            }
        }
        var bytes = try readBytes(dir.file(segments[1]))
        bytes[Int(frameOffset) + FrameHeader.size + 20] ^= 0x01
        try writeBytes(bytes, to: dir.file(segments[1]))
        do {
            _ = try WAL.open(directory: dir.path, options: smallOptions(), logger: quietLogger)
            Issue.record("open accepted a corrupt segment")
        } catch {
            #expect(error.code == .checksumMismatch)
            #expect(error.file.hasSuffix(segments[1]))
            #expect(error.offset == frameOffset)
            #expect(error.indices == frameIndices)
            #expect("\(error)".contains("byte \(frameOffset)"))
        }
        // Nothing was modified by the failed open.
        #expect(try readBytes(dir.file(segments[1])) == bytes)
    }

    @Test func aMissingMiddleSegmentIsAGapNotASilentLoss() async throws {
        let dir = TemporaryDirectory()
        _ = try await makeLog(dir.path)
        let segments = try segmentFiles(dir.path)
        try FileManager.default.removeItem(atPath: dir.file(segments[1]))
        #expect(throws: WALError.self) { _ = try WAL.open(directory: dir.path, options: smallOptions(), logger: quietLogger) }
    }

    // MARK: Crashes between the steps of multi-step operations

    /// Runs `operation` against a copy of `base` with a file system that dies after 0, 1, 2, ... mutating
    /// steps, reopens each result for real, and hands the recovered entries to `check`.
    private func crashAtEveryStep(
        base: String, options: WALOptions = smallOptions(),
        operation: (WAL) async throws -> Void,
        check: (_ entries: [Entry], _ wal: WAL, _ step: Int) throws -> Void
    ) async throws {
        var step = 0
        while true {
            let scratch = TemporaryDirectory()
            for name in try FileManager.default.contentsOfDirectory(atPath: base) {
                try FileManager.default.copyItem(atPath: base + "/" + name, toPath: scratch.file(name))
            }
            let fileSystem = CrashingFileSystem(operationsBeforeCrash: Int.max)
            let (wal, _) = try WAL.open(directory: scratch.path, options: options, fileSystem: fileSystem, logger: quietLogger)
            fileSystem.arm(step)
            try? await operation(wal)
            await wal.close()
            let crashed = fileSystem.hasCrashed
            try await withWAL(scratch.path, options: options) { reopened, _ async throws in
                try check(try allEntries(reopened), reopened, step)
            }
            if !crashed { break }
            step += 1
        }
        #expect(step >= 3, "the operation should take several steps")
    }

    private func baseLog(_ dir: String, through last: UInt64 = 300) async throws {
        try await withWAL(dir) { wal, _ async throws in
            try await wal.save(hardState: HardState(term: Term(1), vote: NodeID(1), commit: LogIndex(30)))
            for index in stride(from: UInt64(1), through: last, by: 10) { try await wal.append(entries(index...(index + 9))) }
        }
    }

    @Test func crashDuringRotationRecovers() async throws {
        let base = TemporaryDirectory()
        try await baseLog(base.path)
        try await crashAtEveryStep(base: base.path) { wal in
            for index in stride(from: UInt64(301), through: 360, by: 10) { try await wal.append(entries(index...(index + 9))) }
        } check: { recovered, _, step in
            let last = recovered.last!.index.rawValue
            #expect(last >= 300 && last % 10 == 0, "step \(step)")
            #expect(recovered == entries(1...last), "step \(step)")
        }
    }

    @Test func crashDuringTruncationRecovers() async throws {
        let base = TemporaryDirectory()
        try await baseLog(base.path)
        try await crashAtEveryStep(base: base.path) { wal in
            try await wal.truncate(after: LogIndex(25))
            try await wal.append(entries(26...40, term: 2))
        } check: { recovered, wal, step in
            let valid = [entries(1...300), entries(1...25), entries(1...25) + entries(26...40, term: 2)]
            #expect(valid.contains(recovered), "step \(step): recovered \(recovered.count) entries")
            #expect(wal.hardState.commit == LogIndex(30))
        }
    }

    @Test func crashDuringCompactionRecovers() async throws {
        let base = TemporaryDirectory()
        try await baseLog(base.path)
        try await crashAtEveryStep(base: base.path) { wal in
            try await wal.compact(through: LogIndex(250))
        } check: { recovered, wal, step in
            let first = wal.firstIndex.rawValue
            #expect(first <= 251, "step \(step)")
            #expect(recovered == entries(first...300), "step \(step)")
            #expect(wal.hardState == HardState(term: Term(1), vote: NodeID(1), commit: LogIndex(30)))
        }
    }

    @Test func crashDuringRestartRecovers() async throws {
        let base = TemporaryDirectory()
        try await baseLog(base.path)
        let fresh = HardState(term: Term(7), vote: .none, commit: LogIndex(500))
        try await crashAtEveryStep(base: base.path) { wal in
            try await wal.restart(after: LogIndex(500), term: Term(6), hardState: fresh)
        } check: { recovered, wal, step in
            if wal.firstIndex == LogIndex(501) {
                #expect(recovered.isEmpty && wal.hardState == fresh && wal.term(at: LogIndex(500)) == Term(6), "step \(step)")
            } else {
                #expect(recovered == entries(1...300), "step \(step)")
            }
        }
    }

    // MARK: A real process, killed

    @Test func sigkilledWriterLosesNoAcknowledgedAppend() async throws {
        let dir = TemporaryDirectory()
        var generator = SystemRandomNumberGenerator()
        var acknowledged: [UInt64: String] = [:]
        for round in 0..<20 {
            let process = Process()
            process.executableURL = try toolURL("skiff-wal-writer")
            process.arguments = [dir.path, "16"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Wait until it is writing, then a little more, then kill it mid-append.
            let deadline = Date().addingTimeInterval(10)
            var output = Data()
            while Date() < deadline, !String(decoding: output, as: UTF8.self).contains("\n1") && output.count < 64 {
                output.append(pipe.fileHandleForReading.availableData)
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 20...150, using: &generator)))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal, "round \(round)")
            output.append(pipe.fileHandleForReading.readDataToEndOfFile())
            let lines = String(decoding: output, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            for line in lines where !line.hasPrefix("ready") {
                let fields = line.split(separator: " ")
                acknowledged[UInt64(fields[0])!] = "a\(fields[1])s\(fields[2])"
            }
            try await withWAL(dir.path, options: WALOptions()) { wal, _ async throws in
                let all = try allEntries(wal)
                #expect(all.map(\.index.rawValue) == Array(1...UInt64(all.count)), "round \(round): log has a gap")
                var lost = 0, changed = 0
                for (index, text) in acknowledged {
                    if index > UInt64(all.count) { lost += 1; continue }
                    if !all[Int(index) - 1].payload.starts(with: Array(text.utf8)) { changed += 1 }
                }
                #expect(lost == 0 && changed == 0, "round \(round): \(lost) acknowledged appends lost, \(changed) changed")
            }
        }
        #expect(acknowledged.count > 20 * 16)
    }
}

/// The built executable `name`, next to the test bundle.
func toolURL(_ name: String) throws -> URL {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory.deleteLastPathComponent()
    }
    let fallback = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug/\(name)")
    guard FileManager.default.isExecutableFile(atPath: fallback.path) else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: name])
    }
    return fallback
}
