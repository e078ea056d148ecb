import Dispatch
import Logging
import SkiffRaft
import Synchronization

/// A segmented, checksummed write-ahead log of Raft entries and hard state, with group commit.
///
/// Guarantees: an append, truncation or hard-state save returns only after it is durable (unless
/// `fsync` is `.never`); concurrent appends are written in the order they were enqueued and share one
/// write and one fdatasync; every byte read back is verified. `open` cuts an unfinished write off the end of
/// the newest segment and fails, naming file and offset, on any other damage.
///
/// Leaves out: caching of entries in memory (callers keep their unstable tail), and any Raft rule beyond
/// "indices are contiguous and terms never decrease".
public final class WAL: @unchecked Sendable {
    public let directory: String
    let options: WALOptions
    let fileSystem: any FileSystem
    let logger: Logger

    /// What readers see: the live log and the open segment files. Updated by the writer after durability.
    struct ReadState {
        var replay: LogReplay
        var files: [UInt64: any StorageFile]
    }
    let readState: Mutex<ReadState>

    /// Requests not yet taken by the writer, and the log as it will be once they are done.
    struct Queue {
        var requests: [Request] = []
        var firstIndex: UInt64
        var lastIndex: UInt64
        /// The term of `firstIndex - 1`.
        var previousTerm: UInt64
        /// The term of every index from `firstIndex` to `lastIndex`, whether that entry is durable, being
        /// written, or still queued: a truncation needs the term at its cut, wherever that entry is.
        var terms: TermRuns
        /// Set once the WAL stops taking requests: closed, or an earlier write failed.
        var refusal: WALError?

        init(replay: LogReplay) {
            firstIndex = replay.firstIndex
            lastIndex = replay.lastIndex
            previousTerm = replay.previousTerm
            terms = replay.terms
        }

        func term(at index: UInt64) -> UInt64? {
            index == firstIndex - 1 ? previousTerm : terms.term(at: index)
        }

        var lastTerm: UInt64 { term(at: lastIndex)! }

        mutating func append(index: UInt64, term: UInt64) {
            precondition(index == lastIndex + 1, "append must continue the log: \(index) after \(lastIndex)")
            precondition(term >= lastTerm, "terms never decrease: \(term) after \(lastTerm)")
            terms.append(index: index, term: term)
            lastIndex = index
        }
    }
    let queue: Mutex<Queue>
    let wake = DispatchSemaphore(value: 0)
    /// Groups the writer has written and the sync stage has yet to make durable.
    let syncs = Mutex(SyncQueue())
    let syncWake = DispatchSemaphore(value: 0)
    let syncCounter = Atomic<Int>(0)
    /// Where the current segment's durable prefix ends, as far as the writer knows: every frame before it was
    /// covered by a finished fdatasync. Written by whichever thread finishes a sync; read when writing a frame.
    let syncedEnd = Atomic<Int64>(0)
    /// The next segment's file, prepared ahead by a helper thread.
    let spare = Mutex(SpareSegment())
    let spareReady = DispatchSemaphore(value: 0)

    enum Operation {
        case append([Entry], HardState?)
        case truncate(after: UInt64)
        case restart(after: UInt64, term: UInt64, HardState)
        case compact(through: UInt64)
        case close
    }
    struct Request {
        var operation: Operation
        var done: @Sendable (Result<Void, WALError>) -> Void
    }

    /// Owned by the writer thread alone once it starts.
    var writer: WriterState

    private init(directory: String, options: WALOptions, fileSystem: any FileSystem, logger: Logger,
                 replay: LogReplay, files: [UInt64: any StorageFile], writer: WriterState) {
        self.directory = directory
        self.options = options
        self.fileSystem = fileSystem
        self.logger = logger
        self.writer = writer
        readState = Mutex(ReadState(replay: replay, files: files))
        queue = Mutex(Queue(replay: replay))
    }

