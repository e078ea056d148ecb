import SkiffKV

extension ClientCommand {
    /// Reads of the key space; nil for any other name.
    static func readCommand(_ arguments: CommandArguments) throws(RESPCommandError) -> ReadCommand? {
        switch arguments.name {
        case "get":
            try arguments.requireCount(2)
            return .get(arguments[1])
        case "mget":
            try arguments.requireCount(2...)
            return .mget(arguments.words(from: 1))
        case "exists", "touch":  // TOUCH only counts the keys that exist: no key has an access time here
            try arguments.requireCount(2...)
            return .exists(arguments.words(from: 1))
        case "strlen":
            try arguments.requireCount(2)
            return .strlen(arguments[1])
        case "getrange", "substr":
            try arguments.requireCount(4)
            return try .getRange(arguments[1], start: arguments.integer(at: 2), end: arguments.integer(at: 3))
        case "keys":
            try arguments.requireCount(2)
            return .keys(pattern: arguments[1])
        case "scan":
            try arguments.requireCount(2...)
            return try scan(arguments)
        case "randomkey":
            try arguments.requireCount(1)
            return .randomKey
        case "dbsize":
            try arguments.requireCount(1)
            return .dbSize
        case "type":
            try arguments.requireCount(2)
            return .type(arguments[1])
        case "ttl", "pttl", "expiretime", "pexpiretime":
            try arguments.requireCount(2)
            return .timeToLive(arguments[1])
        case "persist":
            try arguments.requireCount(2)
            return .persist(arguments[1])
        case "getex":
            try arguments.requireCount(2...)
            return try getWithExpiry(arguments)
        default:
            return nil
        }
    }

    /// `GETEX key [EX | PX | EXAT | PXAT time | PERSIST]`: a GET, since no key has a timeout to remove;
    /// setting one is refused.
    private static func getWithExpiry(_ arguments: CommandArguments) throws(RESPCommandError) -> ReadCommand {
        guard arguments.count > 2 else { return .get(arguments[1]) }
        let option = arguments.word(at: 2)
        if option == "persist", arguments.count == 3 { return .get(arguments[1]) }
        if ["ex", "px", "exat", "pxat"].contains(option), arguments.count == 4 {
            throw RESPCommandError("ERR expiry options (EX, PX, EXAT, PXAT) are not supported by Skiff")
        }
        throw .syntax
    }

    /// Writes, each a `KVCommand` for the log; nil for any other name.
    static func writeCommand(_ arguments: CommandArguments) throws(RESPCommandError) -> ClientCommand? {
        switch arguments.name {
        case "set":
            try arguments.requireCount(3...)
            return try set(arguments)
        case "setnx":
            try arguments.requireCount(3)
            let setIfAbsent = KVCommand.set(key: arguments[1], value: arguments[2], condition: .ifAbsent, returnOld: false)
            return .write(setIfAbsent, reply: .setIfAbsentAsInteger)
        case "getset":
            try arguments.requireCount(3)
            return plainWrite(.set(key: arguments[1], value: arguments[2], condition: .always, returnOld: true))
        case "getdel":
            try arguments.requireCount(2)
            return plainWrite(.getDelete(key: arguments[1]))
        case "del", "unlink":
            try arguments.requireCount(2...)
            return plainWrite(.delete(keys: arguments.words(from: 1)))
        case "mset", "msetnx":
            try arguments.requireCount(3...)
            guard arguments.count % 2 == 1 else { throw .wrongArityWhenRun(arguments.name) }
            let pairs = stride(from: 1, to: arguments.count, by: 2).map {
                KVCommand.KeyValue(key: arguments[$0], value: arguments[$0 + 1])
            }
            return plainWrite(arguments.name == "mset" ? .setMany(pairs) : .setManyIfNoneExist(pairs))
        case "incr", "decr":
            try arguments.requireCount(2)
            return plainWrite(.incrementBy(key: arguments[1], delta: arguments.name == "incr" ? 1 : -1))
        case "incrby":
            try arguments.requireCount(3)
            return try plainWrite(.incrementBy(key: arguments[1], delta: arguments.integer(at: 2)))
        case "decrby":
            try arguments.requireCount(3)
            let decrement = try arguments.integer(at: 2)
            guard decrement != .min else { throw RESPCommandError("ERR decrement would overflow") }
            return plainWrite(.incrementBy(key: arguments[1], delta: -decrement))
        case "incrbyfloat":
            try arguments.requireCount(3)
            return try plainWrite(.incrementByFloat(key: arguments[1], delta: arguments.float(at: 2)))
        case "append":
            try arguments.requireCount(3)
            return plainWrite(.append(key: arguments[1], value: arguments[2]))
        case "setrange":
            try arguments.requireCount(4)
            return try setRange(arguments)
        case "rename", "renamenx":
            try arguments.requireCount(3)
            return plainWrite(.rename(from: arguments[1], to: arguments[2], onlyIfTargetAbsent: arguments.name == "renamenx"))
        case "flushdb", "flushall":
            guard arguments.count == 1 || (arguments.count == 2 && ["async", "sync"].contains(arguments.word(at: 1))) else {
                throw .syntax
            }
            return plainWrite(.removeAll)
        case "expire", "pexpire", "expireat", "pexpireat", "setex", "psetex":
            if arguments.name.hasSuffix("setex") { try arguments.requireCount(4) } else { try arguments.requireCount(3...) }
            throw RESPCommandError("ERR key expiry is not supported by Skiff")
        default:
            return nil
        }
    }

