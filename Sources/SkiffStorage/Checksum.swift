import CZlib

/// CRC-32 (the zlib/IEEE polynomial) over byte ranges, computed by zlib.
///
/// `seeded(segment:offset:)` mixes a record's location into the starting value, so bytes that were valid in
/// another file, or at another offset of this one, never verify where they are now.
package enum Checksum {
    package static func crc32(_ bytes: UnsafeRawBufferPointer, continuing seed: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return seed }
        var crc = UInt(seed)
        var pointer = base.assumingMemoryBound(to: Bytef.self)
        var remaining = bytes.count
        while remaining > 0 {  // zlib takes a 32-bit length
            let chunk = min(remaining, Int(UInt32.max >> 1))
            crc = CZlib.crc32(crc, pointer, uInt(chunk))
            pointer += chunk
            remaining -= chunk
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    package static func crc32(_ bytes: [UInt8], continuing seed: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { crc32($0, continuing: seed) }
    }

    /// The starting value for a frame at `offset` of the segment with sequence number `segment`.
    static func seed(segment: UInt64, offset: Int64) -> UInt32 {
        var identity = ByteWriter(capacity: 16)
        identity.append(segment)
        identity.append(UInt64(bitPattern: offset))
        return crc32(identity.bytes)
    }
}
