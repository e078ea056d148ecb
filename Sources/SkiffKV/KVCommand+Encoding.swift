/// The log entry encoding of a `KVProposal` (see the CommandEncoding article):
/// `u8 version (1) | u64 origin | u64 request id | u8 operation | operands`, little-endian; byte strings are
/// `u32 length | bytes`, lists are `u32 count | items`.
extension KVProposal {
    static let version: UInt8 = 1

    enum Operation: UInt8 {
        case set = 1, delete, setMany, setManyIfNoneExist, incrementBy, incrementByFloat, append, setRange, getDelete,
             rename, removeAll, transaction
    }

    public func encoded() -> [UInt8] {
        var writer = KVWriter()
        writer.bytes.reserveCapacity(64 + command.payloadBytes)  // one allocation for the common commands
        writer.append(Self.version)
        writer.append(origin)
        writer.append(requestID)
        Self.append(command, to: &writer)
        return writer.bytes
    }

    private static func append(_ command: KVCommand, to writer: inout KVWriter) {
        switch command {
        case .set(let key, let value, let condition, let returnOld):
            writer.append(Operation.set.rawValue)
            writer.append(bytes: key)
            writer.append(bytes: value)
            writer.append(condition.rawValue)
            writer.append(UInt8(returnOld ? 1 : 0))
        case .delete(let keys):
            writer.append(Operation.delete.rawValue)
            writer.append(UInt32(keys.count))
            for key in keys { writer.append(bytes: key) }
        case .setMany(let pairs), .setManyIfNoneExist(let pairs):
            if case .setMany = command { writer.append(Operation.setMany.rawValue) } else { writer.append(Operation.setManyIfNoneExist.rawValue) }
            writer.append(UInt32(pairs.count))
            for pair in pairs {
                writer.append(bytes: pair.key)
                writer.append(bytes: pair.value)
            }
        case .incrementBy(let key, let delta):
            writer.append(Operation.incrementBy.rawValue)
            writer.append(bytes: key)
            writer.append(UInt64(bitPattern: delta))
        case .incrementByFloat(let key, let delta):
            writer.append(Operation.incrementByFloat.rawValue)
            writer.append(bytes: key)
            writer.append(delta.bitPattern)
        case .append(let key, let value):
            writer.append(Operation.append.rawValue)
            writer.append(bytes: key)
            writer.append(bytes: value)
        case .setRange(let key, let offset, let value):
            writer.append(Operation.setRange.rawValue)
            writer.append(bytes: key)
            writer.append(UInt64(offset))
            writer.append(bytes: value)
        case .getDelete(let key):
            writer.append(Operation.getDelete.rawValue)
            writer.append(bytes: key)
        case .rename(let from, let to, let onlyIfTargetAbsent):
            writer.append(Operation.rename.rawValue)
            writer.append(bytes: from)
            writer.append(bytes: to)
            writer.append(UInt8(onlyIfTargetAbsent ? 1 : 0))
        case .removeAll:
            writer.append(Operation.removeAll.rawValue)
        case .transaction(let watched, let writes):
            writer.append(Operation.transaction.rawValue)
            writer.append(UInt32(watched.count))
            for watch in watched {
                writer.append(bytes: watch.key)
                writer.append(watch.revision)
            }
            writer.append(UInt32(writes.count))
            for write in writes {
                precondition(!write.isTransaction, "a transaction never holds another")
                append(write, to: &writer)
            }
        }
    }

    /// Decodes `encoded()`; nil for bytes that are not a valid proposal (including trailing bytes).
    public init?(decoding bytes: [UInt8]) {
        let decoded: KVProposal? = bytes.withUnsafeBytes { buffer in
            var reader = KVReader(buffer)
            guard reader.read(UInt8.self) == Self.version, let origin = reader.read(UInt64.self),
                  let requestID = reader.read(UInt64.self), let raw = reader.read(UInt8.self),
                  let operation = Operation(rawValue: raw), let command = Self.decodeCommand(operation, &reader, nested: false),
                  reader.remaining == 0
            else { return nil }
            return KVProposal(origin: origin, requestID: requestID, command: command)
        }
        guard let decoded else { return nil }
        self = decoded
    }

