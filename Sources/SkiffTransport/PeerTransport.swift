import Logging
import NIOCore
import NIOPosix
import SkiffRaft

/// Connections between the nodes of a cluster: one TCP connection per pair of nodes (the node with the
/// lower id dials, and redials with backoff when it drops; the higher one dials too after a few seconds
/// alone, for a lower peer that does not know it, such as a leader that removed it), verified frames, and
/// writes batched per event loop turn. The members can change while it runs (`updatePeers`).
///
/// Guarantees: frames to one peer arrive in the order sent, or not at all (Raft tolerates loss); a peer that
/// is slow to read costs at most `queueBytesMax` of memory plus the one frame that crossed it, after which
/// frames to it are dropped (`sendNow` streams are not counted: their callers keep one frame in flight); a
/// connection is used only after both sides said who they are and that they belong to the same cluster (a
/// node of the same cluster that is not a member is let in, so that it can be told it was removed).
/// All state is confined to `loop`: call every method there.
public final class PeerTransport: @unchecked Sendable {
    public struct Options: Sendable {
        public var frameBytesMax = 64 << 20
        /// Bytes waiting in one connection's outbound buffer before frames to that peer are dropped.
        public var queueBytesMax = 32 << 20
        public var reconnectDelayMin = TimeAmount.milliseconds(20)
        public var reconnectDelayMax = TimeAmount.seconds(1)
        /// A connection whose peer has not said hello by then is closed.
        public var helloTimeout = TimeAmount.seconds(5)
        public init() {}
    }

    public let localID: NodeID
    let clusterID: UInt64
    public let loop: EventLoop
    let options: Options
    let logger: Logger
    private(set) var peers: [NodeID: SocketAddress]
    /// Peer names for log lines.
    private(set) var names: [NodeID: String]
    /// Why peers refused this node, last reason per peer: each new reason is logged once, as an error.
    private var refusals: [NodeID: String] = [:]
    private var fallbackDialing: RepeatedTask?
    /// Peers without a connection: since when, and when to say so again. The reminders back off from 10 s,
    /// doubling up to an hour, so a dead peer costs a dozen log lines a day rather than one per redial; a
    /// peer that was reported unreachable is reported once more when it is back.
    private var outages: [NodeID: Outage] = [:]
    private struct Outage {
        var since: NIODeadline
        var nextReport: NIODeadline
        var interval = TimeAmount.seconds(10)
        var reported = false

        init(since: NIODeadline) {
            self.since = since
            nextReport = since + interval
        }
    }
    private var channels: [NodeID: Channel] = [:]
    private var reconnectDelay: [NodeID: TimeAmount] = [:]
    private var unflushed = Set<NodeID>()
    private var listener: Channel?
    private var stopped = false

    /// Frames from a peer, after its hello; called on `loop`.
    public var onFrame: (NodeID, PeerFrame) -> Void = { _, _ in }
    /// A peer's connection came up (true) or went down (false); called on `loop`.
    public var onConnectionChange: (NodeID, Bool) -> Void = { _, _ in }

    public init(localID: NodeID, clusterID: UInt64, peers: [NodeID: SocketAddress], names: [NodeID: String] = [:], loop: EventLoop,
                options: Options = Options(), logger: Logger) {
        self.localID = localID
        self.clusterID = clusterID
        self.peers = peers.filter { $0.key != localID }
        self.names = names
        self.loop = loop
        self.options = options
        self.logger = logger
    }

