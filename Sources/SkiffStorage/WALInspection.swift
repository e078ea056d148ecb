import SkiffRaft

/// A read-only look at a WAL directory, for operators and tools: safe on the WAL of a running node,
/// since it only reads and never repairs.
///
/// Unlike `WAL.open`, it goes on after a problem where it can and lists every problem it finds.
public struct WALInspection: Sendable {
    public var directory: String
    public var segments: [SegmentSummary]
    /// Damage that `WAL.open` would refuse, each naming file, offset and, where known, indices.
    public var problems: [WALError]
    /// Bytes after the last verified frame of the newest segment, which `WAL.open` would cut off.
    public var unfinishedTail: UnfinishedTail?
    public var firstIndex: UInt64
    public var lastIndex: UInt64
    public var hardState: HardState

    /// Sound: nothing `open` would refuse, and no torn write at the end (zeroed preallocation is fine).
    public var isSound: Bool { problems.isEmpty && (unfinishedTail?.allZero ?? true) }

    /// Accepts a WAL directory, or a node data directory holding one under `wal/`.
    public static func resolve(_ path: String, fileSystem: any FileSystem = PosixFileSystem()) -> String {
        fileSystem.isDirectory(path + "/wal") ? path + "/wal" : path
    }

    /// Reads and verifies every segment. Throws only if `directory` holds no WAL at all.
    public static func inspect(directory: String, fileSystem: any FileSystem = PosixFileSystem()) throws(WALError) -> WALInspection {
        let directory = resolve(directory, fileSystem: fileSystem)
        guard fileSystem.isDirectory(directory) else {
            throw WALError(.notAWAL, file: directory, fileSystem.fileExists(directory) ? "not a directory" : "no such directory")
        }
        let loaded = try WALLoader.load(directory: directory, fileSystem: fileSystem, strict: false)
        guard !loaded.segments.isEmpty || !loaded.problems.isEmpty else {
            throw WALError(.notAWAL, file: directory, "no WAL segment files (NNNNNNNNNN-NNNNNNNNNNNNNNNNNNNN.wal) in this directory")
        }
        return WALInspection(
            directory: directory, segments: loaded.segments, problems: loaded.problems,
            unfinishedTail: loaded.unfinishedTail, firstIndex: loaded.replay.firstIndex,
            lastIndex: loaded.replay.lastIndex, hardState: loaded.replay.hardState)
    }

    /// Where a record was found.
    public struct Location: Sendable {
        public var fileName: String
        public var frameOffset: Int64
        public var frameStoredBytes: Int
        public var frameRawBytes: Int
        public var compressed: Bool
    }

    /// Calls `visit` for every record of every verified frame, in file order. `superseded(index)` tells, for an
    /// entry of this segment, whether a later segment replaced or discarded it (a truncation or fresh start).
    /// A segment's scan stops at its first frame that does not verify; the returned notes say where, one per
    /// segment that could not be read to its end.
    @discardableResult
    public static func forEachRecord(
        directory: String, fileSystem: any FileSystem = PosixFileSystem(),
        _ visit: (Location, WALRecord, _ superseded: (UInt64) -> Bool) throws -> Void
    ) throws -> [String] {
        let directory = resolve(directory, fileSystem: fileSystem)
        guard fileSystem.isDirectory(directory) else {
            throw WALError(.notAWAL, file: directory, "not a directory")
        }
        var notes: [String] = []
        let names = try WALLoader.segmentNames(in: directory, fileSystem: fileSystem).segments
        guard !names.isEmpty else {
            throw WALError(.notAWAL, file: directory, "no WAL segment files in this directory")
        }
        var headers: [SegmentHeader?] = []
        var contents: [[UInt8]] = []
        for name in names {
            let path = directory + "/" + name
            let bytes = try withWALErrors(file: path) {
                let file = try fileSystem.openFile(path, writable: false)
                defer { try? file.close() }
                return try file.read(count: Int(try file.size()), at: 0)
            }
            do {
                headers.append(try bytes.withUnsafeBytes { try SegmentHeader.decode($0, file: path) })
            } catch {
                headers.append(nil)
                notes.append("skipped \(name): \(error)")
            }
            contents.append(bytes)
        }
        for (position, name) in names.enumerated() {
            guard let header = headers[position] else { continue }
            // The lowest index a later segment cut back to: entries of this segment from there on are gone.
            var cut = UInt64.max
            for later in headers[(position + 1)...].compactMap({ $0 }) {
                cut = min(cut, later.start == .fresh ? 0 : later.firstIndex.rawValue)
            }
            let scanner = SegmentScanner(file: directory + "/" + name, header: header)
            let ending = try contents[position].withUnsafeBytes { bytes in
                try scanner.scan(bytes) { offset, frame, body in
                    let location = Location(fileName: name, frameOffset: offset, frameStoredBytes: frame.storedLength,
                                            frameRawBytes: frame.rawLength, compressed: frame.isCompressed)
                    for record in try BodyParser.records(in: body) {
                        try visit(location, record) { $0 >= cut }
                    }
                }
            }
            switch ending {
            case .clean: break
            case .unfinished(let offset, _, _) where contents[position][Int(offset)...].allSatisfy({ $0 == 0 }): break
            case .unfinished(let offset, let count, let later):
                notes.append("\(name): stopped at byte \(offset): \(count) bytes of an unfinished write"
                             + (later > 0 ? ", with \(later) later frames written before it was synced" : ""))
            case .corrupt(let offset, let next):
                notes.append("\(name): stopped at byte \(offset): frame does not verify (the frame at byte \(next) verifies and was written after it was durable)")
            }
        }
        return notes
    }
}
