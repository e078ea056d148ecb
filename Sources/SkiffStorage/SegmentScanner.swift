#if canImport(Glibc)
import Glibc
#endif
/// Walks the frames of one segment held in memory and decides where its valid data ends.
///
/// Every frame is verified. At the first frame that does not verify, the scanner searches every later
/// 8-byte-aligned offset for frames that do. Each such frame says how many bytes before it were not yet known
/// durable when it was written (*unsynced before*, see `FrameHeader`). If one of them shows the bad frame
/// lay wholly in the part already durable then, the bad frame was once durable and has changed since: that is
/// corruption. Otherwise the bytes from the bad frame on are a write that a power cut tore, with at most later
/// frames written while it was still being synced (which no sync finished, so nobody was told they were
/// durable), or zeroed preallocation; only the newest segment may end this way. No pattern of the bad bytes
/// (zeros, say) enters the decision.
struct SegmentScanner {
    enum Ending: Equatable {
        /// Every byte up to the end of the file belongs to a verified frame.
        case clean
        /// From `offset` on, nothing is known durable: an unfinished write or preallocated space, and
        /// `laterFrames` verified frames that were written while it was not yet synced.
        case unfinished(offset: Int64, bytes: Int64, laterFrames: Int)
        /// The frame at `offset` does not verify, yet the frame at `nextValidOffset` verifies and shows it was durable.
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
            let decoded = try withDecodedFrame(rest, segment: header.sequence, offset: frameOffset, file: file) { frame, body -> Int? in
                guard belongs(frame) else { return nil }
                try visit(frameOffset, frame, body)
                return frame.footprint
            }
            guard let footprint = decoded ?? nil else { return ending(afterBadFrameAt: offset, in: bytes) }
            offset += footprint
        }
        return .clean
    }

    /// Whether a verified frame can belong to this segment's version: version 1 has no *unsynced before*.
    private func belongs(_ frame: FrameHeader) -> Bool {
        header.version >= 2 || frame.unsyncedBefore == 0
    }

    /// What the bytes from the bad frame at `bad` to the end are: corruption if a later verified frame was
    /// written after the bad one was durable, else an unfinished write.
    private func ending(afterBadFrameAt bad: Int, in bytes: UnsafeRawBufferPointer) -> Ending {
        var later = 0
        var from = bad + 8
        while let (offset, frame) = verifiedFrame(in: bytes, from: from) {
            if offset - frame.unsyncedBefore > bad { return .corrupt(offset: Int64(bad), nextValidOffset: Int64(offset)) }
            later += 1
            from = offset + frame.footprint
        }
        return .unfinished(offset: Int64(bad), bytes: Int64(bytes.count - bad), laterFrames: later)
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

    /// The first aligned offset from `offset` on where a whole frame of this segment verifies, and its header.
    func verifiedFrame(in bytes: UnsafeRawBufferPointer, from offset: Int) -> (Int, FrameHeader)? {
        var candidate = offset
        while candidate + FrameHeader.size <= bytes.count {
            // A frame header of zeros never verifies (its type byte would be 0), so whole pages of zeros, such as
            // preallocated space, are skipped a page at a time; this saves time and changes no decision.
            while candidate + Self.zeroPage.count <= bytes.count,
                  memcmp(bytes.baseAddress! + candidate, Self.zeroPage.baseAddress!, Self.zeroPage.count) == 0 {
                candidate += Self.zeroPage.count
            }
            guard candidate + FrameHeader.size <= bytes.count else { break }
            let rest = UnsafeRawBufferPointer(rebasing: bytes[candidate...])
            if let frame = verifiedFrameHeader(rest, segment: header.sequence, offset: Int64(candidate)), belongs(frame) {
                return (candidate, frame)
            }
            candidate += 8
        }
        return nil
    }
}
