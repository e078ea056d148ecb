import NIOCore
import NIOTestUtils
import SkiffRESP
import Testing

/// The request decoder, fed byte by byte, all at once and in random pieces (NIO's verifier), and on the
/// inputs that must fail.
@Suite struct RESPDecoderTests {
    static func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }
    static func words(_ list: String...) -> [[UInt8]] { list.map { Array($0.utf8) } }

    @Test func arraysAndInlineCommandsDecodeWhateverThePieces() throws {
        let input = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nv\n\r\n*0\r\nPING\r\n  get  \"a b\\x41\"  'c d'\n*1\r\n$0\r\n\r\n"
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [(Self.buffer(input), [Self.words("SET", "k", "v\r\nv\n"), Self.words("PING"), Self.words("get", "a bA", "c d"), Self.words("")])],
            decoderFactory: { RESPRequestDecoder() })
    }

    @Test(arguments: [
        ("*x\r\n", "invalid multibulk length"),
        ("*2000000\r\n", "invalid multibulk length"),
        ("*1\r\n+OK\r\n", "expected '$', got '+'"),
        ("*1\r\n$-1\r\n", "invalid bulk length"),
        ("*1\r\n$abc\r\n", "invalid bulk length"),
        ("*1\r\n$\r\n", "invalid bulk length"),
        ("*1\r\n$12345678901234567890\r\n", "invalid bulk length"),
        ("*1\r\n\r\n", "expected '$', got ''"),
        ("*1\r\n$3\r\nabcXY", "expected CRLF after a bulk string"),
        ("GET \"unterminated\r\n", "unbalanced quotes in request"),
    ])
    func malformedRequestsAreRefused(input: String, message: String) {
        var decoder = RESPRequestDecoder()
        var buffer = Self.buffer(input)
        #expect(throws: RESPProtocolError(message: message)) { _ = try decoder.next(from: &buffer) }
    }

    /// A bulk length over the limit is refused from its header alone, before any of its bytes arrive.
    @Test func anOversizedBulkIsRefusedAtItsHeader() {
        var limits = RESPLimits()
        limits.bulkBytesMax = 1000
        var decoder = RESPRequestDecoder(limits: limits)
        var buffer = Self.buffer("*1\r\n$1001\r\n")
        #expect(throws: RESPProtocolError(message: "invalid bulk length")) { _ = try decoder.next(from: &buffer) }
        var fine = RESPRequestDecoder(limits: limits)
        var exact = Self.buffer("*1\r\n$1000\r\n")
        #expect(throws: Never.self) { _ = try fine.next(from: &exact) }
        #expect(exact.readableBytes == 0)  // the header was taken; the decoder waits for the bytes
    }

    /// A line end that never comes is refused once the line is longer than any valid header could be.
    @Test func endlessLinesAreRefusedWithoutWaiting() {
        var decoder = RESPRequestDecoder()
        var header = Self.buffer("*" + String(repeating: "1", count: 40))
        #expect(throws: RESPProtocolError(message: "too big multibulk length")) { _ = try decoder.next(from: &header) }
        var limits = RESPLimits()
        limits.inlineBytesMax = 100
        var inline = RESPRequestDecoder(limits: limits)
        var line = Self.buffer(String(repeating: "a", count: 200))
        #expect(throws: RESPProtocolError(message: "too big inline request")) { _ = try inline.next(from: &line) }
    }

    @Test func repliesInBothProtocolVersions() {
        func written(_ value: RESPValue, _ version: Int) -> String {
            var buffer = ByteBuffer()
            value.write(to: &buffer, protocolVersion: version)
            return String(buffer: buffer)
        }
        #expect(written(.null, 2) == "$-1\r\n")
        #expect(written(.null, 3) == "_\r\n")
        #expect(written(.nullArray, 2) == "*-1\r\n")
        #expect(written(.nullArray, 3) == "_\r\n")
        let map = RESPValue.orderedMap([(.bulk("proto"), .integer(3)), (.bulk("mode"), .bulk("cluster"))])
        #expect(written(map, 2) == "*4\r\n$5\r\nproto\r\n:3\r\n$4\r\nmode\r\n$7\r\ncluster\r\n")
        #expect(written(map, 3) == "%2\r\n$5\r\nproto\r\n:3\r\n$4\r\nmode\r\n$7\r\ncluster\r\n")
        #expect(written(.double(1.5), 2) == "$3\r\n1.5\r\n")
        #expect(written(.double(1.5), 3) == ",1.5\r\n")
        #expect(written(.verbatim("a"), 3) == "=5\r\ntxt:a\r\n")
        #expect(written(.array([.ok, .error("ERR x"), .integer(-1)]), 2) == "*3\r\n+OK\r\n-ERR x\r\n:-1\r\n")
    }
}
