import Logging
import NIOCore
import SkiffKV
import SkiffRaft
import SkiffStorage
import SkiffTransport

/// One Skiff node: the Raft core, the key space and the node's storage, driven by one event loop.
///
/// Guarantees: a write's reply is given only once its entry is committed and applied here; a read (unless
/// the client opted out) is served only after a ReadIndex round showed this node's state is at least as new
/// as every write acknowledged before the read arrived. Entries and hard state are durable before any
/// message that promises them leaves. All state is confined to `loop`: call every method there.
public final class Node: @unchecked Sendable {
    let configuration: NodeConfiguration
    public let loop: EventLoop
    let storage: NodeStorage
    let transport: PeerTransport
    let logger: Logger
    var core: RaftCore
    var store: KVStore
    public let id: NodeID

    /// Readys taken from the core and not yet advanced, oldest first, each with whether it is durable. The
    /// core hands out the next Ready while earlier ones are being persisted, so that the leader's appends
    /// leave and committed writes are answered while the disk is busy.
    var unadvanced: [(ready: Ready, durable: Bool)] = []
    private var readyScheduled = false
    /// The last index the WAL holds or has been asked to hold (to know when an append must truncate first).
    var walLastIndex: UInt64
    /// The log index the key space reflects: what reads are served at. It can lag the core's applied index,
    /// which moves as soon as the core takes a snapshot that is not installed yet.
    var storeIndex: UInt64
    /// The last snapshot file write (taken here or installed), which the next one waits for: one writer at a time.
    var snapshotWrite: Task<Void, Never>?
    /// Forwarding to a leader that refused waits until then (it may not know yet that it was deposed).
    var forwardingPausedUntil = NIODeadline.uptimeNanoseconds(0)
    private var ticker: RepeatedTask?
    var ticks: UInt64 = 0
    /// When the last tick ran, on the monotonic clock: a long gap since means this process stalled.
    private var lastTickAt = NIODeadline.now()
    var stopped = false

    let writes = WriteTracker()
    let reads: ReadWaiters
    var snapshots: SnapshotState
    /// The external log, if the node was given one.
    var external: ExternalMirror?
    /// In witness mode, the node's side of the witness: it answers for the store.
    var witness: WitnessPeer?
    public internal(set) var metrics = NodeMetrics()
    let serverMetrics = ServerMetrics()
    /// When this node was opened, for INFO's uptime.
    let openedAt = NIODeadline.now()

    /// The cluster this node belongs to, and the configurations it started from.
    public let identity: ClusterIdentity
    /// The configuration the transport's peers were last set from, and whether a joiner's seed was added.
    var peersConfiguration: ClusterConfiguration?
    var peersSeeded = false
    /// Every member's name this node has known, for log lines about nodes that have since left.
    var knownNames: [NodeID: String] = [:]
    let membership = MembershipWaits()
    var watches: WatchHub
    var removalReported = false
    /// Client connections with replies ready to write: written in one loop task, not one task each.
    var connectionsToFlush: [ClientHandler] = []
    /// Called once, on the loop, when this node learns that it was removed from the cluster (at once when set,
    /// if it already has).
    public var onRemoved: () -> Void = {} {
        didSet { if removalReported { onRemoved() } }
    }

    init(configuration: NodeConfiguration, identity: ClusterIdentity, loop: EventLoop, storage: NodeStorage, core: RaftCore, store: KVStore,
         transport: PeerTransport, snapshotIndex: UInt64, logger: Logger) {
        self.configuration = configuration
        self.identity = identity
        self.loop = loop
        self.storage = storage
        self.core = core
        self.store = store
        self.transport = transport
        self.logger = logger
        id = identity.nodeID ?? configuration.nodeID
        walLastIndex = storage.wal.lastIndex.rawValue
        snapshots = SnapshotState(lastIndex: snapshotIndex)
        storeIndex = snapshotIndex
        watches = WatchHub(appliedIndex: snapshotIndex, eventsMax: configuration.watchHistory)
        reads = ReadWaiters(overlapAfter: timeAmount(configuration.tickInterval))
        let used = try? ExternalStoreMarker.load(directory: configuration.dataDirectory)  // recorded by the claim at start
        external = configuration.externalLog.map { ExternalMirror(store: $0, storeID: used?.store) }
        witness = configuration.externalWitness ? configuration.externalLog.map { WitnessPeer(store: $0) } : nil
    }

