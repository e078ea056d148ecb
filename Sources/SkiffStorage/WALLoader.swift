import SkiffRaft

/// The result of reading a WAL directory from the first segment to the last.
struct LoadedWAL {
    var replay = LogReplay()
    var segments: [SegmentSummary] = []
    /// Every problem found; `load(strict: true)` throws the first instead.
    var problems: [WALError] = []
    /// The unfinished end of the newest segment, which `WAL.open` cuts off.
    var unfinishedTail: UnfinishedTail?
    /// Leftover temporary files from a segment creation that did not finish.
    var temporaryFiles: [String] = []
}

/// Bytes at the end of the newest segment that no sync was known to cover: from the first frame that
/// does not verify to the end of the file.
public struct UnfinishedTail: Sendable, Equatable {
    public var fileName: String
    public var offset: Int64
    public var bytes: Int64
    /// True when every byte is zero: preallocated space rather than a torn write.
    public var allZero: Bool
    /// Verified frames among those bytes, written while the torn one was still being synced; no sync covered
    /// them, so none was acknowledged.
    public var laterFrames = 0
}

enum WALLoader {
    /// The segment files of `directory`, by sequence number. Throws if two claim one sequence number.
    static func segmentNames(in directory: String, fileSystem: any FileSystem) throws(WALError) -> (segments: [String], temporary: [String]) {
        let names: [String]
        do { names = try fileSystem.contentsOfDirectory(directory) } catch {
            throw WALError(.io, file: directory, "cannot list the directory: \(error)")
        }
        var bySequence: [UInt64: String] = [:]
        for name in names {
            guard let parsed = SegmentHeader.parseFileName(name) else { continue }
            if let other = bySequence[parsed.sequence] {
                throw WALError(.discontinuity, file: directory, "segments \(other) and \(name) share sequence number \(parsed.sequence)")
            }
            bySequence[parsed.sequence] = name
        }
        let temporary = names.filter { $0.hasSuffix(".wal.tmp") }.sorted()
        return (bySequence.keys.sorted().map { bySequence[$0]! }, temporary)
    }

