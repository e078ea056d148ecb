import SkiffRaft

/// The fixed 48-byte header that opens every WAL segment file.
///
///     offset size field
///     0      8    magic "SKIFFWAL"
///     8      2    format version (2; version 1 is still read: its frames' *unsynced before* is always zero)
///     10     2    start: 0 = continues the log of the previous segment, 1 = the log starts afresh here
///     12     4    reserved, zero
///     16     8    sequence number (1, 2, 3, ...; never reused)
///     24     8    first index: the index of the first entry this segment holds
///     32     8    previous term: the term of entry (first index - 1); 0 if there is none
///     40     4    reserved, zero
///     44     4    CRC-32 of bytes 0..<44
///
/// A continuing segment whose first index is at or below the previous segment's last index cuts the log
/// there: this is how a suffix truncation is recorded. A fresh start discards every earlier segment: this is
/// how installing a snapshot is recorded.
struct SegmentHeader: Equatable, Sendable {
    enum Start: UInt16, Sendable { case continues = 0, fresh = 1 }

    static let size = 48
    static let magic = Array("SKIFFWAL".utf8)
    /// The version this build writes.
    static let version: UInt16 = 2
    /// The versions this build reads.
    static let readableVersions: ClosedRange<UInt16> = 1...2

    var start: Start
    var sequence: UInt64
    var firstIndex: LogIndex
    var previousTerm: Term
    /// The version the segment was written in.
    var version = SegmentHeader.version

    func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: Self.size)
        writer.append(bytes: Self.magic)
        writer.append(version)
        writer.append(start.rawValue)
        writer.append(UInt32(0))
        writer.append(sequence)
        writer.append(firstIndex.rawValue)
        writer.append(previousTerm.rawValue)
        writer.append(UInt32(0))
        writer.append(Checksum.crc32(writer.bytes))
        assert(writer.count == Self.size)
        return writer.bytes
    }

    /// Decodes and verifies a header; `file` names the segment in errors.
    static func decode(_ bytes: UnsafeRawBufferPointer, file: String) throws(WALError) -> SegmentHeader {
        guard bytes.count >= size else {
            throw WALError(.notAWAL, file: file, offset: 0, "file is \(bytes.count) bytes, shorter than a segment header")
        }
        guard Array(bytes[0..<8]) == magic else {
            throw WALError(.notAWAL, file: file, offset: 0, "no SKIFFWAL magic at the start of the file")
        }
        var reader = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[0..<size]), offset: 8)
        let version = reader.read(UInt16.self)!
        let startRaw = reader.read(UInt16.self)!
        let reserved1 = reader.read(UInt32.self)!
        let sequence = reader.read(UInt64.self)!
        let first = reader.read(UInt64.self)!
        let previousTerm = reader.read(UInt64.self)!
        let reserved2 = reader.read(UInt32.self)!
        let storedCRC = reader.read(UInt32.self)!
        // The version comes before the checksum: a later version may lay out (and check) its header differently.
        guard readableVersions.contains(version) else {
            throw WALError(.unsupportedVersion, file: file, offset: 8,
                           "segment format version \(version); this build reads versions \(readableVersions.lowerBound) to \(readableVersions.upperBound)")
        }
        let actualCRC = Checksum.crc32(UnsafeRawBufferPointer(rebasing: bytes[0..<44]))
        guard storedCRC == actualCRC else {
            throw WALError(.checksumMismatch, file: file, offset: 0, "segment header checksum mismatch")
        }
        guard let start = Start(rawValue: startRaw), reserved1 == 0, reserved2 == 0, first >= 1, sequence >= 1 else {
            throw WALError(.malformed, file: file, offset: 0, "segment header has out-of-range fields")
        }
        return SegmentHeader(start: start, sequence: sequence, firstIndex: LogIndex(first), previousTerm: Term(previousTerm), version: version)
    }

    /// `0000000003-00000000000000001024.wal`: sequence then first index, zero-padded so `ls` shows log order.
    var fileName: String { Self.fileName(sequence: sequence, firstIndex: firstIndex) }

    static func fileName(sequence: UInt64, firstIndex: LogIndex) -> String {
        pad(sequence, 10) + "-" + pad(firstIndex.rawValue, 20) + ".wal"
    }

    /// The sequence number and first index a segment file name claims, or nil if it is not a segment name.
    static func parseFileName(_ name: String) -> (sequence: UInt64, firstIndex: UInt64)? {
        guard name.hasSuffix(".wal") else { return nil }
        let parts = name.dropLast(4).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 10, parts[1].count == 20,
              let sequence = UInt64(parts[0]), let first = UInt64(parts[1]) else { return nil }
        return (sequence, first)
    }
}

func pad(_ value: UInt64, _ width: Int) -> String {
    let digits = String(value)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}