    /// Opens storage, restores the key space from the newest snapshot and the log after it, and builds the
    /// Raft core, in the cluster `identity` names. Nothing runs until `start()`.
    public static func open(configuration: NodeConfiguration, identity: ClusterIdentity, loop: EventLoop, logger: Logger) async throws -> Node {
        try configuration.validate()
        var options = StorageOptions()
        options.wal.fsync = configuration.fsync
        let (storage, recovery) = try await NodeStorage.open(directory: configuration.dataDirectory, options: options, logger: logger)
        var store = KVStore()
        var snapshot: RaftSnapshot?
        if let metadata = recovery.snapshot, let path = recovery.snapshotPath {
            store = try SnapshotIO.readStore(path: path)
            guard let clusterConfiguration = ClusterConfiguration(decoding: metadata.configuration) else {
                throw ConfigurationError("snapshot \(path) holds no valid cluster configuration")
            }
            snapshot = RaftSnapshot(index: metadata.index, term: metadata.term, configuration: clusterConfiguration)
        }
        let snapshotIndex = snapshot?.index.rawValue ?? 0
        let first = max(storage.wal.firstIndex.rawValue, snapshotIndex + 1)
        let last = storage.wal.lastIndex.rawValue
        let entries = last >= first ? try storage.wal.entries(in: LogIndex(first)...LogIndex(last)) : []
        var base = identity.base
        if configuration.externalWitness, !base.voters.contains(ClusterMember.witnessID) {
            base = try base.applying(.addVoter(ClusterMember.witnessID)).get()
        }
        let recovered = RecoveredState(hardState: storage.wal.hardState, snapshot: snapshot, entries: entries, initialConfiguration: base)
        let nodeID = identity.nodeID ?? configuration.nodeID
        var raft = RaftConfiguration(id: nodeID)
        raft.electionTicks = configuration.electionTicks
        raft.heartbeatTicks = configuration.heartbeatTicks
        if configuration.externalLog != nil {
            raft.commitRequiresExternalLog = true
            raft.externalTailWaitTicks = configuration.electionTicks
            if configuration.externalWitness { raft.witness = ClusterMember.witnessID }
        }
        let core = RaftCore(configuration: raft, recovered: recovered, random: SplitMix64(seed: UInt64.random(in: 1...UInt64.max)))
        try WitnessModeRecord.check(directory: configuration.dataDirectory, enabled: configuration.externalWitness,
                                    inConfiguration: core.clusterConfiguration.voters.contains(ClusterMember.witnessID))
        logger.info("recovered", metadata: [
            "snapshot": "\(snapshotIndex)", "log": "\(first)...\(last)", "hard-state": "\(storage.wal.hardState)",
            "cut-tail": "\(recovery.wal.cutTail.map { "\($0)" } ?? "none")",
        ])
        var transportOptions = PeerTransport.Options()
        transportOptions.frameBytesMax = max(64 << 20, configuration.limits.bulkBytesMax * 4)
        let transport = PeerTransport(localID: nodeID, clusterID: identity.clusterID, peers: [:], loop: loop,
                                      options: transportOptions, logger: logger)
        let node = Node(configuration: configuration, identity: identity, loop: loop, storage: storage, core: core, store: store,
                        transport: transport, snapshotIndex: snapshotIndex, logger: logger)
        node.knownNames = [nodeID: configuration.name]
        if configuration.externalWitness { node.knownNames[ClusterMember.witnessID] = "external-witness" }
        return node
    }

