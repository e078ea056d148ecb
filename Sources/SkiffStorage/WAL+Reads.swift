import SkiffRaft

extension WALError.Code {
    /// Not a code of its own on disk: reads of indices outside the log use `.unavailable`.
    static var outOfRange: WALError.Code { .unavailable }
}

extension WAL {
    /// The entries in `range`, read from disk and verified. Stops early, after at least one entry, once the
    /// payloads add up to `byteLimit`. Throws `.unavailable` if part of the range is not in the log
    /// (compacted away or not yet written), and `.checksumMismatch` if a frame no longer verifies.
    public func entries(in range: ClosedRange<LogIndex>, byteLimit: Int = .max) throws(WALError) -> [Entry] {
        let low = range.lowerBound.rawValue, high = range.upperBound.rawValue
        let (frames, files): ([FrameRef], [UInt64: any StorageFile]) = try readState.withLock { state throws(WALError) in
            guard low >= state.replay.firstIndex, high <= state.replay.lastIndex else {
                throw WALError(.outOfRange, file: directory,
                               "entries \(low)...\(high) are not all in the log (\(state.replay.firstIndex)...\(state.replay.lastIndex))")
            }
            let frames = Array(state.replay.frames(overlapping: low...high))
            var files: [UInt64: any StorageFile] = [:]
            for frame in frames { files[frame.sequence] = state.files[frame.sequence] }
            return (frames, files)
        }
        var result: [Entry] = []
        result.reserveCapacity(Int(min(high - low + 1, 4096)))
        var bytes = 0
        for frame in frames {
            guard let file = files[frame.sequence] else {
                throw WALError(.unavailable, file: directory, "segment \(frame.sequence) was removed while reading")
            }
            for entry in try readFrame(frame, from: file) where entry.index.rawValue >= low && entry.index.rawValue <= high {
                if !result.isEmpty && bytes + entry.payload.count > byteLimit { return result }
                bytes += entry.payload.count
                result.append(entry)
            }
        }
        return result
    }

    /// The entry at `index`.
    public func entry(at index: LogIndex) throws(WALError) -> Entry {
        try entries(in: index...index)[0]
    }

    /// Reads, verifies and decodes the live entries of one frame.
    private func readFrame(_ frame: FrameRef, from file: any StorageFile) throws(WALError) -> [Entry] {
        let bytes: [UInt8]
        do { bytes = try file.read(count: Int(frame.footprint), at: frame.offset) } catch {
            throw WALError(.io, file: file.path, offset: frame.offset, "read failed: \(error)")
        }
        let indices = frame.firstIndex...frame.lastIndex
        let entries = try withWALErrors(file: file.path) {
            try bytes.withUnsafeBytes { buffer in
                try withDecodedFrame(buffer, segment: frame.sequence, offset: frame.offset, file: file.path) { _, body in
                    do {
                        var entries: [Entry] = []
                        for case .entries(let run) in try BodyParser.records(in: body) {
                            entries.append(contentsOf: run.lazy.filter { indices.contains($0.index.rawValue) })
                        }
                        return entries
                    } catch {
                        throw WALError(.malformed, file: file.path, offset: frame.offset, indices: indices, "\(error)")
                    }
                }
            }
        }
        guard let entries else {
            throw WALError(.checksumMismatch, file: file.path, offset: frame.offset, indices: indices,
                           "frame no longer verifies")
        }
        return entries
    }
}
