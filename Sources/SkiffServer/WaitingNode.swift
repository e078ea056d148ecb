import Foundation
import Logging
import NIOCore
import NIOPosix
import SkiffClient
import SkiffRaft
import SkiffRESP
import Synchronization

/// A node started with `--await-init` and no cluster yet ("uninitialised"): it serves only what forming a
/// cluster needs, on its client address, until it has a cluster identity, recorded in its data directory.
///
/// It gets one in one of three ways: `SKIFF.INIT name voters...` reaches it and it is the coordinating
/// node (the voter whose name sorts first), which makes the identity, records it, and hands it to every
/// other voter (`SKIFF.ADOPT`); a coordinator hands it one; or, with `--join`, a member of a running
/// cluster lets it in. Waiting nodes learn each other's names and addresses from the `SKIFF.JOIN`s that
/// nodes started with `--join` keep sending (a waiting node answers one with the nodes it knows).
///
/// Guarantees: the identity is recorded once, first come first served, and never replaced, so a node is
/// never initialised into two clusters; an init that cannot name every voter's address changes nothing.
final class WaitingNode: Sendable {
    let configuration: NodeConfiguration
    let logger: Logger
    private let state: Mutex<State>

    private struct State {
        /// The waiting nodes heard of, by name, this one included.
        var known: [String: MemberDetails]
        var identity: ClusterIdentity?
        /// Inits received and not answered yet (coordinated here or handed on): the node keeps waiting, its
        /// listener open, until each answer is written.
        var initsRunning = 0
    }

    init(configuration: NodeConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let me = MemberDetails(name: configuration.name, peerAddress: configuration.advertisedPeerAddress, clientAddress: configuration.clientAddress)
        state = Mutex(State(known: [configuration.name: me]))
    }