    /// Reads and verifies every segment. With `strict`, the first problem other than an unfinished tail of
    /// the newest segment is thrown; without it, problems are collected and reading goes on where it can.
    static func load(directory: String, fileSystem: any FileSystem, strict: Bool) throws(WALError) -> LoadedWAL {
        let (names, temporary) = try segmentNames(in: directory, fileSystem: fileSystem)
        var loaded = LoadedWAL()
        loaded.temporaryFiles = temporary
        var replayIsSound = true
        var buffer: [UInt8] = []  // one read buffer for every segment: no zeroing, no fresh pages each time
        func report(_ error: WALError) throws(WALError) {
            if strict { throw error }
            loaded.problems.append(error)
            replayIsSound = false
        }
        for (position, name) in names.enumerated() {
            let path = directory + "/" + name
            let isNewest = position == names.count - 1
            let count: Int
            do {
                let file = try fileSystem.openFile(path, writable: false)
                defer { try? file.close() }
                let size = Int(try file.size())
                if buffer.count < size { buffer = [UInt8](unsafeUninitializedCapacity: size) { $1 = size } }
                count = try buffer.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[..<size]), at: 0) }
            } catch {
                try report(WALError(.io, file: path, "cannot read: \(error)"))
                continue
            }
            let bytes = buffer[..<count]
            let header: SegmentHeader
            do {
                header = try withWALErrors(file: path) { try bytes.withUnsafeBytes { try SegmentHeader.decode($0, file: path) } }
            } catch {
                try report(error)
                continue
            }
            let claimed = SegmentHeader.parseFileName(name)!
            guard claimed.sequence == header.sequence, claimed.firstIndex == header.firstIndex.rawValue else {
                try report(WALError(.malformed, file: path, offset: 0,
                                    "file name says sequence \(claimed.sequence), first index \(claimed.firstIndex); header says \(header.sequence), \(header.firstIndex)"))
                continue
            }
            var summary = SegmentSummary(
                fileName: name, sequence: header.sequence, startsFresh: header.start == .fresh, version: header.version,
                firstIndex: header.firstIndex.rawValue, previousTerm: header.previousTerm.rawValue,
                fileBytes: Int64(bytes.count), validBytes: Int64(SegmentHeader.size))
            if replayIsSound {
                do { try loaded.replay.begin(header, file: path) } catch { try report(error) }
            }
            let scanner = SegmentScanner(file: path, header: header)
            let ending: SegmentScanner.Ending
            do {
                ending = try bytes.withUnsafeBytes { segmentBytes in
                    try scanner.scan(segmentBytes) { offset, frameHeader, body in
                        summary.frames += 1
                        summary.storedBodyBytes += Int64(frameHeader.storedLength)
                        summary.rawBodyBytes += Int64(frameHeader.rawLength)
                        summary.validBytes = offset + Int64(frameHeader.footprint)
                        do { try countRecords(body, into: &summary) } catch {
                            throw WALError(.malformed, file: path, offset: offset,
                                           "frame verifies but its body does not parse: \((error as? BodyFormatError)?.detail ?? "\(error)")")
                        }
                        if replayIsSound {
                            try loaded.replay.apply(body: body, sequence: header.sequence, offset: offset,
                                                    footprint: frameHeader.footprint, file: path)
                        }
                    }
                }
            } catch let error as WALError {
                try report(error)
                loaded.segments.append(summary)
                continue
            } catch {
                try report(WALError(.malformed, file: path, "\(error)"))
                loaded.segments.append(summary)
                continue
            }
            switch ending {
            case .clean:
                break
            case .corrupt(let offset, let next):
                let after = summary.writtenIndices?.upperBound ?? (header.firstIndex.rawValue - 1)
                let resume = bytes.withUnsafeBytes { firstEntryIndex(in: $0, frameAt: Int(next), sequence: header.sequence) }
                let affected = resume.flatMap { $0 > after + 1 ? (after + 1)...($0 - 1) : nil }
                try report(WALError(.checksumMismatch, file: path, offset: offset, indices: affected,
                                    "frame does not verify, but the frame at byte \(next) verifies and was written after it was durable: the log is corrupt after index \(after)"))
            case .unfinished(let offset, let count, let later):
                let allZero = bytes.withUnsafeBytes { SegmentScanner.isZero(UnsafeRawBufferPointer(rebasing: $0[Int(offset)...])) }
                if isNewest {
                    loaded.unfinishedTail = UnfinishedTail(fileName: name, offset: offset, bytes: count, allZero: allZero, laterFrames: later)
                } else {
                    let after = summary.writtenIndices?.upperBound ?? (header.firstIndex.rawValue - 1)
                    try report(WALError(.checksumMismatch, file: path, offset: offset,
                                        "\(count) bytes at the end of a segment that is not the newest do not verify; entries after index \(after) in this segment may be lost"))
                }
            }
            loaded.segments.append(summary)
        }
        if names.isEmpty && !temporary.isEmpty && !strict {
            loaded.problems.append(WALError(.notAWAL, file: directory, "only unfinished temporary segments"))
        }
        return loaded
    }

    private static func countRecords(_ body: UnsafeRawBufferPointer, into summary: inout SegmentSummary) throws {
        try BodyParser.forEachRecord(in: body) { view in
            summary.records += 1
            if case .entries(let first, let count, _) = view, count > 0 {
                summary.entries += count
                let last = first + UInt64(count) - 1
                let low = min(summary.writtenIndices?.lowerBound ?? first, first)
                summary.writtenIndices = low...max(summary.writtenIndices?.upperBound ?? last, last)
            }
        }
    }

    /// The first entry index in the verified frame at `offset`, if it has entries.
    private static func firstEntryIndex(in bytes: UnsafeRawBufferPointer, frameAt offset: Int, sequence: UInt64) -> UInt64? {
        let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
        var first: UInt64?
        _ = try? withDecodedFrame(rest, segment: sequence, offset: Int64(offset), file: "") { _, body in
            try BodyParser.forEachRecord(in: body) { view in
                if case .entries(let index, _, _) = view, first == nil { first = index }
            }
        }
        return first
    }
}