    /// Listens on `address` and starts dialing the peers this node dials. Returns the bound address.
    public func start(listeningOn address: SocketAddress) -> EventLoopFuture<SocketAddress> {
        loop.preconditionInEventLoop()
        let bootstrap = ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: options.queueBytesMax / 2, high: options.queueBytesMax))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try self.configure(channel, expecting: nil) }
            }
        return bootstrap.bind(to: address).map { [self] channel in
            listener = channel
            for peer in peers.keys.sorted() where peer > localID { dial(peer) }
            let every = options.reconnectDelayMax * 3
            fallbackDialing = loop.scheduleRepeatedTask(initialDelay: every, delay: every) { [self] _ in
                for peer in peers.keys.sorted() where peer < localID && channels[peer] == nil { dial(peer) }
            }
            return channel.localAddress!
        }
    }

    /// Makes `peers` the members this node connects to, under `names`. New members are dialed (by the rule
    /// above); a connection to a node no longer listed stays until it closes, and is not redialed.
    public func updatePeers(_ peers: [NodeID: SocketAddress], names: [NodeID: String]) {
        loop.preconditionInEventLoop()
        let added = Set(peers.keys).subtracting(self.peers.keys)
        self.peers = peers.filter { $0.key != localID }
        self.names = names
        guard listener != nil else { return }
        for peer in added.sorted() where peer > localID { dial(peer) }
    }

    /// Closes every connection and stops redialing.
    public func stop() -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        stopped = true
        fallbackDialing?.cancel()
        let closing = Array(channels.values) + (listener.map { [$0] } ?? [])
        channels.removeAll()
        return EventLoopFuture.andAllComplete(closing.map { $0.close() }, on: loop)
    }

    public func isConnected(to peer: NodeID) -> Bool { channels[peer] != nil }

    /// Queues `frame` for `peer`; it is written at the end of this event loop turn, together with everything
    /// else queued meanwhile. Returns false if the frame was dropped (no connection, or the peer is not
    /// reading fast enough).
    @discardableResult
    public func send(_ frame: PeerFrame, to peer: NodeID) -> Bool {
        loop.preconditionInEventLoop()
        guard let channel = channels[peer], channel.isWritable else { return false }
        channel.write(frame, promise: nil)
        if unflushed.isEmpty { loop.execute { [self] in flushAll() } }
        unflushed.insert(peer)
        return true
    }

    /// Writes `frame` now and reports when it has been handed to the kernel: for streams (snapshot chunks)
    /// that send the next piece only once the last one left. Nil if there is no connection.
    public func sendNow(_ frame: PeerFrame, to peer: NodeID) -> EventLoopFuture<Void>? {
        loop.preconditionInEventLoop()
        guard let channel = channels[peer] else { return nil }
        return channel.writeAndFlush(frame)
    }

    private func flushAll() {
        for peer in unflushed { channels[peer]?.flush() }
        unflushed.removeAll()
    }

    // MARK: Connections

    private func configure(_ channel: Channel, expecting peer: NodeID?) throws {
        let handler = PeerConnectionHandler(transport: self, expectedPeer: peer)
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(PeerFrameDecoder(frameBytesMax: options.frameBytesMax)),
            MessageToByteHandler(PeerFrameEncoder()),
            handler,
        ])
    }

    private func dial(_ peer: NodeID) {
        guard !stopped, channels[peer] == nil, let address = peers[peer] else { return }
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: options.queueBytesMax / 2, high: options.queueBytesMax))
            .connectTimeout(.seconds(2))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try self.configure(channel, expecting: peer) }
            }
            .connect(to: address)
            .whenFailure { [self] error in
                logger.debug("cannot connect to peer", metadata: ["peer": "\(name(of: peer))", "address": "\(address)", "error": "\(error)"])
                remindOfOutage(peer, error: error)
                redialLater(peer)
            }
    }

    private func redialLater(_ peer: NodeID) {
        guard !stopped, peer > localID else { return }
        let delay = reconnectDelay[peer] ?? options.reconnectDelayMin
        reconnectDelay[peer] = min(delay * 2, options.reconnectDelayMax)
        loop.scheduleTask(in: delay) { [self] in dial(peer) }
    }

    /// A connection finished its handshake with `peer`: it replaces any older one, which is reported down
    /// first, since what was written to it may not arrive.
    func attach(_ channel: Channel, peer: NodeID) {
        if let old = channels[peer], old !== channel {
            channels[peer] = nil  // so that its closing is not reported a second time
            old.close(promise: nil)
            logger.info("peer reconnected; closed the older connection", metadata: ["peer": "\(name(of: peer))"])
            onConnectionChange(peer, false)
        } else {
            logger.info("peer connected", metadata: ["peer": "\(name(of: peer))"])
        }
        channels[peer] = channel
        reconnectDelay[peer] = nil
        if let outage = outages.removeValue(forKey: peer), outage.reported {
            logger.notice("peer reachable again", metadata: ["peer": "\(name(of: peer))", "unreachable-for-s": "\((NIODeadline.now() - outage.since).nanoseconds / 1_000_000_000)"])
        }
        onConnectionChange(peer, true)
    }

    func detach(_ channel: Channel, peer: NodeID?) {
        guard let peer else { return }
        if channels[peer] === channel {
            channels[peer] = nil
            outages[peer] = Outage(since: .now())
            logger.info("peer disconnected", metadata: ["peer": "\(name(of: peer))"])
            onConnectionChange(peer, false)
        }
        redialLater(peer)
    }

    /// A dial to `peer` failed: if it has been unreachable long enough since the last reminder, say so, and
    /// wait twice as long before the next one.
    private func remindOfOutage(_ peer: NodeID, error: any Error) {
        let now = NIODeadline.now()
        guard peers[peer] != nil else { return }
        guard var outage = outages[peer] else {
            outages[peer] = Outage(since: now)
            return
        }
        guard now >= outage.nextReport else { return }
        logger.warning("peer still unreachable", metadata: [
            "peer": "\(name(of: peer))", "unreachable-for-s": "\((now - outage.since).nanoseconds / 1_000_000_000)", "error": "\(error)",
            "next-reminder-s": "\(min(outage.interval * 2, .hours(1)).nanoseconds / 1_000_000_000)"])
        outage.interval = min(outage.interval * 2, .hours(1))
        outage.nextReport = now + outage.interval
        outage.reported = true
        outages[peer] = outage
    }

    /// Why a hello from `peer` in `cluster` may not open a connection, or nil if it may.
    func refusal(of peer: NodeID, cluster: UInt64) -> String? {
        if cluster != clusterID {
            return "it belongs to another cluster (cluster id \(hex(cluster)); this one is \(hex(clusterID)))"
        }
        if peer == localID { return "it has this node's own id \(peer): two nodes share a name" }
        if peers[peer] == nil { logger.info("a node that is not a member connected", metadata: ["peer": "\(name(of: peer))"]) }
        return nil
    }

    /// `peer` refused this node's connection, saying why.
    func refused(by peer: NodeID, reason: String) {
        if refusals[peer] != reason {
            refusals[peer] = reason
            logger.error("a peer refused this node", metadata: ["peer": "\(name(of: peer))", "reason": "\(reason)"])
        } else {
            logger.debug("a peer refused this node again", metadata: ["peer": "\(name(of: peer))", "reason": "\(reason)"])
        }
    }

    /// The peer's name if known, else its id.
    public func name(of peer: NodeID) -> String { names[peer] ?? "node-\(peer)" }

    var helloFrame: PeerFrame { .hello(node: localID, clusterID: clusterID) }
}