    /// Opens the WAL in `directory`, creating it if needed, after verifying every record.
    public static func open(
        directory: String, options: WALOptions = WALOptions(),
        fileSystem: any FileSystem = PosixFileSystem(), logger: Logger = Logger(label: "skiff.wal")
    ) throws(WALError) -> (WAL, WALRecoveryReport) {
        try options.validate()
        do { try fileSystem.createDirectory(directory) } catch {
            throw WALError(.io, file: directory, "cannot create the WAL directory: \(error)")
        }
        var loaded = try WALLoader.load(directory: directory, fileSystem: fileSystem, strict: true)
        var removed: [String] = []
        func remove(_ name: String) throws(WALError) {
            do { try fileSystem.removeFile(directory + "/" + name) } catch {
                throw WALError(.io, file: directory + "/" + name, "cannot remove: \(error)")
            }
            removed.append(name)
        }
        for name in loaded.temporaryFiles { try remove(name) }
        if let lastFresh = loaded.segments.lastIndex(where: \.startsFresh), lastFresh > 0 {
            for segment in loaded.segments[..<lastFresh] { try remove(segment.fileName) }
            loaded.segments.removeFirst(lastFresh)
        }
        if !removed.isEmpty { try syncDirectory(directory, fileSystem) }

        var writer = WriterState(options: options)
        var files: [UInt64: any StorageFile] = [:]
        // An older version's newest segment gets no more frames (a new segment follows it below): no zero fill.
        let upgrading = (loaded.segments.last?.version ?? SegmentHeader.version) < SegmentHeader.version
        do {
            for (position, segment) in loaded.segments.enumerated() {
                let isNewest = position == loaded.segments.count - 1
                let file = try fileSystem.openFile(directory + "/" + segment.fileName, writable: isNewest)
                // What a process killed before its fdatasync wrote is still only in the page cache: it is about
                // to be replayed as the log, acknowledged and built on, so it must reach the disk first.
                try file.sync()
                files[segment.sequence] = file
                writer.segments.append(SegmentHeader(
                    start: segment.startsFresh ? .fresh : .continues, sequence: segment.sequence,
                    firstIndex: LogIndex(segment.firstIndex), previousTerm: Term(segment.previousTerm), version: segment.version))
                if isNewest {
                    // Zeros to the segment's full size (a crash left the preallocation as it was) are already what
                    // filling would write: appends overwrite them as they would a new segment's.
                    let stillFilled = options.preallocate && loaded.unfinishedTail.map {
                        $0.allZero && $0.offset + $0.bytes >= Int64(options.segmentBytesMax)
                    } ?? false
                    if let tail = loaded.unfinishedTail, !stillFilled {
                        try file.truncate(to: tail.offset)
                        try file.sync()
                    }
                    writer.current = OpenSegment(file: file, sequence: segment.sequence, writeOffset: segment.validBytes)
                    writer.segmentStart = (segment.validBytes, 0)
                    if options.preallocate && !stillFilled && !upgrading {
                        try WAL.fillWithZeros(file, from: segment.validBytes, to: Int64(options.segmentBytesMax))
                        try file.sync()
                    }
                }
            }
        } catch {
            throw WALError(.io, file: directory, "cannot open segments for writing: \(error)")
        }
        try syncDirectory(directory, fileSystem)
        writer.nextSequence = (loaded.segments.last?.sequence ?? 0) + 1
        writer.hardState = loaded.replay.hardState
        if let tail = loaded.unfinishedTail {
            logger.warning("cut unfinished write off the WAL", metadata: [
                "file": "\(tail.fileName)", "offset": "\(tail.offset)", "bytes": "\(tail.bytes)",
                "kind": "\(tail.allZero ? "preallocated zeros" : "torn write")", "unsyncedFramesAfter": "\(tail.laterFrames)"])
        }

        let wal = WAL(directory: directory, options: options, fileSystem: fileSystem, logger: logger,
                      replay: loaded.replay, files: files, writer: writer)
        wal.syncedEnd.store(writer.current?.writeOffset ?? 0, ordering: .releasing)  // synced above
        if loaded.segments.isEmpty {
            try wal.writerCreateSegment(start: .fresh, firstIndex: 1, previousTerm: 0)
        } else if upgrading {
            // Frames go only into segments of the version this build writes: an older one is closed as it is.
            let last = loaded.replay.lastIndex
            try wal.writerCreateSegment(start: .continues, firstIndex: last + 1, previousTerm: loaded.replay.term(at: last)!)
        }
        wal.startWriter()
        let report = WALRecoveryReport(
            segments: loaded.segments, firstIndex: loaded.replay.firstIndex, lastIndex: loaded.replay.lastIndex,
            hardState: loaded.replay.hardState.description, cutTail: loaded.unfinishedTail, removedFiles: removed)
        logger.info("opened WAL", metadata: [
            "directory": "\(directory)", "segments": "\(max(1, loaded.segments.count))",
            "first": "\(loaded.replay.firstIndex)", "last": "\(loaded.replay.lastIndex)"])
        return (wal, report)
    }

