/// The replicated state machine: a key space of byte-string keys and values, each with the revision (the
/// log index) of its last change.
///
/// Guarantees: `apply` is deterministic (the same commands in the same order give the same key space and
/// the same replies on every node) and atomic per command. Keys are enumerated in a stable order, by a
/// 64-bit FNV-1a hash of the key and then the key itself, the same on every node and across restarts; that
/// order makes SCAN cursors plain numbers that any node understands.
/// Leaves out: expiry, types other than strings, and persistence (see `KVSnapshot`). Not thread-safe: the
/// node loop owns it.
public final class KVStore {
    struct Record {
        var value: [UInt8]
        var revision: UInt64
    }

    /// A key as the dictionary holds it. `[UInt8]` hashes byte by byte; this hashes the bytes in one pass
    /// (the same bytes, so the same equality), which is most of a lookup's cost for keys of some length.
    struct Key: Hashable {
        var bytes: [UInt8]
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
    }

    private(set) var records: [Key: Record] = [:]
    /// Keys in enumeration order, rebuilt on demand after keys come or go.
    private var order: [(hash: UInt64, key: [UInt8])]?

    /// The largest value a command may build (Redis's default proto-max-bulk-len). A constant, not a
    /// setting: every node must refuse exactly the same commands.
    public static let valueBytesMax = 512 << 20

    public init() {}

    public var count: Int { records.count }

    public func value(for key: [UInt8]) -> [UInt8]? { records[Key(key)]?.value }

    public func contains(_ key: [UInt8]) -> Bool { records[Key(key)] != nil }

    /// The key's value and revision (the log index of its last change), in one lookup.
    public func entry(for key: [UInt8]) -> (value: [UInt8], revision: UInt64)? {
        records[Key(key)].map { ($0.value, $0.revision) }
    }

    // MARK: Writes

    /// Applies `command`, written at log index `index`, and returns its reply.
    public func apply(_ command: KVCommand, at index: UInt64) -> KVReply {
        switch command {
        case .set(let key, let value, let condition, let returnOld):
            let old = records[Key(key)]?.value
            let allowed = switch condition {
            case .always: true
            case .ifAbsent: old == nil
            case .ifPresent: old != nil
            }
            if allowed { store(key, value, at: index) }
            if returnOld { return old.map(KVReply.bulk) ?? .null }
            return allowed ? .ok : .null
        case .delete(let keys):
            var removed: Int64 = 0
            for key in keys where remove(key) != nil { removed += 1 }
            return .integer(removed)
        case .setMany(let pairs):
            for pair in pairs { store(pair.key, pair.value, at: index) }
            return .ok
        case .setManyIfNoneExist(let pairs):
            if pairs.contains(where: { records[Key($0.key)] != nil }) { return .integer(0) }
            for pair in pairs { store(pair.key, pair.value, at: index) }
            return .integer(1)
        case .incrementBy(let key, let delta):
            var current: Int64 = 0
            if let old = records[Key(key)]?.value {
                guard let parsed = Self.parseInteger(old) else { return .error("ERR value is not an integer or out of range") }
                current = parsed
            }
            let (sum, overflow) = current.addingReportingOverflow(delta)
            if overflow { return .error("ERR increment or decrement would overflow") }
            store(key, Array(String(sum).utf8), at: index)
            return .integer(sum)
        case .incrementByFloat(let key, let delta):
            var current = 0.0
            if let old = records[Key(key)]?.value {
                guard let parsed = Self.parseFloat(old) else { return .error("ERR value is not a valid float") }
                current = parsed
            }
            let sum = current + delta
            guard sum.isFinite else { return .error("ERR increment would produce NaN or Infinity") }
            let text = Array(Self.format(sum).utf8)
            store(key, text, at: index)
            return .bulk(text)
        case .append(let key, let value):
            let old = records[Key(key)]?.value ?? []
            guard old.count + value.count <= Self.valueBytesMax else { return Self.tooLarge }
            store(key, old + value, at: index)
            return .integer(Int64(old.count + value.count))
        case .setRange(let key, let offset, let value):
            var current = records[Key(key)]?.value ?? []
            if value.isEmpty { return .integer(Int64(current.count)) }
            guard offset <= Self.valueBytesMax - value.count else { return Self.tooLarge }
            if current.count < offset + value.count {
                current.append(contentsOf: repeatElement(0, count: offset + value.count - current.count))
            }
            current.replaceSubrange(offset..<offset + value.count, with: value)
            store(key, current, at: index)
            return .integer(Int64(current.count))
        case .getDelete(let key):
            return remove(key).map(KVReply.bulk) ?? .null
        case .rename(let from, let to, let onlyIfTargetAbsent):
            guard let record = records[Key(from)] else { return .error("ERR no such key") }
            if onlyIfTargetAbsent && records[Key(to)] != nil { return .integer(0) }
            if from != to {
                remove(from)
                store(to, record.value, at: index)
            }
            return onlyIfTargetAbsent ? .integer(1) : .ok
        case .removeAll:
            records.removeAll()
            order = nil
            return .ok
        case .transaction(let watched, let writes):
            return applyTransaction(watched: watched, writes: writes, at: index)
        }
    }