    /// Listens for peers and starts the Raft clock. Returns the bound peer address.
    public func start() -> EventLoopFuture<SocketAddress> {
        loop.flatSubmit { [self] in
            transport.onFrame = { [self] peer, frame in received(frame, from: peer) }
            transport.onConnectionChange = { [self] peer, connected in
                if connected {
                    core.reportConnected(peer)
                    scheduleReady()
                } else {
                    writes.connectionLost(to: peer)
                }
            }
            let address: SocketAddress
            do {
                address = try SocketAddress.makeAddressResolvingHost(configuration.peerAddress.host, port: configuration.peerAddress.port)
            } catch {
                return loop.makeFailedFuture(error)
            }
            let tick = TimeAmount.nanoseconds(Int64(configuration.tickInterval.components.seconds) * 1_000_000_000
                                              + configuration.tickInterval.components.attoseconds / 1_000_000_000)
            ticker = loop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { [self] _ in onTick() }
            syncPeers()
            if core.clusterConfiguration.voters == [id] { core.campaign() }  // a lone node need not wait a timeout
            scheduleReady()
            return transport.start(listeningOn: address)
        }
    }

    /// Stops the clock and the peer connections, fails what is still waiting, and closes the WAL once every
    /// write already handed to it is durable. External store calls under way get `externalStopGrace` to
    /// return: a store that hangs (an NFS hard mount that stopped answering) must not keep the node from
    /// stopping, and leaving its calls unfinished is what a crash does, which the store's protocol survives.
    public func stop() async {
        try? await loop.flatSubmit { [self] in
            stopped = true
            ticker?.cancel()
            writes.failAll(.shuttingDown)
            reads.failAll()
            membership.failAll()
            watches.cutAll("ERR the server is shutting down: resume the watch on another member")
            return transport.stop()
        }.get()
        let graceEnds = ContinuousClock.now + Self.externalStopGrace
        while let (local, external) = try? await loop.submit({ [self] in
            (unadvanced.contains { !$0.durable } || snapshots.saving, externalCallsUnderWay)
        }).get(), local || (external && ContinuousClock.now < graceEnds) {
            try? await Task.sleep(for: .milliseconds(5))
        }
        let unanswered = try? await loop.submit { [self] in externalCallsUnderWay ? external.map { "\($0.store)" } ?? "-" : nil }.get()
        if let store = unanswered ?? nil {
            logger.warning("the external store did not answer; stopping without waiting for its calls under way, as a crash would",
                           metadata: ["store": "\(store)", "waited": "\(Self.externalStopGrace)"])
        }
        await storage.close()
    }

    /// How long `stop` waits for external store calls under way.
    static let externalStopGrace = Duration.seconds(5)

    /// Whether a call to the external store (a mirror write, an attach, housekeeping, a witness vote) has
    /// not returned yet.
    private var externalCallsUnderWay: Bool {
        witness?.busy == true || external.map { !$0.inFlight.isEmpty || $0.attaching || $0.housekeeping } == true
    }

    private func onTick() {
        noticeStall()
        ticks += 1
        core.tick()
        writes.expire(now: .now())
        reads.retryStale(now: .now(), after: configuration.tickInterval * configuration.electionTicks)
        membershipTick()
        scheduleReady()
    }