    /// The command after its operation code; a transaction only at the top (`nested` false).
    private static func decodeCommand(_ operation: Operation, _ reader: inout KVReader, nested: Bool) -> KVCommand? {
        switch operation {
        case .set:
            guard let key = reader.readBytes(), let value = reader.readBytes(),
                  let condition = reader.read(UInt8.self).flatMap(KVCommand.SetCondition.init(rawValue:)),
                  let returnOld = reader.readFlag() else { return nil }
            return .set(key: key, value: value, condition: condition, returnOld: returnOld)
        case .delete:
            guard let keys = reader.readList({ $0.readBytes() }) else { return nil }
            return .delete(keys: keys)
        case .setMany, .setManyIfNoneExist:
            guard let pairs = reader.readList({ reader -> KVCommand.KeyValue? in
                guard let key = reader.readBytes(), let value = reader.readBytes() else { return nil }
                return KVCommand.KeyValue(key: key, value: value)
            }) else { return nil }
            return operation == .setMany ? .setMany(pairs) : .setManyIfNoneExist(pairs)
        case .incrementBy:
            guard let key = reader.readBytes(), let delta = reader.read(UInt64.self) else { return nil }
            return .incrementBy(key: key, delta: Int64(bitPattern: delta))
        case .incrementByFloat:
            guard let key = reader.readBytes(), let bits = reader.read(UInt64.self) else { return nil }
            return .incrementByFloat(key: key, delta: Double(bitPattern: bits))
        case .append:
            guard let key = reader.readBytes(), let value = reader.readBytes() else { return nil }
            return .append(key: key, value: value)
        case .setRange:
            guard let key = reader.readBytes(), let offset = reader.read(UInt64.self), offset <= UInt64(Int.max),
                  let value = reader.readBytes() else { return nil }
            return .setRange(key: key, offset: Int(offset), value: value)
        case .getDelete:
            guard let key = reader.readBytes() else { return nil }
            return .getDelete(key: key)
        case .rename:
            guard let from = reader.readBytes(), let to = reader.readBytes(), let flag = reader.readFlag() else { return nil }
            return .rename(from: from, to: to, onlyIfTargetAbsent: flag)
        case .removeAll:
            return .removeAll
        case .transaction:
            guard !nested, let watched = reader.readList({ reader -> KVCommand.WatchedKey? in
                guard let key = reader.readBytes(), let revision = reader.read(UInt64.self) else { return nil }
                return KVCommand.WatchedKey(key: key, revision: revision)
            }), let writes = reader.readList(itemBytesMin: 1, { reader -> KVCommand? in
                guard let operation = reader.read(UInt8.self).flatMap(Operation.init(rawValue:)) else { return nil }
                return decodeCommand(operation, &reader, nested: true)
            }) else { return nil }
            return .transaction(watched: watched, writes: writes)
        }
    }
}

/// Little-endian integers and length-prefixed byte strings, appended to a growing array.
struct KVWriter {
    var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(bytes value: [UInt8]) {
        append(UInt32(value.count))
        bytes.append(contentsOf: value)
    }
}

/// Reads what `KVWriter` writes, failing (never trapping) on short or inconsistent input.
struct KVReader {
    let buffer: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    var remaining: Int { buffer.count - offset }

    mutating func read<T: FixedWidthInteger>(_: T.Type) -> T? {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { return nil }
        defer { offset += size }
        return T(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    mutating func readFlag() -> Bool? {
        switch read(UInt8.self) {
        case 0: false
        case 1: true
        default: nil
        }
    }

    mutating func readBytes() -> [UInt8]? {
        guard let length = read(UInt32.self).map(Int.init), remaining >= length else { return nil }
        defer { offset += length }
        return Array(buffer[offset..<offset + length])
    }

    /// A count, then that many items; the count is bounded by the bytes left (each item takes at least
    /// `itemBytesMin`), so an impossible count reserves no memory.
    mutating func readList<T>(itemBytesMin: Int = 4, _ item: (inout KVReader) -> T?) -> [T]? {
        guard let count = read(UInt32.self).map(Int.init), count <= remaining / itemBytesMin else { return nil }
        var items: [T] = []
        items.reserveCapacity(count)
        for _ in 0..<count {
            guard let next = item(&self) else { return nil }
            items.append(next)
        }
        return items
    }
}