    /// Applies a transaction's writes in order, all at `index`, if every watched key still has the revision
    /// it had; otherwise changes nothing and replies `null`. `between(n)` runs before write n and once after
    /// the last (n == writes.count), so that the node holding the transaction can answer the reads queued
    /// among its writes from the key space as each write leaves it.
    public func applyTransaction(watched: [KVCommand.WatchedKey], writes: [KVCommand], at index: UInt64,
                                 between: (_ writesApplied: Int) -> Void = { _ in }) -> KVReply {
        for watch in watched where (records[Key(watch.key)]?.revision ?? 0) != watch.revision { return .null }
        var replies: [KVReply] = []
        replies.reserveCapacity(writes.count)
        for (position, write) in writes.enumerated() {
            assert(!write.isTransaction, "a transaction never holds another")
            between(position)
            replies.append(apply(write, at: index))
        }
        between(writes.count)
        return .many(replies)
    }

    private static let tooLarge = KVReply.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")

    private func store(_ key: [UInt8], _ value: [UInt8], at index: UInt64) {
        if records.updateValue(Record(value: value, revision: index), forKey: Key(key)) == nil { order = nil }
    }

    @discardableResult
    private func remove(_ key: [UInt8]) -> [UInt8]? {
        guard let removed = records.removeValue(forKey: Key(key)) else { return nil }
        order = nil
        return removed.value
    }

    /// A decimal integer as Redis accepts one: an optional minus, digits, no leading zeros or spaces.
    static func parseInteger(_ bytes: [UInt8]) -> Int64? {
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        let digits = bytes.first == UInt8(ascii: "-") ? bytes.dropFirst() : bytes[...]
        guard let first = digits.first, digits.allSatisfy({ (48...57).contains($0) }),
              first != UInt8(ascii: "0") || digits.count == 1 else { return nil }
        if bytes == Array("-0".utf8) { return nil }
        return Int64(String(decoding: bytes, as: UTF8.self))
    }

    /// A finite decimal number, with no spaces, no "inf" or "nan".
    static func parseFloat(_ bytes: [UInt8]) -> Double? {
        guard !bytes.isEmpty, bytes.count <= 5000,
              bytes.allSatisfy({ (48...57).contains($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
                  || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }),
              let value = Double(String(decoding: bytes, as: UTF8.self)), value.isFinite else { return nil }
        return value
    }

    /// Integral values as integers (`3`, not `3.0`), others in the shortest form that reads back exactly.
    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    // MARK: Enumeration

    /// 64-bit FNV-1a: a hash that, unlike Swift's `Hasher`, is the same in every process.
    public static func stableHash(_ key: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return hash
    }

    private func enumerationOrder() -> [(hash: UInt64, key: [UInt8])] {
        if let order { return order }
        let built = records.keys.map { (Self.stableHash($0.bytes), $0.bytes) }.sorted {
            $0.0 != $1.0 ? $0.0 < $1.0 : $0.1.lexicographicallyPrecedes($1.1)
        }
        order = built
        return built
    }

    /// KEYS: every key matching `pattern`.
    public func keys(matching pattern: GlobPattern) -> [[UInt8]] {
        if pattern.matchesEverything { return records.keys.map(\.bytes) }
        return records.keys.compactMap { pattern.matches($0.bytes) ? $0.bytes : nil }
    }

    /// SCAN: from `cursor` (0 to start), about `count` keys in enumeration order, those matching `pattern`
    /// returned; the next cursor is 0 when the scan is complete. A key present from start to end of a scan is
    /// returned at least once; a key that comes or goes meanwhile may or may not be (as in Redis).
    public func scan(cursor: UInt64, count: Int, pattern: GlobPattern?) -> (next: UInt64, keys: [[UInt8]]) {
        let order = enumerationOrder()
        var position = order.partitioningIndex { $0.hash >= cursor }
        var examined = 0
        var keys: [[UInt8]] = []
        // Whole hash values at a time, so that the next cursor never splits keys that share one.
        while position < order.count, examined < max(1, count) || order[position].hash == order[position - 1].hash {
            let key = order[position].key
            if pattern?.matches(key) ?? true { keys.append(key) }
            examined += 1
            position += 1
        }
        return (position < order.count ? order[position].hash : 0, keys)
    }

    /// RANDOMKEY: any key, or nil if there are none.
    public func randomKey() -> [UInt8]? { records.keys.randomElement()?.bytes }

    /// Every record in enumeration order: what a snapshot holds.
    func forEachRecord<Failure: Error>(_ body: ([UInt8], Record) throws(Failure) -> Void) throws(Failure) {
        for (_, key) in enumerationOrder() { try body(key, records[Key(key)]!) }
    }

    /// Replaces the whole key space (restoring a snapshot).
    func replaceAll(with restored: [Key: Record]) {
        records = restored
        order = nil
    }
}

extension Array {
    /// The first index whose element satisfies `belongsInSecondPartition`, for an array already partitioned
    /// by it (binary search).
    func partitioningIndex(where belongsInSecondPartition: (Element) -> Bool) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if belongsInSecondPartition(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}

extension KVStore {
    /// An independent copy that shares storage until either side changes (copy on write): what a snapshot
    /// is written from while the node goes on applying.
    public func copy() -> KVStore {
        let copy = KVStore()
        copy.replaceAll(with: records)
        return copy
    }
}
