import Foundation
import NIOCore
import SkiffTransport
import Synchronization

/// A userspace proxy in front of each node's peer port, for machines without network namespaces: every
/// node advertises its proxy (`--advertise-peer-addr`, and its `--initial-cluster` entry), so every peer
/// connection passes through one. A connection's first frame is the dialler's hello, which names it; from
/// then on the proxy knows the link in each direction, and drops (a cut, or a share of the chunks: loss) or
/// delays what crosses it. Dropping bytes from a stream breaks its framing: the receiving node sees a bad
/// frame and reconnects, as it would after a lost connection.
final class LinkProxy: Sendable {
    struct Link: Hashable { var from: Int; var to: Int }
    private struct Rules { var dropPercent: [Link: Int] = [:]; var delayMilliseconds: [Int: Int] = [:] }
    private let rules = Mutex(Rules())
    private let listeners: Mutex<[Int32]> = Mutex([])
    private let stopped = Atomic(false)
    /// The node a hello's Raft id belongs to (ids of nodes that joined change, so it is asked each time).
    private let identify: @Sendable (UInt64) -> Int?

    init(identify: @escaping @Sendable (UInt64) -> Int?) { self.identify = identify }

    /// Listens on 127.0.0.1:`port` for connections to `node`, whose real peer port is `target`.
    func serve(node: Int, port: Int, target: Int) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw TortureError("the proxy for n\(node) has no socket: errno \(errno)") }
        var on: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(listener, 64) == 0 else {
            close(listener)
            throw TortureError("the proxy for n\(node) cannot listen on port \(port): errno \(errno)")
        }
        listeners.withLock { $0.append(listener) }
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                if stopped.load(ordering: .relaxed) { if client >= 0 { close(client) }; return }
                guard client >= 0 else { continue }  // EINTR, ECONNABORTED, EMFILE: keep serving
                Thread.detachNewThread { [self] in relay(client, to: node, target: target) }
            }
        }
    }

    func cut(from: Int, to: Int, percent: Int) { rules.withLock { $0.dropPercent[Link(from: from, to: to)] = percent } }
    func delay(_ node: Int, milliseconds: Int) { rules.withLock { $0.delayMilliseconds[node] = milliseconds } }
    func heal() { rules.withLock { $0 = Rules() } }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        for listener in listeners.withLock({ $0 }) { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }
    }

    /// Reads the hello, connects to the node, then pumps both ways until either side closes.
    private func relay(_ client: Int32, to node: Int, target: Int) {
        var decoder = PeerFrameDecoder(frameBytesMax: 1 << 20)
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        var first: [UInt8] = []
        var from: Int?
        var chunk = [UInt8](repeating: 0, count: 4096)
        // A dialler sends its hello at once: give up on a connection that does not.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while from == nil {
            let got = read(client, &chunk, chunk.count)
            guard got > 0 else { close(client); return }
            first += chunk[..<got]
            buffer.writeBytes(chunk[..<got])
            let decoded: PeerFrame?
            do { decoded = try decoder.next(from: &buffer) } catch { close(client); return }  // not a peer connection
            guard let frame = decoded else {
                if first.count > 64 { close(client); return }  // no hello: nothing to relay
                continue
            }
            guard case .hello(let id, _) = frame, let known = identify(id.rawValue) else { close(client); return }
            from = known
        }
        timeout = timeval(tv_sec: 0, tv_usec: 0)  // relayed streams may be quiet for long
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard upstream >= 0 else { close(client); return }
        var address = Self.loopback(target)
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0, pass(first, over: Link(from: from!, to: node), into: upstream) else {
            close(upstream)
            close(client)
            return
        }
        let done = DispatchGroup()
        for (source, sink, link) in [(client, upstream, Link(from: from!, to: node)), (upstream, client, Link(from: node, to: from!))] {
            done.enter()
            Thread.detachNewThread { [self] in
                var chunk = [UInt8](repeating: 0, count: 64 << 10)
                while true {
                    let got = read(source, &chunk, chunk.count)
                    guard got > 0, pass(Array(chunk[..<got]), over: link, into: sink) else { break }
                }
                shutdown(source, Int32(SHUT_RDWR))
                shutdown(sink, Int32(SHUT_RDWR))
                done.leave()
            }
        }
        done.wait()
        close(client)
        close(upstream)
    }

    /// Forwards `bytes` unless the link drops them, after the sender's delay; false if the sink is gone.
    private func pass(_ bytes: [UInt8], over link: Link, into sink: Int32) -> Bool {
        let (drop, delay) = rules.withLock { ($0.dropPercent[link] ?? 0, $0.delayMilliseconds[link.from] ?? 0) }
        if delay > 0 { usleep(useconds_t(delay) * 1000) }
        if drop >= 100 || (drop > 0 && Int.random(in: 0..<100) < drop) { return true }
        var sent = 0
        while sent < bytes.count {
            let wrote = bytes[sent...].withUnsafeBytes { send(sink, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard wrote > 0 else { return false }
            sent += wrote
        }
        return true
    }

    private static func loopback(_ port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }
}
