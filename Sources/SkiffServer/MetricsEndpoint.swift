import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import SkiffStorage

/// The node's Prometheus metrics: instruments updated as work happens (fsync latency, proposals) and
/// gauges refreshed from `NodeStatus` at each scrape (role, term, log positions, peer lag, bytes on disk).
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let fsyncSeconds: DurationHistogram
    let proposals: Counter
    let writes: Counter

    init() {
        fsyncSeconds = registry.makeDurationHistogram(
            descriptor: Self.name("wal_fsync", "seconds", "Time from handing a Ready to the WAL until it was durable"),
            buckets: [.microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
                      .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(250), .seconds(1)])
        proposals = registry.makeCounter(descriptor: Self.name("raft_proposals", "total", "Entries this node proposed as leader"))
        writes = registry.makeCounter(descriptor: Self.name("client_writes", "total", "Client writes received by this node"))
    }

    /// `skiff_NAME_UNIT`.
    static func name(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "skiff", metricName: name, unitName: unit, helpText: help)
    }

    /// The exposition text, after refreshing the gauges from `status` and the storage directories.
    func render(_ status: NodeStatus, storage: NodeStorage) -> [UInt8] {
        let roles = ["leader", "follower", "candidate", "learner"]
        for role in roles {
            registry.makeGauge(descriptor: Self.name("raft", "role", "1 for the role this node has"), labels: [("role", role)])
                .set(Int64(status.role == role ? 1 : 0))
        }
        let gauges: [(String, String, UInt64, String)] = [
            ("raft", "term", status.term, "The current Raft term"),
            ("raft_commit", "index", status.commitIndex, "The highest log index known committed"),
            ("raft_applied", "index", status.appliedIndex, "The highest log index applied to the key space"),
            ("raft_last", "index", status.lastIndex, "The last index in this node's log"),
            ("snapshot", "index", status.snapshotIndex, "The index of the newest snapshot"),
            ("keyspace", "keys", UInt64(status.keys), "Keys in the key space"),
            ("wal", "bytes", directoryBytes(storage.wal.directory), "Bytes of WAL segments on disk"),
            ("snapshot", "bytes", directoryBytes(storage.snapshots.directory), "Bytes of snapshot files on disk"),
        ]
        for (name, unit, value, help) in gauges { registry.makeGauge(descriptor: Self.name(name, unit, help)).set(Int64(value)) }
        for member in status.members where member.replication != nil {
            let lag = status.lastIndex - min(status.lastIndex, member.match ?? 0)
            registry.makeGauge(descriptor: Self.name("peer_lag", "entries", "On the leader: entries a member is behind"),
                               labels: [("peer", member.name)]).set(Int64(lag))
        }
        return registry.emitToBuffer()
    }

    private func directoryBytes(_ path: String) -> UInt64 {
        let fileSystem = PosixFileSystem()
        guard let names = try? fileSystem.contentsOfDirectory(path) else { return 0 }
        var total: UInt64 = 0
        for name in names {
            guard let file = try? fileSystem.openFile(path + "/" + name, writable: false) else { continue }
            total += UInt64(max(0, (try? file.size()) ?? 0))
            try? file.close()
        }
        return total
    }
}

/// `GET /metrics` over HTTP/1.1, on the node's event loop.
final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let node: Node
    private var path: String?
    private var keepAlive = true

    init(node: Node) { self.node = node }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.method == .GET ? head.uri : nil
            keepAlive = head.isKeepAlive
        case .body: break
        case .end:
            let found = path == "/metrics"
            let body = found ? node.serverMetrics.render(node.status, storage: node.storage) : Array("not found; try /metrics\n".utf8)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: found ? "text/plain; version=0.0.4" : "text/plain")
            headers.add(name: "Content-Length", value: String(body.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: found ? .ok : .notFound, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
            let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive {
                let channel = context.channel
                written.whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}

extension SkiffServer {
    static func startMetrics(node: Node, at address: HostAndPort) async throws -> Channel {
        try await ServerBootstrap(group: node.loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(node: node))
                }
            }
            .bind(host: address.host, port: address.port).get()
    }
}
