/// The key space as a snapshot body (see the CommandEncoding article):
/// `u8 version (1) | u64 record count | records`, each record `u32 key length | key | u32 value length |
/// value | u64 revision`, in the store's enumeration order, so equal key spaces give equal bytes.
public enum KVSnapshot {
    static let version: UInt8 = 1

    /// Writes the store's records through `sink`, in pieces of about `pieceBytes`.
    public static func write<Failure: Error>(_ store: KVStore, pieceBytes: Int = 64 << 10, to sink: ([UInt8]) throws(Failure) -> Void) throws(Failure) {
        var writer = KVWriter()
        writer.append(version)
        writer.append(UInt64(store.count))
        try store.forEachRecord { (key, record) throws(Failure) in
            writer.append(bytes: key)
            writer.append(bytes: record.value)
            writer.append(record.revision)
            if writer.bytes.count >= pieceBytes {
                try sink(writer.bytes)
                writer.bytes.removeAll(keepingCapacity: true)
            }
        }
        if !writer.bytes.isEmpty { try sink(writer.bytes) }
    }
}

/// Rebuilds a key space from snapshot bytes fed in pieces of any size, holding only one unfinished record
/// beyond the records themselves.
public struct KVSnapshotDecoder {
    private var pending: [UInt8] = []
    private var expected: UInt64?
    private var records: [KVStore.Key: KVStore.Record] = [:]

    public init() {}

    public struct Malformed: Error, CustomStringConvertible {
        public var description: String
    }

    public mutating func feed(_ piece: some Collection<UInt8>) throws(Malformed) {
        pending.append(contentsOf: piece)
        var consumed = 0
        let result: Malformed? = pending.withUnsafeBytes { buffer in
            var reader = KVReader(buffer)
            if expected == nil {
                guard reader.remaining >= 9 else { return nil }
                guard reader.read(UInt8.self) == KVSnapshot.version else { return Malformed(description: "unknown key-space snapshot version") }
                expected = reader.read(UInt64.self)
                consumed = reader.offset
            }
            while true {
                guard let key = reader.readBytes(), let value = reader.readBytes(), let revision = reader.read(UInt64.self) else { break }
                guard UInt64(records.count) < expected! else { return Malformed(description: "more records than the \(expected!) announced") }
                guard records.updateValue(KVStore.Record(value: value, revision: revision), forKey: KVStore.Key(key)) == nil else {
                    return Malformed(description: "a key appears twice")
                }
                consumed = reader.offset
            }
            return nil
        }
        if let result { throw result }
        pending.removeFirst(consumed)
    }

    /// The store, once every announced record has arrived and nothing is left over.
    public func finish() throws(Malformed) -> KVStore {
        guard let expected, UInt64(records.count) == expected, pending.isEmpty else {
            throw Malformed(description: "the snapshot ends early: \(records.count) of \(expected.map(String.init) ?? "?") records, \(pending.count) bytes left over")
        }
        let store = KVStore()
        store.replaceAll(with: records)
        return store
    }
}