    /// Serves the waiting protocol on the client address until the node has an identity, which it returns.
    func waitForIdentity() async throws -> ClusterIdentity {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let identity = try await serve(on: group)
            try? await group.shutdownGracefully()
            return identity
        } catch {
            try? await group.shutdownGracefully()  // closes the listener and its connections
            throw error
        }
    }

    private func serve(on group: MultiThreadedEventLoopGroup) async throws -> ClusterIdentity {
        var limits = RESPLimits()
        limits.bulkBytesMax = 1 << 20
        let requestLimits = limits
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(RESPRequestDecoder(limits: requestLimits)), WaitingHandler(node: self),
                    ])
                }
            }
            .bind(host: configuration.clientAddress.host, port: configuration.clientAddress.port).get()
        logger.notice("waiting to be initialised: run skiff init --name NAME --voters A,B,C --server \(configuration.clientAddress) (or on any waiting node)",
                      metadata: ["node": "\(configuration.name)"])
        let joining = configuration.join.isEmpty ? nil : Task { await joinLoop() }
        defer { joining?.cancel() }
        while true {
            let (identity, running) = state.withLock { ($0.identity, $0.initsRunning) }
            if let identity, running == 0 {
                try? await listener.close().get()
                return identity
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Keeps asking the `--join` members to let this node in, until one does (a cluster is running there)
    /// or the node has an identity by other means. A refusal does not end the wait: the node may be a voter
    /// of that very cluster whose identity is still on its way (its name is then taken by its voter slot).
    private func joinLoop() async {
        var refusal = ""
        while !Task.isCancelled {
            do {
                let answer = try await ClusterIdentity.askToJoin(configuration, nodeID: ClusterIdentity.drawNodeID(), uuid: nil,
                                                                 patience: .seconds(86_400 * 365), logger: logger) { [self] message in
                    learn(fromWaitingReply: message)
                }
                if let answer, try decide(answer, how: "joined the cluster as a learner").uuid != answer.uuid {
                    logger.warning("this node was let into cluster \(answer.tag) while it was being initialised into another; that cluster has a learner slot to remove")
                }
                return
            } catch is CancellationError {
                return
            } catch {
                if "\(error)" != refusal { logger.warning("still waiting: \(error)") }
                refusal = "\(error)"
                try? await Task.sleep(for: .seconds(2))
            }
        }
    }

    /// Records `identity` unless the node already has one; returns the one it has now. A coordinator names
    /// the voters it is to hand the identity to (`pending`), recorded first.
    func decide(_ identity: ClusterIdentity, how: String, pending: [String] = []) throws -> ClusterIdentity {
        try state.withLock { state in
            if let recorded = state.identity { return recorded }
            try InitHandOver.record(pending: pending, in: configuration.dataDirectory)
            try identity.save(directory: configuration.dataDirectory)
            state.identity = identity
            logger.notice("\(how)", metadata: ["cluster": "\(identity.tag)"])
            return identity
        }
    }

    // MARK: What other waiting nodes say

    /// A waiting node's answer to SKIFF.JOIN: the nodes it knows, for the asker to learn.
    var waitingReply: String {
        let known = state.withLock { $0.known.values.sorted { $0.name < $1.name } }
        return "UNINITIALISED this node waits for skiff init; nodes known here: "
            + known.map { "\($0.name)=\($0.peerAddress)=\($0.clientAddress?.description ?? "")" }.joined(separator: " ")
    }

    func learn(_ details: MemberDetails) {
        state.withLock { $0.known[details.name] = details }
    }

    func learn(fromWaitingReply message: String) {
        guard let range = message.range(of: "nodes known here: ") else { return }
        for word in message[range.upperBound...].split(separator: " ") {
            let parts = word.split(separator: "=", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, parts[0] != configuration.name, let peer = try? HostAndPort(parsing: parts[1]),
                  let client = try? HostAndPort(parsing: parts[2]) else { continue }
            learn(MemberDetails(name: parts[0], peerAddress: peer, clientAddress: client))
        }
    }

    // MARK: Init

    /// An init arrived: the node keeps waiting until `endInit`, once its answer is written.
    func beginInit() { state.withLock { $0.initsRunning += 1 } }
    func endInit() { state.withLock { $0.initsRunning -= 1 } }

    /// `SKIFF.INIT`: coordinates it here if this node is the coordinator, else hands it to the coordinator.
    func initialise(clusterName: String, voters: [String]) async -> RESPValue {
        if let refusal = Self.checkInit(clusterName: clusterName, voters: voters) { return .error(refusal) }
        let coordinator = voters.min()!
        let known = state.withLock { $0.known }
        let unknown = voters.filter { known[$0]?.clientAddress == nil }
        guard unknown.isEmpty else {
            return .error("ERR UNKNOWN-VOTERS no waiting node by the name \(unknown.joined(separator: ", ")) has made itself known here (known: \(known.keys.sorted().joined(separator: ", "))); start each with --await-init --join pointing at a waiting node, and retry")
        }
        if coordinator != configuration.name {
            let address = known[coordinator]!.clientAddress!
            return await InitHandOver.handOn(["SKIFF.INIT", clusterName] + voters, to: coordinator, at: address, password: configuration.password,
                                             noAnswer: "ERR NO-ANSWER the coordinating node \(coordinator) at \(address) did not answer; repeat the init to learn whether it took effect")
        }
        var details: [NodeID: [UInt8]] = [:]
        for voter in voters { details[ClusterMember.id(of: voter)] = known[voter]!.encoded() }
        let made = ClusterIdentity(name: clusterName, uuid: ClusterIdentity.randomUUID(), base: ClusterConfiguration(voters: Set(details.keys), details: details))
        let identity: ClusterIdentity
        do {
            identity = try decide(made, how: "initialised the cluster, coordinating the init", pending: voters.filter { $0 != configuration.name })
        } catch {
            return .error("ERR cannot record the cluster's identity: \(error)")
        }
        guard identity.name == clusterName, Set(identity.voterNames) == Set(voters) else {
            return .error("ERR ALREADY-INITIALISED this node belongs to cluster \(identity.tag) already")
        }
        guard let problems = await InitHandOver.handOver(identity, directory: configuration.dataDirectory, password: configuration.password, logger: logger) else {
            return .error("TRYAGAIN this node is handing the cluster's identity over already; retry in a few seconds")
        }
        return InitHandOver.answer(identity, problems: problems, formedNow: identity.uuid == made.uuid)
    }

    /// What is wrong with an init's arguments, as an error line; nil if nothing.
    static func checkInit(clusterName: String, voters: [String]) -> String? {
        guard !clusterName.isEmpty, clusterName.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            return "ERR the cluster name must be non-empty, without spaces"
        }
        guard voters.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { $0 > 32 && $0 < 127 && $0 != UInt8(ascii: "=") && $0 != UInt8(ascii: ",") } }) else {
            return "ERR a voter's name must be non-empty, without spaces, '=' or ','"
        }
        guard Set(voters).count == voters.count else { return "ERR the voters name a node twice" }
        let ids = Set(voters.map(ClusterMember.id(of:)))
        guard ids.count == voters.count, !ids.contains(ClusterMember.witnessID) else { return "ERR two voters' names hash to the same node id; rename one" }
        return nil
    }

    /// `SKIFF.ADOPT` from a coordinator.
    func adopt(_ fields: [String: String]) -> RESPValue {
        guard let offered = ClusterIdentity(adoptFields: fields) else { return .error("ERR SKIFF.ADOPT does not name a cluster this version understands") }
        guard let mine = offered.base.details[configuration.nodeID].flatMap(MemberDetails.init(decoding:)),
              mine.name == configuration.name, mine.peerAddress == configuration.advertisedPeerAddress else {
            return .error("ERR ADOPT-REFUSED cluster \(offered.tag) does not name this node (\(configuration.name) at \(configuration.advertisedPeerAddress)) as a voter")
        }
        do {
            let identity = try decide(offered, how: "initialised: the coordinating node named this node a voter")
            guard identity.uuid == offered.uuid else { return .error("ERR ALREADY-INITIALISED this node belongs to cluster \(identity.tag)") }
            return .ok
        } catch {
            return .error("ERR cannot record the cluster's identity: \(error)")
        }
    }
}

