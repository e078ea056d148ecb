import SkiffRaft
import SkiffStorage

/// One record of the external log: what one slot of the store holds.
///
/// The store keeps records in numbered slots, each written once. A record is a batch of a leader's entries,
/// a leader's snapshot that replaces a log too far behind to continue, a seal that fences off a term, or, in
/// witness mode, a candidate's claim on the witness's vote (see the ExternalLog article for the rules readers
/// apply).
public enum ExternalRecord: Hashable, Sendable {
    /// Entries the leader of `term` appended, continuing its log after `previousIndex`/`previousTerm`, and
    /// its commit index when it wrote them (entries through it are known committed).
    case batch(term: Term, previousIndex: LogIndex, previousTerm: Term, entries: [Entry], commit: LogIndex)
    /// The leader of `term` continues the log from its snapshot at `index`/`snapshotTerm`, which is committed
    /// and already in the store: Raft's InstallSnapshot, for a log that ends before the leader's compacted one.
    case snapshot(term: Term, index: LogIndex, snapshotTerm: Term)
    /// From this slot on, records of `term` and every earlier term no longer count.
    case seal(term: Term)
    /// `candidate` asks the witness for its vote in `term`, with its log ending at `lastIndex`/`lastTerm`.
    /// Whether the vote is granted follows from the records before it (`ExternalLogView.apply(_:)`).
    case vote(term: Term, candidate: NodeID, lastIndex: LogIndex, lastTerm: Term)

    /// The term of the writer: the leader's term for a batch or a snapshot, the sealed term for a seal, the
    /// campaign's term for a vote.
    public var term: Term {
        switch self {
        case .batch(let term, _, _, _, _), .snapshot(let term, _, _), .seal(let term), .vote(let term, _, _, _): term
        }
    }
}

/// The byte form of an `ExternalRecord`. Little-endian:
///
///     magic u32 "SKXL" | version u8 (1) | kind u8 (1 batch, 2 seal, 3 vote, 4 snapshot) | zero u16 | term u64
///     batch only:    previous index u64 | previous term u64 | commit u64 | count u32 |
///                    count × (index u64 | term u64 | entry kind u8 | payload length u32 | payload)
///     vote only:     candidate u64 | last index u64 | last term u64
///     snapshot only: index u64 | snapshot term u64
///     crc32 u32 of everything before it, seeded with the slot number
///
/// The slot number in the checksum means a record copied into another slot never verifies there.
public enum ExternalRecordCoding {
    static let magic: UInt32 = 0x4C58_4B53  // "SKXL" as bytes
    static let version: UInt8 = 1

    public static func encode(_ record: ExternalRecord, slot: UInt64) -> [UInt8] {
        var writer = ByteWriter(capacity: 64)
        writer.append(magic)
        writer.append(version)
        let kind: UInt8 = switch record {
        case .batch: 1
        case .seal: 2
        case .vote: 3
        case .snapshot: 4
        }
        writer.append(kind)
        writer.append(UInt16(0))
        writer.append(record.term.rawValue)
        switch record {
        case .batch(_, let previousIndex, let previousTerm, let entries, let commit):
            writer.append(previousIndex.rawValue)
            writer.append(previousTerm.rawValue)
            writer.append(commit.rawValue)
            writer.append(UInt32(entries.count))
            for entry in entries {
                writer.append(entry.index.rawValue)
                writer.append(entry.term.rawValue)
                writer.append(entry.kind.rawValue)
                writer.append(UInt32(entry.payload.count))
                writer.append(bytes: entry.payload)
            }
        case .seal:
            break
        case .vote(_, let candidate, let lastIndex, let lastTerm):
            writer.append(candidate.rawValue)
            writer.append(lastIndex.rawValue)
            writer.append(lastTerm.rawValue)
        case .snapshot(_, let index, let snapshotTerm):
            writer.append(index.rawValue)
            writer.append(snapshotTerm.rawValue)
        }
        writer.append(Checksum.crc32(writer.bytes, continuing: seed(slot: slot)))
        return writer.bytes
    }

