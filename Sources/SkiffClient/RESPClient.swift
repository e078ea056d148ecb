import Foundation
import Glibc

/// A minimal blocking Redis client over a plain socket, for test drivers (the tests, `skiff-torture`) that
/// need many requests fast, exact control over the bytes sent, and a bound on every wait. Speaks RESP2.
///
/// Not for concurrent use: one client per thread.
public final class RESPClient {
    public enum Reply: Equatable, Sendable {
        case simple(String), error(String), integer(Int64), bulk([UInt8]?), array([Reply])
        /// `*-1`: EXEC's reply when a watched key changed.
        case nullArray

        /// Strings and integers as text; nil bulk as "".
        public var text: String {
            switch self {
            case .simple(let text), .error(let text): text
            case .integer(let value): String(value)
            case .bulk(let bytes): bytes.map { String(decoding: $0, as: UTF8.self) } ?? ""
            case .array(let items): items.map(\.text).joined(separator: " ")
            case .nullArray: ""
            }
        }
    }

    public struct Failure: Error, CustomStringConvertible { public var description: String }

    private let socket: Int32
    private var buffer: [UInt8] = []

    /// Connects to `host` (an IPv4 address, or a name that resolves to one) at `port`; every later send and
    /// receive waits at most `timeoutSeconds`, then throws.
    public init(host: String = "127.0.0.1", port: Int, timeoutSeconds: Double = 10) throws {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr = try Self.resolve(host)
        address.sin_port = UInt16(port).bigEndian
        let descriptor = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: Int(timeoutSeconds), tv_usec: Int(timeoutSeconds.truncatingRemainder(dividingBy: 1) * 1_000_000))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            // Closed here and only here: `socket` is not set, so deinit (which would close it again, perhaps
            // after another thread reused the number) does not run.
            close(descriptor)
            throw Failure(description: "cannot connect to \(host):\(port)")
        }
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        socket = descriptor
    }

    deinit { close(socket) }

    private static func resolve(_ host: String) throws -> in_addr {
        var parsed = in_addr()
        if inet_pton(AF_INET, host, &parsed) == 1 { return parsed }
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &found) == 0, let first = found, let address = first.pointee.ai_addr else {
            throw Failure(description: "cannot resolve \(host) to an IPv4 address")
        }
        defer { freeaddrinfo(found) }
        return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
    }

    /// Sends one command and reads its reply.
    public func call(_ arguments: String...) throws -> Reply { try call(arguments) }

    public func call(_ arguments: [String]) throws -> Reply {
        try send(raw: Self.encode(arguments))
        return try readReply()
    }

    /// Sends several commands at once (pipelining) and reads their replies in order.
    public func pipeline(_ commands: [[String]]) throws -> [Reply] {
        try send(raw: Array(commands.map(Self.encode).joined()))
        return try commands.map { _ in try readReply() }
    }

    public static func encode(_ arguments: [String]) -> [UInt8] {
        var bytes = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments { bytes += Array("$\(argument.utf8.count)\r\n\(argument)\r\n".utf8) }
        return bytes
    }

    public func send(raw bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw Failure(description: "send failed: errno \(errno)") }
            offset += sent
        }
    }

    /// Everything the server sends until it closes the connection (for a plain HTTP request).
    public func readUntilClosed() throws -> String {
        while (try? receive()) != nil {}
        defer { buffer.removeAll() }
        return String(decoding: buffer, as: UTF8.self)
    }

    /// True once the server closed the connection (reads return end of file).
    public func isClosedByServer() -> Bool {
        var byte: UInt8 = 0
        return recv(socket, &byte, 1, 0) == 0
    }

    public func readReply() throws -> Reply {
        let line = try readLine()
        guard let marker = line.first else { throw Failure(description: "empty reply line") }
        let rest = String(decoding: line.dropFirst(), as: UTF8.self)
        switch marker {
        case UInt8(ascii: "+"): return .simple(rest)
        case UInt8(ascii: "-"): return .error(rest)
        case UInt8(ascii: ":"):
            guard let value = Int64(rest) else { throw Failure(description: "bad integer reply \(rest)") }
            return .integer(value)
        case UInt8(ascii: "$"):
            guard let length = Int(rest) else { throw Failure(description: "bad bulk length \(rest)") }
            if length < 0 { return .bulk(nil) }
            try fill(length + 2)
            let bytes = Array(buffer[..<length])
            buffer.removeFirst(length + 2)
            return .bulk(bytes)
        case UInt8(ascii: "*"):
            guard let count = Int(rest) else { throw Failure(description: "bad array length \(rest)") }
            if count < 0 { return .nullArray }
            return .array(try (0..<count).map { _ in try readReply() })
        default:
            throw Failure(description: "unexpected reply line \(String(decoding: line, as: UTF8.self))")
        }
    }

    private func readLine() throws -> [UInt8] {
        while true {
            if let end = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<(end > 0 && buffer[end - 1] == 13 ? end - 1 : end)])
                buffer.removeFirst(end + 1)
                return line
            }
            try receive()
        }
    }

    private func fill(_ count: Int) throws { while buffer.count < count { try receive() } }

    private func receive() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let received = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
        guard received > 0 else { throw Failure(description: received == 0 ? "connection closed" : "receive failed: errno \(errno)") }
        buffer += chunk[..<received]
    }
}