extension ClusterIdentity {
    /// The names of the voters of the configuration the log starts from.
    var voterNames: [String] { base.voters.compactMap { base.details[$0].flatMap(MemberDetails.init(decoding:))?.name } }

    /// What SKIFF.ADOPT carries.
    var adoptFields: [String: String] { ["cluster": name, "uuid": uuidString, "base": Self.hex(base.encoded())] }

    init?(adoptFields fields: [String: String]) {
        guard let name = fields["cluster"], let uuid = fields["uuid"].flatMap(Self.parseUUID),
              let base = fields["base"].flatMap(Self.bytes(fromHex:)).flatMap(ClusterConfiguration.init(decoding:)) else { return nil }
        self.init(name: name, uuid: uuid, base: base)
    }
}

extension RESPValue {
    /// A reply from another node, passed on as it came.
    init(_ reply: RESPClient.Reply) {
        switch reply {
        case .simple(let text): self = .simple(text)
        case .error(let text): self = .error(text)
        case .integer(let value): self = .integer(value)
        case .bulk(let bytes): self = bytes.map(RESPValue.bulk) ?? .null
        case .array(let items): self = .array(items.map(RESPValue.init))
        case .nullArray: self = .nullArray
        }
    }
}

/// One client connection to a waiting node: AUTH, PING, QUIT, and the commands that form a cluster; every
/// other command is refused with `UNINITIALISED`. Commands are answered in order.
private final class WaitingHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = [[UInt8]]
    typealias OutboundOut = ByteBuffer

    let node: WaitingNode
    private var session: ClientSession
    /// The reply to the previous command, which the next one's follows.
    private var previous: EventLoopFuture<Void>?

    init(node: WaitingNode) {
        self.node = node
        session = ClientSession(password: node.configuration.password)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let words = unwrapInboundIn(data)
        let channel = context.channel
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        var closing = false
        var ending: (@Sendable () -> Void)?
        switch ClientCommand.parse(words) {
        case .failure(let error): promise.succeed(.error(error.message))
        case .success(let command):
            if let refusal = session.refusal(for: command) {
                promise.succeed(refusal)
                break
            }
            switch command {
            case .auth(let user, let password): promise.succeed(session.authenticate(user: user, password: password) ?? .ok)
            case .ping(let message): promise.succeed(message.map(RESPValue.bulk) ?? .simple("PONG"))
            case .quit:
                closing = true
                promise.succeed(.ok)
            case .membership(.join(let name, _, let peer, let client, _, let uuid)):
                // A node that already belongs to a cluster (it sends its UUID) is no candidate voter.
                if uuid == nil, name != node.configuration.name, let peer = try? HostAndPort(parsing: peer), let client = try? HostAndPort(parsing: client), !name.isEmpty {
                    node.learn(MemberDetails(name: name, peerAddress: peer, clientAddress: client))
                }
                promise.succeed(.error(node.waitingReply))
            case .membership(.adopt(let fields)): promise.succeed(node.adopt(fields))
            case .membership(.initialise(let name, let voters)):
                let node = self.node
                node.beginInit()
                promise.completeWithTask { await node.initialise(clusterName: name, voters: voters) }
                ending = { node.endInit() }
            default:
                promise.succeed(.error("UNINITIALISED this node is waiting to be initialised (skiff init --name NAME --voters A,B,C) or to join a cluster"))
            }
        }
        let version = session.protocolVersion
        let thenClose = closing
        let thenEnd = ending
        // Each reply waits for the one before it, written or not: an earlier write that failed (the client
        // went away) must not skip a later SKIFF.INIT's `ending`, or the node would wait for it for good.
        let after = (previous ?? channel.eventLoop.makeSucceededVoidFuture()).recover { _ in }
        previous = after.flatMap { promise.futureResult }.flatMap { reply in
            var buffer = channel.allocator.buffer(capacity: 64)
            reply.write(to: &buffer, protocolVersion: version)
            let written = channel.writeAndFlush(buffer)
            written.whenComplete { _ in thenEnd?() }
            return thenClose ? written.flatMap { channel.close() } : written
        }
    }

    /// A request that breaks the protocol: answered with the reason once the commands before it are, then
    /// the connection closes.
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Bytes read after a malformed request: that request is closing the connection already.
        if case ByteToMessageDecoderError.dataReceivedInErrorState = error { return }
        guard let protocolError = error as? RESPProtocolError else { return context.close(promise: nil) }
        var buffer = context.channel.allocator.buffer(capacity: 64)
        RESPValue.error("ERR \(protocolError)").write(to: &buffer, protocolVersion: session.protocolVersion)
        let reply = buffer
        let channel = context.channel
        let after = previous ?? channel.eventLoop.makeSucceededVoidFuture()
        after.whenComplete { _ in channel.writeAndFlush(reply).whenComplete { _ in channel.close(promise: nil) } }
    }
}