    /// Decodes the record stored at `slot`, or says what is wrong with the bytes.
    public static func decode(_ bytes: [UInt8], slot: UInt64) throws(ExternalLogError) -> ExternalRecord {
        func corrupt(_ reason: String) -> ExternalLogError { .corruptRecord(slot: slot, reason: reason) }
        guard bytes.count >= 20 else { throw corrupt("\(bytes.count) bytes is shorter than any record") }
        let body = bytes.count - 4
        let stored = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: body, as: UInt32.self) }
        let computed = bytes.withUnsafeBytes { Checksum.crc32(UnsafeRawBufferPointer(rebasing: $0[..<body]), continuing: seed(slot: slot)) }
        guard UInt32(littleEndian: stored) == computed else { throw corrupt("checksum mismatch (a torn, damaged or moved record)") }
        let decoded = bytes.withUnsafeBytes { buffer in
            Result { () throws(ExternalLogError) -> ExternalRecord in
                try decodeBody(UnsafeRawBufferPointer(rebasing: buffer[..<body]), slot: slot)
            }
        }
        return try decoded.get()
    }

    private static func decodeBody(_ body: UnsafeRawBufferPointer, slot: UInt64) throws(ExternalLogError) -> ExternalRecord {
        func corrupt(_ reason: String) -> ExternalLogError { .corruptRecord(slot: slot, reason: reason) }
        var reader = ByteReader(body)
        guard reader.read(UInt32.self) == magic else { throw corrupt("not an external log record (bad magic)") }
        guard let version = reader.read(UInt8.self), version == Self.version else { throw corrupt("unknown record version") }
        guard let kind = reader.read(UInt8.self), reader.read(UInt16.self) != nil, let term = reader.read(UInt64.self) else {
            throw corrupt("truncated header")
        }
        let record: ExternalRecord
        switch kind {
        case 1:
            guard let previousIndex = reader.read(UInt64.self), let previousTerm = reader.read(UInt64.self),
                  let commit = reader.read(UInt64.self), let count = reader.read(UInt32.self) else { throw corrupt("truncated batch header") }
            var entries: [Entry] = []
            entries.reserveCapacity(Int(min(count, 1 << 16)))
            for _ in 0..<count {
                guard let index = reader.read(UInt64.self), let entryTerm = reader.read(UInt64.self),
                      let rawKind = reader.read(UInt8.self), let length = reader.read(UInt32.self),
                      let payload = reader.readBytes(Int(length)) else { throw corrupt("truncated entry") }
                guard let entryKind = Entry.Kind(rawValue: rawKind) else { throw corrupt("unknown entry kind \(rawKind)") }
                entries.append(Entry(index: LogIndex(index), term: Term(entryTerm), kind: entryKind, payload: Array(payload)))
            }
            record = .batch(term: Term(term), previousIndex: LogIndex(previousIndex), previousTerm: Term(previousTerm), entries: entries,
                            commit: LogIndex(commit))
        case 2:
            record = .seal(term: Term(term))
        case 3:
            guard let candidate = reader.read(UInt64.self), let lastIndex = reader.read(UInt64.self),
                  let lastTerm = reader.read(UInt64.self) else { throw corrupt("truncated vote") }
            record = .vote(term: Term(term), candidate: NodeID(candidate), lastIndex: LogIndex(lastIndex), lastTerm: Term(lastTerm))
        case 4:
            guard let index = reader.read(UInt64.self), let snapshotTerm = reader.read(UInt64.self) else { throw corrupt("truncated snapshot") }
            record = .snapshot(term: Term(term), index: LogIndex(index), snapshotTerm: Term(snapshotTerm))
        default:
            throw corrupt("unknown record kind \(kind)")
        }
        guard reader.remaining == 0 else { throw corrupt("\(reader.remaining) bytes after the record") }
        return record
    }

    static func seed(slot: UInt64) -> UInt32 {
        var writer = ByteWriter(capacity: 8)
        writer.append(slot)
        return Checksum.crc32(writer.bytes)
    }
}
