import SkiffRaft

/// What a frame body holds: a sequence of records, each `{ u8 type | u8[3] reserved | u32 length | content }`.
///
///     type 1, entries:    u64 first index | u32 count | u32 reserved
///                         then per entry: u64 term | u8 kind | u8[3] reserved | u32 payload length | payload
///     type 2, hard state: u64 term | u64 vote | u64 commit
///
/// Entries in one record are contiguous, starting at the first index.
public enum WALRecord: Hashable, Sendable {
    case entries([Entry])
    case hardState(HardState)

    static let typeEntries: UInt8 = 1
    static let typeHardState: UInt8 = 2
    static let headerSize = 8
    static let entryHeaderSize = 16
    static let entriesPreambleSize = 16
}

/// Builds a frame body record by record. Consecutive entry runs that join up share one entries record.
///
/// The body is built after `FrameHeader.size` reserved bytes, so `FrameEncoder` can turn it into a frame in
/// place, without copying the body.
struct BodyBuilder {
    /// The reserved frame header space, then the body.
    var bytes: [UInt8] = Array(repeating: 0, count: FrameHeader.size)
    /// Where the open entries record starts, and the index its next entry must have.
    private var openEntries: (start: Int, nextIndex: UInt64, count: UInt32)?

    var isEmpty: Bool { bytes.count == FrameHeader.size }
    var bodyCount: Int { bytes.count - FrameHeader.size }

    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        bytes.append(contentsOf: repeatElement(0, count: FrameHeader.size))
        openEntries = nil
    }

    mutating func append(entries: some Collection<Entry>) {
        guard let first = entries.first else { return }
        if openEntries == nil || openEntries!.nextIndex != first.index.rawValue {
            openEntries = (bytes.count, first.index.rawValue, 0)
            appendInteger(WALRecord.typeEntries)
            appendZeros(3)
            appendInteger(UInt32(0))  // content length, patched below
            appendInteger(first.index.rawValue)
            appendInteger(UInt32(0))  // count, patched below
            appendInteger(UInt32(0))
        }
        var open = openEntries!
        for entry in entries {
            precondition(entry.index.rawValue == open.nextIndex, "entries in a record must be contiguous")
            precondition(entry.payload.count <= FrameHeader.bytesMax, "entry payload too large")
            appendInteger(entry.term.rawValue)
            appendInteger(entry.kind.rawValue)
            appendZeros(3)
            appendInteger(UInt32(entry.payload.count))
            bytes.append(contentsOf: entry.payload)
            open.nextIndex += 1
            open.count += 1
        }
        openEntries = open
        patch(UInt32(bytes.count - open.start - WALRecord.headerSize), at: open.start + 4)
        patch(open.count, at: open.start + WALRecord.headerSize + 8)
    }

    mutating func append(hardState: HardState) {
        openEntries = nil
        appendInteger(WALRecord.typeHardState)
        appendZeros(3)
        appendInteger(UInt32(24))
        appendInteger(hardState.term.rawValue)
        appendInteger(hardState.vote.rawValue)
        appendInteger(hardState.commit.rawValue)
    }

    private mutating func appendInteger<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    private mutating func appendZeros(_ count: Int) { bytes.append(contentsOf: repeatElement(0, count: count)) }

    private mutating func patch(_ value: UInt32, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { source in
            for i in 0..<4 { bytes[offset + i] = source[i] }
        }
    }
}

/// A record seen in place, without copying payloads: what recovery and inspection walk over.
enum RecordView {
    case entries(firstIndex: UInt64, count: Int, content: UnsafeRawBufferPointer)
    case hardState(HardState)
}

/// The ways a verified body can fail to parse. Since the frame's checksum matched, any of them is a bug or a
/// format this build does not know, never a torn write.
struct BodyFormatError: Error { var detail: String }

enum BodyParser {
    /// Calls `visit` for each record of `body`, in order.
    static func forEachRecord(
        in body: UnsafeRawBufferPointer, _ visit: (RecordView) throws -> Void
    ) throws {
        var reader = ByteReader(body)
        while reader.remaining > 0 {
            guard let type = reader.read(UInt8.self), let reserved = reader.readBytes(3), let length = reader.read(UInt32.self),
                  let content = reader.readBytes(Int(length)) else {
                throw BodyFormatError(detail: "record header runs past the end of the body")
            }
            guard reserved.allSatisfy({ $0 == 0 }) else { throw BodyFormatError(detail: "record header has non-zero reserved bytes") }
            var inner = ByteReader(content)
            switch type {
            case WALRecord.typeEntries:
                guard let first = inner.read(UInt64.self), let count = inner.read(UInt32.self),
                      let reservedCount = inner.read(UInt32.self), first >= 1 else {
                    throw BodyFormatError(detail: "entries record is too short")
                }
                guard reservedCount == 0 else { throw BodyFormatError(detail: "entries record has non-zero reserved bytes") }
                let entryBytes = UnsafeRawBufferPointer(rebasing: content[inner.offset...])
                try visit(.entries(firstIndex: first, count: Int(count), content: entryBytes))
            case WALRecord.typeHardState:
                guard length == 24, let term = inner.read(UInt64.self), let vote = inner.read(UInt64.self),
                      let commit = inner.read(UInt64.self) else {
                    throw BodyFormatError(detail: "hard state record has length \(length), expected 24")
                }
                try visit(.hardState(HardState(term: Term(term), vote: NodeID(vote), commit: LogIndex(commit))))
            default:
                throw BodyFormatError(detail: "unknown record type \(type)")
            }
        }
    }

    /// Calls `visit` with the term, kind and payload of each entry in an entries record's content.
    /// Checks that the content holds exactly `count` entries.
    static func forEachEntry(
        in content: UnsafeRawBufferPointer, count: Int,
        _ visit: (_ term: UInt64, _ kind: Entry.Kind, _ payload: UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var reader = ByteReader(content)
        for _ in 0..<count {
            guard let term = reader.read(UInt64.self), let kindRaw = reader.read(UInt8.self), let reserved = reader.readBytes(3),
                  let length = reader.read(UInt32.self), let payload = reader.readBytes(Int(length)) else {
                throw BodyFormatError(detail: "entry runs past the end of its record")
            }
            guard reserved.allSatisfy({ $0 == 0 }) else { throw BodyFormatError(detail: "entry has non-zero reserved bytes") }
            guard let kind = Entry.Kind(rawValue: kindRaw) else {
                throw BodyFormatError(detail: "unknown entry kind \(kindRaw)")
            }
            try visit(term, kind, payload)
        }
        guard reader.remaining == 0 else {
            throw BodyFormatError(detail: "entries record has \(reader.remaining) bytes after its \(count) entries")
        }
    }

    /// Decodes every record of a body into values.
    static func records(in body: UnsafeRawBufferPointer) throws -> [WALRecord] {
        var records: [WALRecord] = []
        try forEachRecord(in: body) { view in
            switch view {
            case .hardState(let state):
                records.append(.hardState(state))
            case .entries(let first, let count, let content):
                var entries: [Entry] = []
                entries.reserveCapacity(count)
                var index = first
                try forEachEntry(in: content, count: count) { term, kind, payload in
                    entries.append(Entry(index: LogIndex(index), term: Term(term), kind: kind, payload: Array(payload)))
                    index += 1
                }
                records.append(.entries(entries))
            }
        }
        return records
    }
}
