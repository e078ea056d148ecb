import SkiffRaft

/// Where one live run of entries lies on disk: the frame at `offset` of segment `sequence`.
struct FrameRef: Sendable {
    var sequence: UInt64
    var offset: Int64
    var footprint: Int32
    var firstIndex: UInt64
    /// How many of the frame's entries are still in the log (fewer than written after a suffix truncation).
    var count: UInt32
    var lastIndex: UInt64 { firstIndex + UInt64(count) - 1 }
}

/// One segment file as recovery found it.
public struct SegmentSummary: Sendable {
    public var fileName: String
    public var sequence: UInt64
    public var startsFresh: Bool
    /// The format version the segment was written in.
    public var version: UInt16
    public var firstIndex: UInt64
    public var previousTerm: UInt64
    /// The indices of the entries written in this segment, superseded ones included; nil if none.
    public var writtenIndices: ClosedRange<UInt64>?
    public var frames = 0
    public var records = 0
    public var entries = 0
    public var fileBytes: Int64
    /// Where verified frames end; bytes after it are an unfinished write, preallocation or corruption.
    public var validBytes: Int64
    /// Bytes of frame bodies as stored (after compression) and as written by the caller (before).
    public var storedBodyBytes: Int64 = 0
    public var rawBodyBytes: Int64 = 0
}

/// Rebuilds the log from segment files in sequence order: the heart of recovery, shared by `WAL.open` and
/// by read-only inspection. Applies each segment header's meaning (continue, cut back, or start afresh) and
/// each frame's records, checking that indices join and terms agree.
struct LogReplay {
    private(set) var frames: [FrameRef] = []
    private(set) var terms = TermRuns()
    /// The first index of the log; the log is empty when `lastIndex == firstIndex - 1`.
    private(set) var firstIndex: UInt64 = 1
    private(set) var previousTerm: UInt64 = 0
    private(set) var lastIndex: UInt64 = 0
    private(set) var hardState = HardState.initial
    private var started = false

    /// Applies a segment header. `file` names the segment in errors.
    mutating func begin(_ header: SegmentHeader, file: String) throws(WALError) {
        let first = header.firstIndex.rawValue
        if !started || header.start == .fresh {
            frames.removeAll()
            terms = TermRuns()
            firstIndex = first
            previousTerm = header.previousTerm.rawValue
            lastIndex = first - 1
            started = true
            return
        }
        guard first <= lastIndex + 1 else {
            throw WALError(.discontinuity, file: file, offset: 24, indices: (lastIndex + 1)...(first - 1),
                           "segment starts at index \(first) but the log before it ends at \(lastIndex): entries are missing")
        }
        guard first >= firstIndex else {
            throw WALError(.discontinuity, file: file, offset: 24,
                           "segment continues at index \(first), before the log's first index \(firstIndex)")
        }
        let termBefore = first - 1 >= firstIndex ? terms.term(at: first - 1)! : previousTerm
        guard termBefore == header.previousTerm.rawValue else {
            throw WALError(.discontinuity, file: file, offset: 32, indices: (first - 1)...(first - 1),
                           "segment says entry \(first - 1) has term \(header.previousTerm), the log before it says \(termBefore)")
        }
        truncate(after: first - 1)
    }

    /// Applies one verified frame's body.
    mutating func apply(body: UnsafeRawBufferPointer, sequence: UInt64, offset: Int64, footprint: Int, file: String) throws(WALError) {
        do {
            try BodyParser.forEachRecord(in: body) { view in
                switch view {
                case .hardState(let state):
                    hardState = state
                case .entries(let first, let count, let content):
                    guard first == lastIndex + 1 else {
                        throw WALError(.discontinuity, file: file, offset: offset, indices: first...(first + UInt64(max(count, 1)) - 1),
                                       "entries start at \(first) but the log ends at \(lastIndex)")
                    }
                    var index = first
                    var previous = terms.term(at: lastIndex) ?? previousTerm
                    try BodyParser.forEachEntry(in: content, count: count) { term, _, _ in
                        guard term >= previous else {
                            throw WALError(.malformed, file: file, offset: offset, indices: index...index,
                                           "entry \(index) has term \(term), lower than the term \(previous) before it")
                        }
                        terms.append(index: index, term: term)
                        previous = term
                        index += 1
                    }
                    guard count > 0 else { return }
                    frames.append(FrameRef(sequence: sequence, offset: offset, footprint: Int32(footprint),
                                           firstIndex: first, count: UInt32(count)))
                    lastIndex = index - 1
                }
            }
        } catch let error as WALError {
            throw error
        } catch {
            throw WALError(.malformed, file: file, offset: offset, "frame verifies but its body does not parse: \((error as? BodyFormatError)?.detail ?? "\(error)")")
        }
    }

    /// Drops every entry above `index`.
    mutating func truncate(after index: UInt64) {
        guard index < lastIndex else { return }
        while let last = frames.last, last.firstIndex > index { frames.removeLast() }
        if let last = frames.last, last.lastIndex > index {
            frames[frames.count - 1].count = UInt32(index - last.firstIndex + 1)
        }
        terms.truncate(after: index)
        lastIndex = index
    }

    /// Starts the log afresh after `index`, whose term is `term` (a snapshot was installed).
    mutating func restart(after index: UInt64, term: UInt64) {
        frames.removeAll()
        terms = TermRuns()
        firstIndex = index + 1
        previousTerm = term
        lastIndex = index
        started = true
    }

    /// Forgets the frames of segments that were deleted; the log then starts at the first remaining frame.
    mutating func dropSegments(upTo sequence: UInt64, newFirstIndex: UInt64, newPreviousTerm: UInt64) {
        frames.removeAll { $0.sequence <= sequence }
        terms.removePrefix(below: newFirstIndex)
        firstIndex = newFirstIndex
        previousTerm = newPreviousTerm
    }

    mutating func append(frame: FrameRef, terms newTerms: [(UInt64, UInt64)]) {
        precondition(frame.firstIndex == lastIndex + 1, "frames must be contiguous")
        for (index, term) in newTerms { terms.append(index: index, term: term) }
        frames.append(frame)
        lastIndex = frame.lastIndex
    }

    mutating func set(hardState: HardState) { self.hardState = hardState }

    func term(at index: UInt64) -> UInt64? {
        if index == firstIndex - 1 { return previousTerm }
        return terms.term(at: index)
    }

    /// The live frames overlapping `range`.
    func frames(overlapping range: ClosedRange<UInt64>) -> ArraySlice<FrameRef> {
        var low = 0, high = frames.count  // first frame whose last index >= range.lowerBound
        while low < high {
            let mid = (low + high) / 2
            if frames[mid].lastIndex < range.lowerBound { low = mid + 1 } else { high = mid }
        }
        var end = low
        while end < frames.count && frames[end].firstIndex <= range.upperBound { end += 1 }
        return frames[low..<end]
    }
}