    /// Like a JVM pause monitor: ticks are due every `tickInterval`, so a much longer gap on the monotonic clock
    /// (which runs on while the process is stopped, swapped out or starved) means this node did nothing for
    /// that long. A leader that stalled longer than an election timeout may have been replaced meanwhile: it
    /// steps down rather than go on as if nothing happened.
    private func noticeStall() {
        let now = NIODeadline.now()
        let gap = now - lastTickAt
        lastTickAt = now
        let electionTimeout = timeAmount(configuration.tickInterval * configuration.electionTicks)
        guard gap * 2 > electionTimeout else { return }
        let stalled = gap.nanoseconds / 1_000_000
        if gap > electionTimeout {
            logger.warning("this node stalled for longer than the election timeout", metadata: [
                "stalled-ms": "\(stalled)", "election-timeout-ms": "\(electionTimeout.nanoseconds / 1_000_000)",
                "role": "\(core.role)"])
            if core.isLeader {
                core.stepDown()
                logger.warning("stepped down after the stall: another node may lead by now")
            }
        } else {
            logger.notice("this node stalled", metadata: ["stalled-ms": "\(stalled)"])
        }
    }

    // MARK: Peers

    /// A member's name, for status replies and log lines.
    func name(of node: NodeID) -> String { transport.name(of: node) }

    private func received(_ frame: PeerFrame, from peer: NodeID) {
        switch frame {
        case .raft(let message):
            if case .snapshot(let snapshot) = message.kind, !snapshots.hasReceived(snapshot, from: peer) {
                return  // its data did not (all) arrive; the leader will send it again
            }
            do { try core.step(message) } catch {
                logger.warning("dropped an invalid message", metadata: ["peer": "\(name(of: peer))", "error": "\(error)"])
            }
        case .snapshotChunk(let index, let term, let offset, let isLast, let bytes):
            snapshots.receive(from: peer, named: name(of: peer), index: index, term: term, offset: offset, isLast: isLast, bytes: bytes, logger: logger)
        case .forward(let batch, let payloads):
            answerForward(batch: batch, payloads: payloads, from: peer)
        case .forwardAnswer(let batch, let firstIndex, let term, _):
            writes.forwardAnswered(batch: batch, firstIndex: firstIndex.rawValue, term: term.rawValue)
            if firstIndex == .zero { forwardingPausedUntil = .now() + timeAmount(configuration.tickInterval) }
        case .adminRequest(let request, let words):
            answerAdminRequest(id: request, words: words, from: peer)
        case .adminReply(let request, let isError, let words):
            membership.replied(request, isError: isError, words: words)
        case .hello, .refused:
            break
        }
        scheduleReady()
    }

    // MARK: The Ready loop

    /// Processes the core's output at the end of this event loop turn, so that everything that arrived in
    /// the turn shares one Ready (and one fsync).
    func scheduleReady() {
        guard !readyScheduled else { return }
        readyScheduled = true
        loop.execute { [self] in
            readyScheduled = false
            flushWrites()
            flushReads()
            processReady()
            driveMirror()
        }
    }

    private func processReady() {
        guard !stopped, let ready = core.ready() else { return }
        for entry in ready.committedEntries { apply(entry) }  // first, so that client replies are flushed first
        syncPeers()  // a configuration takes effect once in the log: its new members must be reachable
        send(ready.messages)
        if let request = ready.externalTailRequest { replayExternalTail(request) }
        for state in ready.readStates { reads.confirmed(state, appliedIndex: storeIndex) }
        reads.release(appliedThrough: storeIndex)
        if !ready.readStates.isEmpty, reads.hasWaiting { scheduleReady() }  // their round can start now
        unadvanced.append((ready, durable: !ready.mustSync))
        if ready.mustSync {
            let started = NIODeadline.now()
            persist(ready) { [self] in
                loop.execute { [self] in
                    metrics.recordPersist(since: started, entries: ready.entries.count)
                    serverMetrics.fsyncSeconds.record(.nanoseconds((NIODeadline.now() - started).nanoseconds))
                    // The WAL completes appends in the order they were made, so this is the oldest not yet durable.
                    let position = unadvanced.firstIndex { !$0.durable }!
                    unadvanced[position].durable = true
                    advanceDurable()
                }
            }
        } else {
            advanceDurable()
        }
    }

