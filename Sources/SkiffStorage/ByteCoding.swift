/// Appends little-endian integers and raw bytes to a growing array: the one encoder behind every on-disk format.
package struct ByteWriter {
    package private(set) var bytes: [UInt8]

    package init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    package var count: Int { bytes.count }

    package mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    package mutating func append(bytes other: some Sequence<UInt8>) { bytes.append(contentsOf: other) }

    mutating func append(zeros count: Int) { bytes.append(contentsOf: repeatElement(0, count: count)) }

    /// Overwrites a previously appended integer, for lengths and checksums known only later.
    mutating func set<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        precondition(offset + MemoryLayout<T>.size <= bytes.count, "set past the end")
        withUnsafeBytes(of: value.littleEndian) { source in
            for (i, byte) in source.enumerated() { bytes[offset + i] = byte }
        }
    }

    mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }
}

/// Reads little-endian integers from a byte buffer, failing (never trapping) on a short read.
package struct ByteReader {
    package let buffer: UnsafeRawBufferPointer
    package private(set) var offset: Int

    package init(_ buffer: UnsafeRawBufferPointer, offset: Int = 0) {
        self.buffer = buffer
        self.offset = offset
    }

    package var remaining: Int { buffer.count - offset }

    package mutating func read<T: FixedWidthInteger>(_: T.Type = T.self) -> T? {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { return nil }
        let value = buffer.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: value)
    }

    package mutating func readBytes(_ count: Int) -> UnsafeRawBufferPointer? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + count])
    }

    mutating func skip(_ count: Int) -> Bool {
        guard count >= 0, remaining >= count else { return false }
        offset += count
        return true
    }
}

extension Int {
    /// Rounds up to the next multiple of 8, the alignment of every WAL frame.
    var alignedTo8: Int { (self + 7) & ~7 }
}
