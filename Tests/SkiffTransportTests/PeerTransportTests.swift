#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import SkiffRaft
@testable import SkiffTransport
import Synchronization
import Testing

@Suite struct PeerTransportTests {
    static let cluster: UInt64 = 77

    /// A transport for node 2 that knows node 1 (whom it waits for, since the lower id dials), listening
    /// on a free loopback port with a hello timeout of 200 ms; `events` records its connection changes in order.
    final class Listening: Sendable {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let transport: PeerTransport
        let port: Int
        let events = Events()

        final class Events: Sendable {
            private let list = Mutex<[String]>([])
            func append(_ event: String) { list.withLock { $0.append(event) } }
            var all: [String] { list.withLock { $0 } }
        }

        init() throws {
            var options = PeerTransport.Options()
            options.helloTimeout = .milliseconds(200)
            let loop = group.next()
            let placeholder = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
            transport = PeerTransport(localID: NodeID(2), clusterID: PeerTransportTests.cluster, peers: [NodeID(1): placeholder],
                                      names: [NodeID(1): "n1"], loop: loop, options: options,
                                      logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            let transport = transport
            let events = events
            port = try loop.flatSubmit {
                transport.onConnectionChange = { peer, up in events.append("\(peer) \(up ? "up" : "down")") }
                return transport.start(listeningOn: try! SocketAddress(ipAddress: "127.0.0.1", port: 0))
            }.wait().port!
        }

        func stop() throws {
            let transport = transport
            try transport.loop.flatSubmit { transport.stop() }.wait()
            try group.syncShutdownGracefully()
        }

        func waitForEvents(_ count: Int) throws -> [String] {
            for _ in 0..<500 {
                if events.all.count >= count { return events.all }
                usleep(10_000)
            }
            return events.all
        }
    }

    /// A blocking loopback socket that plays a peer.
    final class RawPeer {
        let descriptor: Int32

        init(port: Int) throws {
            descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(connected == 0)
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        deinit { close(descriptor) }

        func sendHello(as node: NodeID, cluster: UInt64 = PeerTransportTests.cluster) {
            var buffer = ByteBuffer()
            PeerFrame.hello(node: node, clusterID: cluster).write(to: &buffer)
            let bytes = Array(buffer.readableBytesView)
            _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
        }

        /// Reads until the other side closes (true) or nothing arrives for five seconds (false).
        func closedByPeer() -> Bool {
            var scratch = [UInt8](repeating: 0, count: 4096)
            while true {
                let got = recv(descriptor, &scratch, scratch.count, 0)
                if got == 0 { return true }
                if got < 0 { return errno == ECONNRESET }
            }
        }

        /// Everything the other side sent until it closed, as frames.
        func framesUntilClosed() throws -> [PeerFrame] {
            var received = ByteBuffer()
            var scratch = [UInt8](repeating: 0, count: 4096)
            while true {
                let got = recv(descriptor, &scratch, scratch.count, 0)
                if got <= 0 { break }
                received.writeBytes(scratch[..<got])
            }
            var decoder = PeerFrameDecoder(frameBytesMax: 1 << 20)
            var frames: [PeerFrame] = []
            while let frame = try decoder.next(from: &received) { frames.append(frame) }
            return frames
        }
    }

    /// A leader proposes what a forward carries as one batch, which must not be empty: such a frame is malformed.
    @Test func aForwardOfNoWritesIsRefusedAsMalformed() throws {
        var decoder = PeerFrameDecoder(frameBytesMax: 1 << 20)
        var buffer = ByteBuffer()
        PeerFrame.forward(batch: 1, payloads: [[7]]).write(to: &buffer)
        #expect(try decoder.next(from: &buffer) == .forward(batch: 1, payloads: [[7]]))
        PeerFrame.forward(batch: 2, payloads: []).write(to: &buffer)
        #expect(throws: PeerProtocolError.self) { try decoder.next(from: &buffer) }
    }

    @Test func aNodeOfAnotherClusterIsToldWhyItIsRefused() throws {
        let node = try Listening()
        defer { try? node.stop() }
        let stranger = try RawPeer(port: node.port)
        stranger.sendHello(as: NodeID(1), cluster: 78)
        let frames = try stranger.framesUntilClosed()
        guard case .refused(let reason)? = frames.first, frames.count == 1 else {
            Issue.record("expected one refusal, got \(frames)")
            return
        }
        #expect(reason.contains("another cluster"))
        #expect(node.events.all.isEmpty)
    }

    @Test func aNodeOfTheSameClusterThatIsNotAMemberIsLetIn() throws {
        // A removed node must still reach the leader, to be told it was removed.
        let node = try Listening()
        defer { try? node.stop() }
        let removed = try RawPeer(port: node.port)
        removed.sendHello(as: NodeID(9))
        #expect(try node.waitForEvents(1) == ["9 up"])
    }

    @Test func aConnectionThatNeverSaysHelloIsClosed() throws {
        let node = try Listening()
        defer { try? node.stop() }
        let silent = try RawPeer(port: node.port)
        #expect(silent.closedByPeer())
        #expect(node.events.all.isEmpty)
    }

    @Test func aReplacedConnectionIsReportedDownBeforeTheNewOneIsUp() throws {
        let node = try Listening()
        defer { try? node.stop() }
        let first = try RawPeer(port: node.port)
        first.sendHello(as: NodeID(1))
        #expect(try node.waitForEvents(1) == ["1 up"])
        let second = try RawPeer(port: node.port)
        second.sendHello(as: NodeID(1))
        // Frames written to the first connection may be lost: whoever waits on them must hear it is gone.
        #expect(try node.waitForEvents(3) == ["1 up", "1 down", "1 up"])
        #expect(first.closedByPeer())
        usleep(400_000)  // past the hello timeout: a connection that said hello stays open
        #expect(node.events.all == ["1 up", "1 down", "1 up"])
    }
}
