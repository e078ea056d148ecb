/// The unit of durability: one frame is written, then made durable with one fdatasync.
///
///     frame = { u32 stored length | u8 type (1 = batch) | u8 flags (bit 0: lz4) | u16 unsynced before
///               | u32 raw length | u32 CRC-32 | body (stored length bytes) | zero padding to 8 }
///
/// *Unsynced before* (format version 2; zero in version 1) counts, in 4 KiB units rounded up, how much of
/// the segment before this frame the writer had not yet seen made durable when it wrote the frame: the
/// writer writes the next group while the previous one is still being synced. The bytes before
/// `offset - unsyncedBefore` were durable when this frame was written, which is what lets recovery tell a
/// frame torn by a power cut (written, not yet synced) from one damaged after it was durable. Rounding up
/// only ever claims less durable than was.
///
/// The CRC covers the first 12 header bytes and the stored body, and starts from
/// `Checksum.seed(segment:offset:)`, so a frame verifies only in the segment and at the offset it was written to.
/// The body is the concatenation of records (`WALRecord`), lz4-compressed as a whole when flag bit 0 is set.
struct FrameHeader: Equatable, Sendable {
    static let size = 16
    static let typeBatch: UInt8 = 1
    static let flagCompressed: UInt8 = 1
    /// No frame may be larger than this, stored or raw: a length above it is never trusted.
    static let bytesMax = 256 << 20
    /// The unit of *unsynced before*.
    static let unsyncedUnit = 4096
    /// The most *unsynced before* can say (256 MiB less 4 KiB): a writer with more unsynced bytes behind it
    /// first waits for them to be synced (or, with fsync off, says this much, which claims more is durable
    /// than is: the strict side).
    static let unsyncedBytesMax = Int(UInt16.max) * unsyncedUnit

    var storedLength: Int
    var flags: UInt8
    /// Bytes of the segment just before this frame that were not known durable when it was written, rounded
    /// up to a multiple of `unsyncedUnit`.
    var unsyncedBefore: Int
    var rawLength: Int
    var crc: UInt32

    var isCompressed: Bool { flags & Self.flagCompressed != 0 }
    /// Bytes the frame occupies in the segment, padding included.
    var footprint: Int { (Self.size + storedLength).alignedTo8 }

    /// Parses the header fields and checks their ranges, without the checksum. `available` is how many bytes
    /// the file has from the frame's start; a frame that claims more is not whole.
    static func parse(_ bytes: UnsafeRawBufferPointer, available: Int) -> FrameHeader? {
        guard bytes.count >= size, available >= size else { return nil }
        var reader = ByteReader(bytes)
        let stored = Int(reader.read(UInt32.self)!)
        let type = reader.read(UInt8.self)!
        let flags = reader.read(UInt8.self)!
        let unsyncedUnits = reader.read(UInt16.self)!
        let raw = Int(reader.read(UInt32.self)!)
        let crc = reader.read(UInt32.self)!
        guard type == typeBatch, flags & ~flagCompressed == 0,
              stored <= bytesMax, raw <= bytesMax, (size + stored).alignedTo8 <= available else { return nil }
        let header = FrameHeader(storedLength: stored, flags: flags, unsyncedBefore: Int(unsyncedUnits) * unsyncedUnit, rawLength: raw, crc: crc)
        if !header.isCompressed && raw != stored { return nil }
        return header
    }

    /// The header's first 12 bytes, everything but the CRC.
    func headBytes() -> ByteWriter {
        var head = ByteWriter(capacity: Self.size)
        head.append(UInt32(storedLength))
        head.append(Self.typeBatch)
        head.append(flags)
        head.append(UInt16(unsyncedBefore / Self.unsyncedUnit))
        head.append(UInt32(rawLength))
        return head
    }

    /// The checksum this frame must carry, given its stored body and where it lies.
    func expectedCRC(body: UnsafeRawBufferPointer, segment: UInt64, offset: Int64) -> UInt32 {
        let head = headBytes()
        let seed = Checksum.seed(segment: segment, offset: offset)
        let crc = head.bytes.withUnsafeBytes { Checksum.crc32($0, continuing: seed) }
        return Checksum.crc32(body, continuing: crc)
    }
}

/// Turns a body built by `BodyBuilder` into the bytes of one frame, compressing when it pays. Reuses its
/// buffers across calls; an uncompressed body becomes the frame in place, without a copy.
struct FrameEncoder {
    /// Bodies at least this large are offered to lz4.
    var compressionThresholdBytes: Int
    /// Bodies larger than this are compressed only if their first this-many bytes compress to 7/8 or less:
    /// random data is not run through lz4 whole for nothing.
    static let sampleBytes = 64 << 10
    private var compressed: [UInt8] = []
    /// The finished frame after `encode`.
    private(set) var output: [UInt8] = []

