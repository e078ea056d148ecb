/// A write to the key space, as one log entry carries it. Every node applies the same commands in the same
/// order and so holds the same key space; each command applies atomically, whatever number of keys it names.
///
/// Reads never enter the log: a node serves them from its own `KVStore` once it knows it is up to date.
public enum KVCommand: Hashable, Sendable {
    /// SET, SETNX and GETSET: store `value`, if `condition` allows; with `returnOld`, reply with the old value.
    case set(key: [UInt8], value: [UInt8], condition: SetCondition, returnOld: Bool)
    /// DEL: remove every key that exists; reply with how many did.
    case delete(keys: [[UInt8]])
    /// MSET: store every pair.
    case setMany([KeyValue])
    /// MSETNX: store every pair only if none of the keys exists.
    case setManyIfNoneExist([KeyValue])
    /// INCR, DECR, INCRBY, DECRBY: add `delta` to the integer stored at `key` (0 if absent).
    case incrementBy(key: [UInt8], delta: Int64)
    /// INCRBYFLOAT: add `delta` to the number stored at `key` (0 if absent).
    case incrementByFloat(key: [UInt8], delta: Double)
    /// APPEND: extend the value (an absent key counts as empty); reply with the new length.
    case append(key: [UInt8], value: [UInt8])
    /// SETRANGE: overwrite from `offset`, padding with zero bytes; reply with the new length.
    case setRange(key: [UInt8], offset: Int, value: [UInt8])
    /// GETDEL: reply with the value and remove the key.
    case getDelete(key: [UInt8])
    /// RENAME and RENAMENX.
    case rename(from: [UInt8], to: [UInt8], onlyIfTargetAbsent: Bool)
    /// FLUSHDB and FLUSHALL: remove every key.
    case removeAll
    /// MULTI ... EXEC: `writes` applied in order as one entry, with nothing between them, but only if every
    /// watched key still has the revision WATCH saw; otherwise none of them. Never holds a transaction.
    case transaction(watched: [WatchedKey], writes: [KVCommand])

    public enum SetCondition: UInt8, Hashable, Sendable {
        case always = 0
        /// NX: only if the key does not exist.
        case ifAbsent = 1
        /// XX: only if the key exists.
        case ifPresent = 2
    }

    /// A key named by WATCH and its revision when WATCH read it: the log index of its last change, or 0 if
    /// it did not exist then.
    public struct WatchedKey: Hashable, Sendable {
        public var key: [UInt8]
        public var revision: UInt64
        public init(key: [UInt8], revision: UInt64) {
            self.key = key
            self.revision = revision
        }
    }

    public struct KeyValue: Hashable, Sendable {
        public var key: [UInt8]
        public var value: [UInt8]
        public init(key: [UInt8], value: [UInt8]) {
            self.key = key
            self.value = value
        }
    }
}

/// A write as proposed: the command, and who is waiting for its reply. `origin` is the node a client sent
/// it to and `requestID` that node's number for it, so the origin can answer the client when it applies the
/// entry, whichever node proposed it to Raft.
public struct KVProposal: Hashable, Sendable {
    public var origin: UInt64
    public var requestID: UInt64
    public var command: KVCommand

    public init(origin: UInt64, requestID: UInt64, command: KVCommand) {
        self.origin = origin
        self.requestID = requestID
        self.command = command
    }
}

/// What applying a write replied, in terms a client protocol maps onto its own replies.
public enum KVReply: Hashable, Sendable {
    case ok
    case null
    case integer(Int64)
    case bulk([UInt8])
    /// A refusal in Redis's wording, without the leading "-" (`ERR no such key`).
    case error(String)
    /// A transaction that ran: each write's reply, in order. One that did not run (a watched key changed)
    /// replies `null`.
    case many([KVReply])
}

extension KVCommand {
    var isTransaction: Bool {
        if case .transaction = self { true } else { false }
    }

    /// The bytes of keys and values the command carries: what bounds the size of its log entry.
    public var payloadBytes: Int {
        switch self {
        case .set(let key, let value, _, _), .append(let key, let value), .setRange(let key, _, let value): key.count + value.count
        case .delete(let keys): keys.reduce(0) { $0 + $1.count }
        case .setMany(let pairs), .setManyIfNoneExist(let pairs): pairs.reduce(0) { $0 + $1.key.count + $1.value.count }
        case .incrementBy(let key, _), .incrementByFloat(let key, _), .getDelete(let key): key.count
        case .rename(let from, let to, _): from.count + to.count
        case .removeAll: 0
        case .transaction(let watched, let writes):
            watched.reduce(0) { $0 + $1.key.count } + writes.reduce(0) { $0 + $1.payloadBytes }
        }
    }
}
