/// Commands in the form a Redis user would type them (`SET key value`, `DEL a b`), for `skiff-wal dump` and
/// logs. Bytes outside printable ASCII appear as `\xNN`; arguments with spaces or quotes are quoted.
extension KVCommand: CustomStringConvertible {
    public var description: String {
        func show(_ bytes: [UInt8]) -> String {
            var text = ""
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): text += "\\" + String(UnicodeScalar(byte))
                case 0x21...0x7E: text.append(Character(UnicodeScalar(byte)))
                default: text += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
                }
            }
            return text.isEmpty || text.count != bytes.count || bytes.contains(UInt8(ascii: " ")) ? "\"\(text)\"" : text
        }
        func pairs(_ list: [KeyValue]) -> String { list.map { "\(show($0.key)) \(show($0.value))" }.joined(separator: " ") }
        switch self {
        case .set(let key, let value, let condition, let returnOld):
            let options = [condition == .ifAbsent ? " NX" : condition == .ifPresent ? " XX" : "", returnOld ? " GET" : ""].joined()
            return "SET \(show(key)) \(show(value))\(options)"
        case .delete(let keys): return "DEL " + keys.map(show).joined(separator: " ")
        case .setMany(let list): return "MSET " + pairs(list)
        case .setManyIfNoneExist(let list): return "MSETNX " + pairs(list)
        case .incrementBy(let key, let delta): return "INCRBY \(show(key)) \(delta)"
        case .incrementByFloat(let key, let delta): return "INCRBYFLOAT \(show(key)) \(delta)"
        case .append(let key, let value): return "APPEND \(show(key)) \(show(value))"
        case .setRange(let key, let offset, let value): return "SETRANGE \(show(key)) \(offset) \(show(value))"
        case .getDelete(let key): return "GETDEL \(show(key))"
        case .rename(let from, let to, let onlyIfTargetAbsent): return "\(onlyIfTargetAbsent ? "RENAMENX" : "RENAME") \(show(from)) \(show(to))"
        case .removeAll: return "FLUSHALL"
        case .transaction(let watched, let writes):
            let watches = watched.isEmpty ? "" : "WATCH " + watched.map { "\(show($0.key))@\($0.revision)" }.joined(separator: " ") + "; "
            return watches + (["MULTI"] + writes.map(\.description) + ["EXEC"]).joined(separator: "; ")
        }
    }
}
