import NIOCore

/// Limits on what one client request may be. A header announcing more is refused as soon as it is read.
public struct RESPLimits: Sendable {
    /// The largest argument (bulk string) in bytes.
    public var bulkBytesMax = 16 << 20
    /// The most arguments in one command.
    public var argumentsMax = 1 << 20
    /// The longest inline command line (`PING` typed into telnet).
    public var inlineBytesMax = 64 << 10
    public init() {}
}

/// A request that breaks the protocol. The connection answers `-ERR Protocol error: ...` and closes.
public struct RESPProtocolError: Error, Hashable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { "Protocol error: \(message)" }
}

/// Splits a client's byte stream into commands: RESP arrays of bulk strings (what every client library
/// sends) and inline commands (space-separated words on one line). Each command is its arguments as bytes.
/// Keeps the arguments of an unfinished command between reads, so a large pipelined request is parsed once.
public struct RESPRequestDecoder: ByteToMessageDecoder {
    public typealias InboundOut = [[UInt8]]

    let limits: RESPLimits
    private var expectedArguments: Int?
    private var arguments: [[UInt8]] = []
    /// The length of the bulk string whose header was read and whose bytes have not all arrived.
    private var bulkLength: Int?

    public init(limits: RESPLimits = RESPLimits()) { self.limits = limits }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let command = try next(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(command))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }

    /// The next complete command, or nil if more bytes are needed. Empty commands (`*0`, blank lines) are
    /// skipped, as Redis does.
    public mutating func next(from buffer: inout ByteBuffer) throws(RESPProtocolError) -> [[UInt8]]? {
        while true {
            if expectedArguments == nil {
                guard let first = buffer.readableBytesView.first else { return nil }
                if first == UInt8(ascii: "*") {
                    guard let header = try readHeader(&buffer, what: "multibulk length") else { return nil }
                    guard let count = header.value, count <= limits.argumentsMax else {
                        throw RESPProtocolError(message: "invalid multibulk length")
                    }
                    if count <= 0 { continue }
                    expectedArguments = count
                    arguments.reserveCapacity(min(count, 1024))
                } else {
                    guard let line = try readLine(&buffer, limit: limits.inlineBytesMax, what: "inline request") else { return nil }
                    let words = try Self.splitInline(line)
                    if words.isEmpty { continue }
                    return words
                }
            }
            while arguments.count < expectedArguments! {
                if bulkLength == nil {
                    guard let header = try readHeader(&buffer, what: "bulk length") else { return nil }
                    guard header.kind == UInt8(ascii: "$") else {
                        throw RESPProtocolError(message: "expected '$', got '\(header.kind.map { String(UnicodeScalar($0)) } ?? "")'")
                    }
                    guard let length = header.value, length >= 0, length <= limits.bulkBytesMax else {
                        throw RESPProtocolError(message: "invalid bulk length")
                    }
                    bulkLength = length
                }
                let length = bulkLength!
                guard buffer.readableBytes >= length + 2 else { return nil }
                let bytes = buffer.readBytes(length: length)!
                guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw RESPProtocolError(message: "expected CRLF after a bulk string") }
                arguments.append(bytes)
                bulkLength = nil
            }
            defer {
                arguments = []
                expectedArguments = nil
            }
            return arguments
        }
    }

    /// A line without its CRLF (a lone LF is accepted, as Redis does for inline commands), or nil if it has
    /// not all arrived. More than `limit` bytes without a line end is an error, raised without waiting.
    private func readLine(_ buffer: inout ByteBuffer, limit: Int, what: String) throws(RESPProtocolError) -> ArraySlice<UInt8>? {
        guard let (length, lineEnd) = try Self.findLine(in: buffer, limit: limit, what: what) else { return nil }
        let line = buffer.readBytes(length: length)![...]
        buffer.moveReaderIndex(forwardBy: lineEnd)
        return line
    }

    /// A `*N` or `$N` header line, read in place (one comes before every argument, so it is worth not
    /// copying): its first byte and the integer after it, nil where that is not a decimal integer. Nil if the
    /// line has not all arrived; more than 32 bytes without a line end is an error.
    private func readHeader(_ buffer: inout ByteBuffer, what: String) throws(RESPProtocolError) -> (kind: UInt8?, value: Int?)? {
        guard let (length, lineEnd) = try Self.findLine(in: buffer, limit: 32, what: what) else { return nil }
        let header = buffer.withUnsafeReadableBytes { bytes in
            length > 0 ? (bytes[0], Self.parseInteger(bytes[1..<length])) : (nil, nil)
        }
        buffer.moveReaderIndex(forwardBy: length + lineEnd)
        return header
    }

    /// Where the line at the reader index ends: the length of its content and of its line end (CRLF or a
    /// lone LF), or nil if no line end has arrived yet and the line could still be short enough.
    private static func findLine(in buffer: ByteBuffer, limit: Int, what: String) throws(RESPProtocolError) -> (length: Int, lineEnd: Int)? {
        let found = buffer.withUnsafeReadableBytes { bytes -> (Int, Int)? in
            guard let newline = bytes.prefix(limit + 2).firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            return newline > 0 && bytes[newline - 1] == UInt8(ascii: "\r") ? (newline - 1, 2) : (newline, 1)
        }
        if found == nil, buffer.readableBytes > limit + 1 { throw RESPProtocolError(message: "too big \(what)") }
        return found
    }

    /// Words separated by spaces or tabs; a word may be double-quoted (with `\"`, `\\`, `\n`, `\r`, `\t`,
    /// `\xHH` escapes) or single-quoted.
    /// A decimal integer with an optional minus sign and nothing else.
    static func parseInteger<Digits: Collection<UInt8>>(_ digits: Digits) -> Int? {
        guard !digits.isEmpty, digits.count <= 19 else { return nil }
        let negative = digits.first == UInt8(ascii: "-")
        let body = digits.dropFirst(negative ? 1 : 0)
        guard !body.isEmpty else { return nil }
        var value = 0
        for digit in body {
            guard (48...57).contains(digit) else { return nil }
            value = value * 10 + Int(digit - 48)
        }
        return negative ? -value : value
    }

    static func splitInline(_ line: ArraySlice<UInt8>) throws(RESPProtocolError) -> [[UInt8]] {
        var words: [[UInt8]] = []
        var iterator = Array(line).makeIterator()
        var current: [UInt8]?
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"):
                if let word = current { words.append(word); current = nil }
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                var word = current ?? []
                var closed = false
                while let next = iterator.next() {
                    if next == byte { closed = true; break }
                    if next == UInt8(ascii: "\\"), byte == UInt8(ascii: "\""), let escaped = iterator.next() {
                        switch escaped {
                        case UInt8(ascii: "n"): word.append(10)
                        case UInt8(ascii: "r"): word.append(13)
                        case UInt8(ascii: "t"): word.append(9)
                        case UInt8(ascii: "x"):
                            guard let high = iterator.next(), let low = iterator.next(),
                                  let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else {
                                throw RESPProtocolError(message: "unbalanced quotes in request")
                            }
                            word.append(value)
                        default: word.append(escaped)
                        }
                    } else {
                        word.append(next)
                    }
                }
                guard closed else { throw RESPProtocolError(message: "unbalanced quotes in request") }
                current = word
            default:
                current = (current ?? []) + [byte]
            }
        }
        if let word = current { words.append(word) }
        return words
    }
}
