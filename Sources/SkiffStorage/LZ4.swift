import CLZ4

/// LZ4 block compression through liblz4. Blocks carry no framing of their own: callers store the raw length.
enum LZ4 {
    /// Compresses `source` into `destination` (overwritten). Returns false when the result would not be
    /// smaller than the input, in which case the caller stores the bytes raw.
    static func compress(_ source: UnsafeRawBufferPointer, into destination: inout [UInt8]) -> Bool {
        guard source.count > 0, source.count <= Int(LZ4_MAX_INPUT_SIZE) else { return false }
        let bound = Int(LZ4_compressBound(Int32(source.count)))
        if destination.count < bound { destination = [UInt8](repeating: 0, count: bound) }
        let limit = Int32(source.count - 1)  // anything not smaller is useless
        let written = destination.withUnsafeMutableBytes { out in
            LZ4_compress_default(
                source.baseAddress!.assumingMemoryBound(to: CChar.self),
                out.baseAddress!.assumingMemoryBound(to: CChar.self),
                Int32(source.count), limit)
        }
        guard written > 0 else { return false }
        destination.removeSubrange(Int(written)...)
        return true
    }

    /// Decompresses a block whose original length is known. Returns nil if the block is malformed or does not
    /// decode to exactly `rawCount` bytes.
    static func decompress(_ source: UnsafeRawBufferPointer, rawCount: Int) -> [UInt8]? {
        guard rawCount >= 0, source.count <= Int(Int32.max), rawCount <= Int(Int32.max) else { return nil }
        var output = [UInt8](repeating: 0, count: rawCount)
        let produced = output.withUnsafeMutableBytes { out -> Int32 in
            guard let src = source.baseAddress, let dst = out.baseAddress else { return rawCount == 0 ? 0 : -1 }
            return LZ4_decompress_safe(
                src.assumingMemoryBound(to: CChar.self), dst.assumingMemoryBound(to: CChar.self),
                Int32(source.count), Int32(rawCount))
        }
        return produced == Int32(rawCount) ? output : nil
    }
}