    init(compressionThresholdBytes: Int) { self.compressionThresholdBytes = compressionThresholdBytes }

    /// Encodes the body in `builder` as a frame at `offset` of segment `segment`, behind `unsynced` bytes not
    /// yet known durable; the result is in `output`. Leaves `builder` to be reset before reuse.
    mutating func encode(_ builder: inout BodyBuilder, segment: UInt64, offset: Int64, unsynced: Int) {
        precondition(unsynced >= 0 && unsynced <= FrameHeader.unsyncedBytesMax && Int64(unsynced) <= offset - Int64(SegmentHeader.size),
                     "\(unsynced) unsynced bytes before a frame at \(offset)")
        let unsyncedBefore = (unsynced + FrameHeader.unsyncedUnit - 1) / FrameHeader.unsyncedUnit * FrameHeader.unsyncedUnit
        let rawCount = builder.bodyCount
        precondition(rawCount <= FrameHeader.bytesMax, "frame body of \(rawCount) bytes exceeds the limit")
        let useCompression = rawCount >= compressionThresholdBytes && builder.bytes.withUnsafeBytes { all in
            let body = UnsafeRawBufferPointer(rebasing: all[FrameHeader.size...])
            if body.count > Self.sampleBytes {
                let sample = UnsafeRawBufferPointer(rebasing: body[..<Self.sampleBytes])
                guard LZ4.compress(sample, into: &compressed), compressed.count <= Self.sampleBytes / 8 * 7 else { return false }
            }
            return LZ4.compress(body, into: &compressed)
        }
        if useCompression {
            output.removeAll(keepingCapacity: true)
            output.append(contentsOf: repeatElement(0, count: FrameHeader.size))
            output.append(contentsOf: compressed)
        } else {
            swap(&output, &builder.bytes)  // the body becomes the frame; the builder gets the old buffer
        }
        let storedCount = output.count - FrameHeader.size
        var header = FrameHeader(storedLength: storedCount, flags: useCompression ? FrameHeader.flagCompressed : 0,
                                 unsyncedBefore: unsyncedBefore, rawLength: rawCount, crc: 0)
        header.crc = output.withUnsafeBytes {
            header.expectedCRC(body: UnsafeRawBufferPointer(rebasing: $0[FrameHeader.size...]), segment: segment, offset: offset)
        }
        var head = header.headBytes()
        head.append(header.crc)
        output.replaceSubrange(0..<FrameHeader.size, with: head.bytes)
        output.append(contentsOf: repeatElement(0, count: header.footprint - output.count))
        // Check the frame at a second point: what was just encoded must decode to the same body (debug builds).
        assert(output.withUnsafeBytes { frame in
            (try? withDecodedFrame(frame, segment: segment, offset: offset, file: "") { _, body in body.count == rawCount }) == true
        }, "frame at \(offset) of segment \(segment) does not decode after encoding")
    }
}

/// The header of the frame at the start of `bytes` if the frame is whole and verifies: fields in range,
/// checksum right for this segment and offset, padding zero. Padding is outside the checksum, so it must be
/// zero for every byte of a frame to be checked.
func verifiedFrameHeader(_ bytes: UnsafeRawBufferPointer, segment: UInt64, offset: Int64) -> FrameHeader? {
    guard let header = FrameHeader.parse(bytes, available: bytes.count) else { return nil }
    let stored = UnsafeRawBufferPointer(rebasing: bytes[FrameHeader.size..<FrameHeader.size + header.storedLength])
    guard header.expectedCRC(body: stored, segment: segment, offset: offset) == header.crc,
          bytes[(FrameHeader.size + header.storedLength)..<header.footprint].allSatisfy({ $0 == 0 }) else { return nil }
    return header
}

/// Verifies the frame at the start of `bytes` and calls `body` with its header and raw body: the stored
/// bytes in place when uncompressed, else decompressed. Returns nil, without calling `body`, for a frame that
/// is not whole or does not verify; throws `.malformed` if a verified frame's lz4 body does not decode,
/// which no torn write can cause.
func withDecodedFrame<T>(
    _ bytes: UnsafeRawBufferPointer, segment: UInt64, offset: Int64, file: String,
    _ body: (FrameHeader, UnsafeRawBufferPointer) throws -> T
) throws -> T? {
    guard let header = verifiedFrameHeader(bytes, segment: segment, offset: offset) else { return nil }
    let stored = UnsafeRawBufferPointer(rebasing: bytes[FrameHeader.size..<FrameHeader.size + header.storedLength])
    guard header.isCompressed else { return try body(header, stored) }
    guard let raw = LZ4.decompress(stored, rawCount: header.rawLength) else {
        throw WALError(.malformed, file: file, offset: offset, "frame checksum verifies but its lz4 body does not decode")
    }
    return try raw.withUnsafeBytes { try body(header, $0) }
}
