import SkiffKV

extension ReadCommand {
    /// The reply, computed from the local key space, as Redis would give it for a key space of strings.
    /// KEYS lists keys in no particular order; SCAN pages through them in the store's enumeration order.
    public func execute(on store: KVStore) -> RESPValue {
        switch self {
        case .get(let key):
            return Self.bulkOrNull(store.value(for: key))
        case .mget(let keys):
            return .array(keys.map { Self.bulkOrNull(store.value(for: $0)) })
        case .exists(let keys):
            return .integer(Int64(keys.count(where: { store.contains($0) })))
        case .strlen(let key):
            return .integer(Int64(store.value(for: key)?.count ?? 0))
        case .getRange(let key, let start, let end):
            return .bulk(Self.bytes(of: store.value(for: key) ?? [], from: start, through: end))
        case .keys(let pattern):
            return .array(store.keys(matching: GlobPattern(pattern)).map { RESPValue.bulk($0) })
        case .scan(let cursor, let pattern, let count):
            let page = store.scan(cursor: cursor, count: count, pattern: pattern.map { GlobPattern($0) })
            return .array([.bulk(String(page.next)), .array(page.keys.map { RESPValue.bulk($0) })])
        case .randomKey:
            return Self.bulkOrNull(store.randomKey())
        case .dbSize:
            return .integer(Int64(store.count))
        case .type(let key):
            return .simple(store.contains(key) ? "string" : "none")
        case .timeToLive(let key):
            return .integer(store.contains(key) ? -1 : -2)
        case .persist:
            return .integer(0)
        }
    }

    private static func bulkOrNull(_ value: [UInt8]?) -> RESPValue { value.map { RESPValue.bulk($0) } ?? .null }

    /// GETRANGE's bytes: `start` and `end` are inclusive, negative ones count back from the end; both are
    /// clamped to the value, and a range that is empty after clamping gives no bytes.
    private static func bytes(of value: [UInt8], from start: Int64, through end: Int64) -> [UInt8] {
        if start < 0 && end < 0 && start > end { return [] }
        let length = Int64(value.count)
        let first = max(0, start < 0 ? length + start : start)
        let last = min(length - 1, max(0, end < 0 ? length + end : end))
        guard length > 0, first <= last else { return [] }
        return Array(value[Int(first)...Int(last)])
    }
}
