#if canImport(Glibc)
import Glibc
#endif
/// Walks the frames of one segment held in memory and decides where its valid data ends.
///
/// Every frame is verified. At the first frame that does not verify, the scanner searches every later
/// 8-byte-aligned offset for a frame that does. Since the writer makes each frame durable before it writes
/// the next, a verified frame after a bad one proves the bad one was once durable: that is corruption.
/// If none follows, the bytes from the bad frame on are an unfinished write (or zeroed preallocation),
/// which only the newest segment may have. No pattern of the bad bytes (zeros, say) enters the decision.
struct SegmentScanner {
    enum Ending: Equatable {
        /// Every byte up to the end of the file belongs to a verified frame.
        case clean
        /// From `offset` on, nothing verifies: an unfinished write or preallocated space.
        case unfinished(offset: Int64, bytes: Int64)
        /// The frame at `offset` does not verify, yet a frame at `nextValidOffset` does.
        case corrupt(offset: Int64, nextValidOffset: Int64)
    }

    let file: String
    let header: SegmentHeader

    /// Calls `visit(offset, header, body)` for each verified frame and returns how the segment ends.
    /// Throws what `visit` throws, or `.malformed` for a verified frame whose body does not decompress.
    func scan(
        _ bytes: UnsafeRawBufferPointer,
        visit: (Int64, FrameHeader, UnsafeRawBufferPointer) throws -> Void
    ) throws -> Ending {
        var offset = SegmentHeader.size
        while offset < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            let frameOffset = Int64(offset)
            guard let footprint = try withDecodedFrame(rest, segment: header.sequence, offset: frameOffset, file: file, { frame, body in
                try visit(frameOffset, frame, body)
                return frame.footprint
            }) else {
                if let next = nextValidFrame(in: bytes, after: offset) {
                    return .corrupt(offset: Int64(offset), nextValidOffset: Int64(next))
                }
                return .unfinished(offset: Int64(offset), bytes: Int64(bytes.count - offset))
            }
            offset += footprint
        }
        return .clean
    }

    nonisolated(unsafe) static let zeroPage = UnsafeRawBufferPointer(UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8).initializeMemory(as: UInt8.self, repeating: 0))

    /// Whether every byte is zero (compared a page at a time).
    static func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let length = min(zeroPage.count, bytes.count - offset)
            if memcmp(bytes.baseAddress! + offset, zeroPage.baseAddress!, length) != 0 { return false }
            offset += length
        }
        return true
    }

    /// The first aligned offset after `offset` where a whole frame verifies, if any.
    func nextValidFrame(in bytes: UnsafeRawBufferPointer, after offset: Int) -> Int? {
        var candidate = offset + 8
        while candidate + FrameHeader.size <= bytes.count {
            // A frame header of zeros never verifies (its type byte would be 0), so whole pages of zeros, such as
            // preallocated space, are skipped a page at a time; this saves time and changes no decision.
            while candidate + Self.zeroPage.count <= bytes.count,
                  memcmp(bytes.baseAddress! + candidate, Self.zeroPage.baseAddress!, Self.zeroPage.count) == 0 {
                candidate += Self.zeroPage.count
            }
            guard candidate + FrameHeader.size <= bytes.count else { break }
            let rest = UnsafeRawBufferPointer(rebasing: bytes[candidate...])
            if verifiedFrameHeader(rest, segment: header.sequence, offset: Int64(candidate)) != nil { return candidate }
            candidate += 8
        }
        return nil
    }
}