private func hex(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}

struct PeerFrameEncoder: MessageToByteEncoder {
    typealias OutboundIn = PeerFrame
    func encode(data: PeerFrame, out: inout ByteBuffer) throws { data.write(to: &out) }
}

/// One peer connection: the hello exchange, then frames passed to the transport.
final class PeerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = PeerFrame
    typealias OutboundOut = PeerFrame

    let transport: PeerTransport
    /// Set on the dialing side: the node we meant to reach.
    let expectedPeer: NodeID?
    private var peer: NodeID?
    private var helloDeadline: Scheduled<Void>?

    init(transport: PeerTransport, expectedPeer: NodeID?) {
        self.transport = transport
        self.expectedPeer = expectedPeer
    }

    func channelActive(context: ChannelHandlerContext) {
        if expectedPeer != nil { context.writeAndFlush(wrapOutboundOut(transport.helloFrame), promise: nil) }
        let timeout = transport.options.helloTimeout
        helloDeadline = context.eventLoop.scheduleTask(in: timeout) { [self] in
            refuse(context, "no hello within \(timeout.nanoseconds / 1_000_000) ms")
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if let peer {
            transport.onFrame(peer, frame)
            return
        }
        if case .refused(let reason) = frame, let expectedPeer {
            transport.refused(by: expectedPeer, reason: reason)
            context.close(promise: nil)
            return
        }
        guard case .hello(let node, let cluster) = frame else {
            refuse(context, "the first frame was not a hello")
            return
        }
        if let expectedPeer, node != expectedPeer {
            refuse(context, "dialed node \(expectedPeer) but node \(node) answered")
            return
        }
        if let reason = transport.refusal(of: node, cluster: cluster) {
            refuse(context, "node \(node) may not connect: \(reason)", tellingThePeer: "this node (\(transport.localID)) refused it: \(reason)")
            return
        }
        if expectedPeer == nil { context.writeAndFlush(wrapOutboundOut(transport.helloFrame), promise: nil) }
        helloDeadline?.cancel()
        peer = node
        transport.attach(context.channel, peer: node)
    }

    func channelInactive(context: ChannelHandlerContext) {
        helloDeadline?.cancel()
        transport.detach(context.channel, peer: peer ?? expectedPeer)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        transport.logger.warning("peer connection failed", metadata: ["peer": "\(peer.map(transport.name(of:)) ?? "?")", "error": "\(error)"])
        context.close(promise: nil)
    }

    /// Closes the connection, after telling the peer why if `tellingThePeer` is given.
    private func refuse(_ context: ChannelHandlerContext, _ reason: String, tellingThePeer explanation: String? = nil) {
        transport.logger.warning("refused a peer connection", metadata: ["remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "reason": "\(reason)"])
        guard let explanation else { return context.close(promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.refused(reason: explanation))).whenComplete { _ in context.close(promise: nil) }
    }
}