    private static func plainWrite(_ command: KVCommand) -> ClientCommand { .write(command, reply: .plain) }

    /// `SET key value [NX | XX] [GET] [KEEPTTL]`; KEEPTTL changes nothing, since no key has an expiry to
    /// keep, and the other expiry options are refused.
    private static func set(_ arguments: CommandArguments) throws(RESPCommandError) -> ClientCommand {
        var condition = KVCommand.SetCondition.always
        var returnOld = false
        for position in 3..<arguments.count {
            switch arguments.word(at: position) {
            case "nx" where condition != .ifPresent: condition = .ifAbsent
            case "xx" where condition != .ifAbsent: condition = .ifPresent
            case "get": returnOld = true
            case "keepttl": break
            case "ex", "px", "exat", "pxat":
                throw RESPCommandError("ERR expiry options (EX, PX, EXAT, PXAT) are not supported by Skiff")
            default: throw .syntax
            }
        }
        return plainWrite(.set(key: arguments[1], value: arguments[2], condition: condition, returnOld: returnOld))
    }

    /// `SETRANGE key offset value`, refused here if the result could not fit, as Redis does before writing.
    private static func setRange(_ arguments: CommandArguments) throws(RESPCommandError) -> ClientCommand {
        let offset = try arguments.integer(at: 2)
        let value = arguments[3]
        guard offset >= 0 else { throw RESPCommandError("ERR offset is out of range") }
        // An empty value changes nothing, so Redis lets any offset through.
        guard value.isEmpty || offset <= Int64(KVStore.valueBytesMax - value.count) else {
            throw RESPCommandError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        }
        return plainWrite(.setRange(key: arguments[1], offset: Int(offset), value: value))
    }

    /// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`; the only type is `string`.
    private static func scan(_ arguments: CommandArguments) throws(RESPCommandError) -> ReadCommand {
        let cursorText = arguments[1]
        guard !cursorText.isEmpty, cursorText.allSatisfy(CommandArguments.isDigit),
              let cursor = UInt64(String(decoding: cursorText, as: UTF8.self)) else { throw RESPCommandError("ERR invalid cursor") }
        var pattern: [UInt8]?
        var count = 10
        var position = 2
        while position < arguments.count {
            guard position + 1 < arguments.count else { throw .syntax }
            switch arguments.word(at: position) {
            case "match":
                pattern = arguments[position + 1]
            case "count":
                let requested = try arguments.integer(at: position + 1)
                guard requested >= 1 else { throw .syntax }
                count = Int(requested)
            case "type":
                guard arguments.word(at: position + 1) == "string" else {
                    throw RESPCommandError("ERR unknown type name '\(arguments.text(at: position + 1))'")
                }
            default:
                throw .syntax
            }
            position += 2
        }
        return .scan(cursor: cursor, pattern: pattern, count: count)
    }
}