    /// Sends what the durable Readys at the front promised, and tells the core they are done, in order.
    private func advanceDurable() {
        while let (ready, durable) = unadvanced.first, durable {
            unadvanced.removeFirst()
            send(ready.messagesAfterPersist)
            core.advance(ready)
        }
        maybeSnapshot()  // a snapshot may cover only what is persisted, which just moved
        scheduleReady()
    }

    /// Makes the Ready's snapshot, entries and hard state durable, then calls `done` (on any thread).
    private func persist(_ ready: Ready, done: @escaping @Sendable () -> Void) {
        let wal = storage.wal
        let entries = ready.entries
        let hardState = ready.hardState
        if let snapshot = ready.snapshot {
            installSnapshot(snapshot, hardState: hardState ?? core.hardState, then: {
                if entries.isEmpty { done() } else { wal.append(entries, hardState: hardState) { Self.check($0); done() } }
            })
            walLastIndex = entries.last?.index.rawValue ?? snapshot.index.rawValue
            return
        }
        if let first = entries.first?.index.rawValue, first <= walLastIndex {
            wal.truncate(after: LogIndex(first - 1)) { Self.check($0) }
        }
        if let last = entries.last { walLastIndex = last.index.rawValue }
        // One WAL append takes at most about 120 MiB; a larger Ready goes in pieces, the hard state with the last.
        var pieces: [ArraySlice<Entry>] = []
        var start = 0
        var bytes = 0
        for (position, entry) in entries.enumerated() {
            if bytes + entry.payload.count > Self.walAppendBytesMax, position > start {
                pieces.append(entries[start..<position])
                start = position
                bytes = 0
            }
            bytes += entry.payload.count
        }
        for piece in pieces { wal.append(Array(piece), hardState: nil) { Self.check($0) } }
        wal.append(Array(entries[start...]), hardState: hardState) { Self.check($0); done() }
    }

    static let walAppendBytesMax = 64 << 20

    /// A write the WAL could not make durable: continuing could acknowledge what is not on disk.
    static func check(_ result: Result<Void, WALError>) {
        if case .failure(let error) = result { fatalError("the WAL failed; stopping so that a restart recovers from disk: \(error)") }
    }

    private func send(_ messages: [Message]) {
        for message in messages {
            if case .snapshot(let snapshot) = message.kind {
                streamSnapshot(snapshot, message: message)
                continue
            }
            if message.to == ClusterMember.witnessID, witness != nil {
                sendToWitness(message)
                continue
            }
            if !transport.send(.raft(message), to: message.to) { core.reportUnreachable(message.to) }
        }
    }

    private func apply(_ entry: Entry) {
        metrics.applied = entry.index.rawValue
        storeIndex = entry.index.rawValue
        guard entry.kind == .command else {
            writes.appliedOther(at: entry.index.rawValue)
            membership.applied(index: entry.index.rawValue, term: entry.term.rawValue)
            return
        }
        guard let proposal = KVProposal(decoding: entry.payload) else {
            fatalError("log entry \(entry.index) is not a command this version understands; upgrade this node")
        }
        let keys = WatchHub.keys(of: proposal.command, in: store)
        let existed = WatchHub.mayRemoveKeys(proposal.command) ? keys.map(store.contains) : nil
        let reply = if case .transaction(let watched, let commands) = proposal.command, proposal.origin == id.rawValue,
                       let between = writes.between(for: proposal.requestID) {
            store.applyTransaction(watched: watched, writes: commands, at: entry.index.rawValue, between: between)
        } else {
            store.apply(proposal.command, at: entry.index.rawValue)
        }
        watches.record(revision: entry.index.rawValue, keys: keys, existedBefore: existed, store: store)
        if proposal.origin == id.rawValue {
            writes.applied(requestID: proposal.requestID, at: entry.index.rawValue, reply: reply)
        } else {
            writes.appliedOther(at: entry.index.rawValue)
        }
    }
}