    static func syncDirectory(_ directory: String, _ fileSystem: any FileSystem) throws(WALError) {
        do { try fileSystem.syncDirectory(directory) } catch {
            fatalError("fsync of directory \(directory) failed: \(error)")
        }
    }

    // MARK: State

    /// The index of the first entry still in the log; greater than `lastIndex` when the log is empty.
    public var firstIndex: LogIndex { readState.withLock { LogIndex($0.replay.firstIndex) } }
    /// The index of the last durable entry, or `firstIndex - 1` when the log is empty.
    public var lastIndex: LogIndex { readState.withLock { LogIndex($0.replay.lastIndex) } }
    /// How many fdatasyncs of segment files this WAL has done since it was opened.
    public var syncCount: Int { syncCounter.load(ordering: .relaxed) }
    /// The last durable hard state.
    public var hardState: HardState { readState.withLock { $0.replay.hardState } }

    /// The term of the entry at `index`, including `firstIndex - 1` (the term the log starts after);
    /// nil outside that range.
    public func term(at index: LogIndex) -> Term? {
        readState.withLock { $0.replay.term(at: index.rawValue).map { Term($0) } }
    }

    // MARK: Writes

    /// Appends entries that continue the log (the first index is one past the last entry appended or
    /// enqueued), optionally with a hard state, durably and atomically.
    public func append(_ entries: [Entry], hardState: HardState? = nil) async throws(WALError) {
        let result: Result<Void, WALError> = await withCheckedContinuation { continuation in
            append(entries, hardState: hardState) { continuation.resume(returning: $0) }
        }
        try result.get()
    }

    /// `append(_:hardState:)` for callers that cannot wait: `done` runs on the WAL's writer thread once the
    /// entries and hard state are durable. Appends and truncations run in the order they were made.
    public func append(_ entries: [Entry], hardState: HardState?, done: @escaping @Sendable (Result<Void, WALError>) -> Void) {
        submit({ queue throws(WALError) in
            try checkSize(entries)
            for entry in entries { queue.append(index: entry.index.rawValue, term: entry.term.rawValue) }
            return .append(entries, hardState)
        }, done: done)
    }

    /// Appends one entry at the next free index, which it returns once the entry is durable. Many callers may
    /// do this at once; they share writes and fsyncs.
    public func append(payload: [UInt8], term: Term, kind: Entry.Kind = .command) async throws(WALError) -> LogIndex {
        var assigned = LogIndex.zero
        try await submit { queue throws(WALError) in
            try checkSize([Entry(index: .zero, term: term, payload: payload)])
            queue.append(index: queue.lastIndex + 1, term: term.rawValue)
            assigned = LogIndex(queue.lastIndex)
            return .append([Entry(index: assigned, term: term, kind: kind, payload: payload)], nil)
        }
        return assigned
    }

    /// Durably records a new hard state.
    public func save(hardState: HardState) async throws(WALError) {
        try await submit { _ throws(WALError) in .append([], hardState) }
    }

