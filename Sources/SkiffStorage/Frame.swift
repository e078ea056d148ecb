/// The unit of durability: one frame is written, then made durable with one fdatasync.
///
///     frame = { u32 stored length | u8 type (1 = batch) | u8 flags (bit 0: lz4) | u16 reserved
///               | u32 raw length | u32 CRC-32 | body (stored length bytes) | zero padding to 8 }
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

    var storedLength: Int
    var flags: UInt8
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
        let reserved = reader.read(UInt16.self)!
        let raw = Int(reader.read(UInt32.self)!)
        let crc = reader.read(UInt32.self)!
        guard type == typeBatch, reserved == 0, flags & ~flagCompressed == 0,
              stored <= bytesMax, raw <= bytesMax, (size + stored).alignedTo8 <= available else { return nil }
        let header = FrameHeader(storedLength: stored, flags: flags, rawLength: raw, crc: crc)
        if !header.isCompressed && raw != stored { return nil }
        return header
    }

    /// The checksum this frame must carry, given its stored body and where it lies.
    func expectedCRC(body: UnsafeRawBufferPointer, segment: UInt64, offset: Int64) -> UInt32 {
        var head = ByteWriter(capacity: 12)
        head.append(UInt32(storedLength))
        head.append(Self.typeBatch)
        head.append(flags)
        head.append(UInt16(0))
        head.append(UInt32(rawLength))
        let seed = Checksum.seed(segment: segment, offset: offset)
        let crc = head.bytes.withUnsafeBytes { Checksum.crc32($0, continuing: seed) }
        return Checksum.crc32(body, continuing: crc)
    }
}

/// Turns a raw body into the bytes of one frame, compressing when it pays. Reuses its buffers across calls.
struct FrameEncoder {
    /// Bodies at least this large are offered to lz4.
    var compressionThresholdBytes: Int
    private var compressed: [UInt8] = []
    private(set) var output: [UInt8] = []

    init(compressionThresholdBytes: Int) { self.compressionThresholdBytes = compressionThresholdBytes }

    /// Encodes `body` as a frame at `offset` of segment `segment`; the result is in `output`.
    mutating func encode(body: [UInt8], segment: UInt64, offset: Int64) {
        precondition(body.count <= FrameHeader.bytesMax, "frame body of \(body.count) bytes exceeds the limit")
        let useCompression = body.count >= compressionThresholdBytes
            && body.withUnsafeBytes { LZ4.compress($0, into: &compressed) }
        output.removeAll(keepingCapacity: true)
        let storedCount = useCompression ? compressed.count : body.count
        let flags: UInt8 = useCompression ? FrameHeader.flagCompressed : 0
        var header = FrameHeader(storedLength: storedCount, flags: flags, rawLength: body.count, crc: 0)
        func emit(_ stored: UnsafeRawBufferPointer) {
            header.crc = header.expectedCRC(body: stored, segment: segment, offset: offset)
            var head = ByteWriter(capacity: FrameHeader.size)
            head.append(UInt32(header.storedLength))
            head.append(FrameHeader.typeBatch)
            head.append(header.flags)
            head.append(UInt16(0))
            head.append(UInt32(header.rawLength))
            head.append(header.crc)
            output.append(contentsOf: head.bytes)
            output.append(contentsOf: stored)
            output.append(contentsOf: repeatElement(0, count: header.footprint - FrameHeader.size - storedCount))
        }
        if useCompression { compressed.withUnsafeBytes(emit) } else { body.withUnsafeBytes(emit) }
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

/// Verifies one frame held in `bytes` (which starts at the frame) and returns its raw body.
/// Returns nil for a frame that is not whole or does not verify; throws only if a verified frame's
/// compressed body does not decompress, which no torn write can cause.
func decodeFrame(
    _ bytes: UnsafeRawBufferPointer, segment: UInt64, offset: Int64, file: String
) throws(WALError) -> (header: FrameHeader, body: [UInt8])? {
    guard let header = verifiedFrameHeader(bytes, segment: segment, offset: offset) else { return nil }
    let stored = UnsafeRawBufferPointer(rebasing: bytes[FrameHeader.size..<FrameHeader.size + header.storedLength])
    guard header.isCompressed else { return (header, Array(stored)) }
    guard let raw = LZ4.decompress(stored, rawCount: header.rawLength) else {
        throw WALError(.malformed, file: file, offset: offset, "frame checksum verifies but its lz4 body does not decode")
    }
    return (header, raw)
}
