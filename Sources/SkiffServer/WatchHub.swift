import SkiffKV

/// One change to one key: its value after the change, or nil if the change removed it. `revision` is the
/// index of the log entry that made it, the same on every member.
public struct WatchEvent: Equatable, Sendable {
    public var revision: UInt64
    public var key: [UInt8]
    public var value: [UInt8]?
}

/// The recent changes to the key space, so that a watch can start, or resume after a reconnection to any
/// member, from a past revision; and the watches to tell of new ones.
///
/// Guarantees: a watch gets every change under its prefix from its first revision on, once each and in
/// log order, or is told it cannot (the revision is older than the history kept here). The history is
/// bounded by `eventsMax` events and by `eventsMax` × 256 bytes of memory (keys, values and
/// `eventOverheadBytes` per event); the oldest revisions go first, whole. It starts empty when the node
/// starts (at its applied index) and when it installs a snapshot.
struct WatchHub {
    let eventsMax: Int
    var bytesMax: Int { eventsMax * 256 }
    /// What an event costs beyond its key and value bytes: the struct, two heap allocations and the array's
    /// slack (measured: 50,000 changes of 100-byte values took about 22 MiB, some 450 bytes each).
    static let eventOverheadBytes = 160

    /// Events with revisions from `historyStart` on are all here; earlier ones are not.
    private(set) var historyStart: UInt64
    private var events: [WatchEvent] = []
    private var eventsStart = 0
    private var bytes = 0
    private var watches: [Int64: (prefix: [UInt8], start: UInt64, deliver: ([WatchEvent]) -> Void, cut: (String) -> Void)] = [:]
    private var nextWatch: Int64 = 1

    init(appliedIndex: UInt64, eventsMax: Int) {
        precondition(eventsMax >= 1, "a history holds at least one change")
        historyStart = appliedIndex + 1
        self.eventsMax = eventsMax
    }

    /// The keys `command` may change in `store`, as it stands before the command is applied: each once, in
    /// an order every member computes alike (the command's own, or the store's enumeration order).
    static func keys(of command: KVCommand, in store: KVStore) -> [[UInt8]] {
        let keys = named(by: command, in: store)
        guard keys.count > 1 else { return keys }  // the common case, on the apply path: no set to build
        var seen = Set<[UInt8]>()
        return keys.filter { seen.insert($0).inserted }
    }

    private static func named(by command: KVCommand, in store: KVStore) -> [[UInt8]] {
        switch command {
        case .set(let key, _, _, _), .incrementBy(let key, _), .incrementByFloat(let key, _), .append(let key, _),
             .setRange(let key, _, _), .getDelete(let key):
            [key]
        case .delete(let keys): keys
        case .setMany(let pairs), .setManyIfNoneExist(let pairs): pairs.map(\.key)
        case .rename(let from, let to, _): [from, to]
        case .removeAll: store.scan(cursor: 0, count: Int.max, pattern: nil).keys
        case .transaction(_, let writes): writes.flatMap { named(by: $0, in: store) }
        }
    }

    /// Whether `command` can remove keys: only then does `record` need to know which keys existed before.
    static func mayRemoveKeys(_ command: KVCommand) -> Bool {
        switch command {
        case .delete, .getDelete, .rename, .removeAll: true
        case .set, .setMany, .setManyIfNoneExist, .incrementBy, .incrementByFloat, .append, .setRange: false
        case .transaction(_, let writes): writes.contains(where: mayRemoveKeys)
        }
    }

    /// Records what the entry at `revision` changed, given the keys it could change and, for a command that
    /// may remove keys, which of them existed before (nil otherwise); then tells the watches.
    mutating func record(revision: UInt64, keys: [[UInt8]], existedBefore: [Bool]?, store: KVStore) {
        assert(existedBefore.map { $0.count == keys.count } ?? true, "one answer per key")
        let first = events.count  // the changes go straight into the history: no array of their own to allocate
        for (position, key) in keys.enumerated() {
            let now = store.entry(for: key)
            if let now, now.revision == revision {
                events.append(WatchEvent(revision: revision, key: key, value: now.value))
            } else if now == nil, existedBefore?[position] == true {
                events.append(WatchEvent(revision: revision, key: key, value: nil))
            }
        }
        guard events.count > first else { return }
        bytes += events[first...].reduce(0) { $0 + Self.cost(of: $1) }
        let changes = watches.isEmpty ? [] : Array(events[first...])
        trim()
        for (_, watch) in watches where revision >= watch.start {
            let mine = changes.filter { $0.key.starts(with: watch.prefix) }
            if !mine.isEmpty { watch.deliver(mine) }
        }
    }

    /// Forgets the oldest revisions, whole, until the history fits its bounds again.
    private mutating func trim() {
        while events.count - eventsStart > eventsMax || bytes > bytesMax {
            let oldest = events[eventsStart].revision
            while eventsStart < events.count, events[eventsStart].revision == oldest {
                bytes -= Self.cost(of: events[eventsStart])
                eventsStart += 1
            }
            historyStart = oldest + 1
        }
        if eventsStart > events.count / 2, eventsStart > 1024 {
            events.removeFirst(eventsStart)
            eventsStart = 0
        }
    }

    private static func cost(of event: WatchEvent) -> Int { event.key.count + (event.value?.count ?? 0) + eventOverheadBytes }

    /// Starts a watch of `prefix` from revision `from` (the next change, if nil): the events since then
    /// are delivered at once. Fails with the oldest revision available if `from` is older.
    mutating func add(prefix: [UInt8], from: UInt64?, appliedIndex: UInt64, deliver: @escaping ([WatchEvent]) -> Void,
                      cut: @escaping (String) -> Void) -> Result<(id: Int64, from: UInt64), WatchRefusal> {
        let start = from ?? appliedIndex + 1
        guard start >= historyStart else {
            return .failure(WatchRefusal(message: "ERR revision \(start) is compacted here; the oldest revision available is \(historyStart)"))
        }
        let id = nextWatch
        nextWatch += 1
        watches[id] = (prefix, start, deliver, cut)
        let backlog = events[eventsStart...].filter { $0.revision >= start && $0.key.starts(with: prefix) }
        if !backlog.isEmpty { deliver(Array(backlog)) }
        return .success((id, start))
    }

    mutating func remove(_ id: Int64) { watches[id] = nil }

    /// The key space was replaced by a snapshot at `index`: what changed before it is unknown here, so every
    /// watch is cut off (it may resume on another member) and the history starts again after it.
    mutating func replaced(at index: UInt64) {
        events.removeAll()
        eventsStart = 0
        bytes = 0
        historyStart = index + 1
        let cut = watches.values.map(\.cut)
        watches.removeAll()
        for cut in cut { cut("ERR watch cut off: this node installed a snapshot at revision \(index) and does not know the changes before it; resume on another member") }
    }

    /// The node is stopping: every watch ends.
    mutating func cutAll(_ reason: String) {
        let cut = watches.values.map(\.cut)
        watches.removeAll()
        for cut in cut { cut(reason) }
    }
}

/// Why a watch cannot start here: it asked for revisions older than the history holds, or the node is stopping.
struct WatchRefusal: Error {
    var message: String
}