    /// Drops every entry after `index` (a Raft log conflict). `index` may not be below `firstIndex - 1`.
    public func truncate(after index: LogIndex) async throws(WALError) {
        let result: Result<Void, WALError> = await withCheckedContinuation { continuation in
            truncate(after: index) { continuation.resume(returning: $0) }
        }
        try result.get()
    }

    /// `truncate(after:)` for callers that cannot wait; see `append(_:hardState:done:)`.
    public func truncate(after index: LogIndex, done: @escaping @Sendable (Result<Void, WALError>) -> Void) {
        submit({ queue throws(WALError) in
            precondition(index.rawValue + 1 >= queue.firstIndex, "cannot truncate into the compacted prefix; restart the log instead")
            if index.rawValue < queue.lastIndex {
                queue.lastIndex = index.rawValue
                queue.terms.truncate(after: index.rawValue)
            }
            return .truncate(after: index.rawValue)
        }, done: done)
    }

    /// Discards the whole log and starts it afresh after `index` with term `term`: what installing a snapshot
    /// at that point does. The hard state is saved in the same step.
    public func restart(after index: LogIndex, term: Term, hardState: HardState) async throws(WALError) {
        try await submit { queue throws(WALError) in
            queue.lastIndex = index.rawValue
            queue.firstIndex = index.rawValue + 1
            queue.previousTerm = term.rawValue
            queue.terms = TermRuns()
            return .restart(after: index.rawValue, term: term.rawValue, hardState)
        }
    }

    /// Removes whole segments all of whose entries are at or below `index` (they are in a snapshot).
    /// The newest segment always stays, so `firstIndex` may stay below `index + 1`.
    public func compact(through index: LogIndex) async throws(WALError) {
        try await submit { _ throws(WALError) in .compact(through: index.rawValue) }
    }

    /// Finishes every request already made, syncs, and closes the files. Later requests fail.
    public func close() async {
        // Answered by the writer once the files are closed; a second close is refused, which is fine.
        try? await submit { queue throws(WALError) in
            queue.refusal = WALError(.unavailable, file: directory, "the WAL is closed")
            return .close
        }
    }

    /// One append may fill at most half a frame, so a group (cut at `groupBytesMax`) always fits in one.
    static let appendBytesMax = FrameHeader.bytesMax / 2 - (8 << 20)

    private func checkSize(_ entries: [Entry]) throws(WALError) {
        let bytes = entries.reduce(WALRecord.headerSize + WALRecord.entriesPreambleSize) {
            $0 + WALRecord.entryHeaderSize + $1.payload.count
        }
        guard bytes <= Self.appendBytesMax else {
            throw WALError(.recordTooLarge, file: directory, "an append of \(bytes) bytes exceeds the limit of \(Self.appendBytesMax)")
        }
    }

    /// Enqueues the operation `make` builds (under the queue lock, so indices are assigned in queue order)
    /// and waits for the writer to finish it.
    private func submit(_ make: (inout Queue) throws(WALError) -> Operation) async throws(WALError) {
        let result: Result<Void, WALError> = await withCheckedContinuation { continuation in
            submit(make) { continuation.resume(returning: $0) }
        }
        try result.get()
    }

    /// Enqueues the operation `make` builds; `done` runs on the writer thread once it is finished (or at
    /// once, on the caller's thread, if the WAL refuses it).
    private func submit(_ make: (inout Queue) throws(WALError) -> Operation, done: @escaping @Sendable (Result<Void, WALError>) -> Void) {
        // The writer is woken only when the queue stops being empty: it takes everything queued when it wakes.
        let (refusal, wakeWriter) = queue.withLock { (queue: inout Queue) -> (WALError?, Bool) in
            if let refusal = queue.refusal { return (refusal, false) }
            do throws(WALError) {
                let operation = try make(&queue)
                queue.requests.append(Request(operation: operation, done: done))
                return (nil, queue.requests.count == 1)
            } catch {
                return (error, false)
            }
        }
        if let refusal { done(.failure(refusal)) } else if wakeWriter { wake.signal() }
    }
}
