import NIOCore

/// A reply in the Redis protocol. Written as RESP2 or RESP3 (`HELLO 3`) by `write(to:protocolVersion:)`:
/// RESP3's richer types fall back to their RESP2 forms (a map becomes a flat array, a double a bulk string,
/// null `$-1`), as Redis itself does.
public enum RESPValue: Hashable, Sendable {
    case simple(String)
    /// An error line, such as `ERR unknown command`; the first word is the error code clients look at.
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case null
    /// The null array: EXEC's reply when WATCH stopped its transaction (`*-1` in RESP2).
    case nullArray
    case array([RESPValue])
    case map([RESPValue: RESPValue])
    case orderedMap([(RESPValue, RESPValue)])
    case set([RESPValue])
    case double(Double)
    case boolean(Bool)
    /// Text for people (INFO): a verbatim string in RESP3, a bulk string in RESP2.
    case verbatim(String)

    public static let ok = RESPValue.simple("OK")

    public static func bulk(_ text: String) -> RESPValue { .bulk(Array(text.utf8)) }

    public static func == (lhs: RESPValue, rhs: RESPValue) -> Bool {
        switch (lhs, rhs) {
        case (.simple(let a), .simple(let b)), (.error(let a), .error(let b)), (.verbatim(let a), .verbatim(let b)): a == b
        case (.integer(let a), .integer(let b)): a == b
        case (.bulk(let a), .bulk(let b)): a == b
        case (.null, .null), (.nullArray, .nullArray): true
        case (.array(let a), .array(let b)), (.set(let a), .set(let b)): a == b
        case (.map(let a), .map(let b)): a == b
        case (.orderedMap(let a), .orderedMap(let b)): a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
        case (.double(let a), .double(let b)): a == b
        case (.boolean(let a), .boolean(let b)): a == b
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .simple(let text), .error(let text), .verbatim(let text): hasher.combine(text)
        case .integer(let value): hasher.combine(value)
        case .bulk(let bytes): hasher.combine(bytes)
        case .array(let values), .set(let values): hasher.combine(values)
        case .double(let value): hasher.combine(value)
        case .boolean(let value): hasher.combine(value)
        case .null, .nullArray, .map, .orderedMap: hasher.combine(0)
        }
    }

    public func write(to buffer: inout ByteBuffer, protocolVersion: Int) {
        let resp3 = protocolVersion >= 3
        switch self {
        case .simple(let text):
            buffer.writeStaticString("+")
            buffer.writeString(text)
            buffer.writeStaticString("\r\n")
        case .error(let text):
            buffer.writeStaticString("-")
            buffer.writeString(text)
            buffer.writeStaticString("\r\n")
        case .integer(let value):
            buffer.writeStaticString(":")
            buffer.writeString(String(value))
            buffer.writeStaticString("\r\n")
        case .bulk(let bytes):
            buffer.writeStaticString("$")
            buffer.writeString(String(bytes.count))
            buffer.writeStaticString("\r\n")
            buffer.writeBytes(bytes)
            buffer.writeStaticString("\r\n")
        case .null:
            if resp3 { buffer.writeStaticString("_\r\n") } else { buffer.writeStaticString("$-1\r\n") }
        case .nullArray:
            if resp3 { buffer.writeStaticString("_\r\n") } else { buffer.writeStaticString("*-1\r\n") }
        case .array(let values):
            Self.writeHeader("*", values.count, &buffer)
            for value in values { value.write(to: &buffer, protocolVersion: protocolVersion) }
        case .set(let values):
            Self.writeHeader(resp3 ? "~" : "*", values.count, &buffer)
            for value in values { value.write(to: &buffer, protocolVersion: protocolVersion) }
        case .map(let pairs):
            RESPValue.orderedMap(pairs.sorted { "\($0.key)" < "\($1.key)" }.map { ($0.key, $0.value) })
                .write(to: &buffer, protocolVersion: protocolVersion)
        case .orderedMap(let pairs):
            if resp3 { Self.writeHeader("%", pairs.count, &buffer) } else { Self.writeHeader("*", pairs.count * 2, &buffer) }
            for (key, value) in pairs {
                key.write(to: &buffer, protocolVersion: protocolVersion)
                value.write(to: &buffer, protocolVersion: protocolVersion)
            }
        case .double(let value):
            let text = value.isInfinite ? (value > 0 ? "inf" : "-inf") : "\(value)"
            if resp3 {
                buffer.writeStaticString(",")
                buffer.writeString(text)
                buffer.writeStaticString("\r\n")
            } else {
                RESPValue.bulk(text).write(to: &buffer, protocolVersion: protocolVersion)
            }
        case .boolean(let value):
            if resp3 { buffer.writeString(value ? "#t\r\n" : "#f\r\n") } else { RESPValue.integer(value ? 1 : 0).write(to: &buffer, protocolVersion: 2) }
        case .verbatim(let text):
            if resp3 {
                let bytes = Array(text.utf8)
                buffer.writeStaticString("=")
                buffer.writeString(String(bytes.count + 4))
                buffer.writeStaticString("\r\ntxt:")
                buffer.writeBytes(bytes)
                buffer.writeStaticString("\r\n")
            } else {
                RESPValue.bulk(text).write(to: &buffer, protocolVersion: protocolVersion)
            }
        }
    }

    private static func writeHeader(_ marker: StaticString, _ count: Int, _ buffer: inout ByteBuffer) {
        buffer.writeStaticString(marker)
        buffer.writeString(String(count))
        buffer.writeStaticString("\r\n")
    }
}
