import SkiffRaft

/// A cluster driven by hand, for tests that replay the paper's scenarios: nothing happens unless the test
/// says so. Messages wait in `mailbox` until delivered (all of them, or those a predicate picks); links can
/// be cut; nodes persist each Ready at once when processed, and can crash and restart from what they
/// persisted.
public final class ScriptedCluster {
    public private(set) var mailbox: [Message] = []
    var nodes: [NodeID: SimulatedNode] = [:]
    let initialConfiguration: ClusterConfiguration
    let configure: (inout RaftConfiguration) -> Void
    var cut = Set<[NodeID]>()
    /// Every entry applied by any node, by index: what a client could have been told.
    public private(set) var applied: [UInt64: Entry] = [:]
    public private(set) var readStates: [NodeID: [ReadState]] = [:]
    public private(set) var externalTailRequests: [NodeID: ExternalTailRequest] = [:]

    /// Nodes `voters` and `learners` (plus `others`, which start outside the cluster), each starting from
    /// the log and hard state given in `logs`, if any.
    public init(voters: [UInt64], learners: [UInt64] = [], others: [UInt64] = [],
                logs: [UInt64: (entries: [Entry], hardState: HardState)] = [:],
                configure: @escaping (inout RaftConfiguration) -> Void = { _ in }) {
        initialConfiguration = ClusterConfiguration(voters: Set(voters.map { NodeID($0) }), learners: Set(learners.map { NodeID($0) }))
        self.configure = configure
        for raw in voters + learners + others {
            var node = SimulatedNode(id: NodeID(raw))
            if let log = logs[raw] {
                node.disk.entries = log.entries
                node.disk.hardState = log.hardState
            }
            nodes[node.id] = node
            start(node.id)
        }
    }

    public func core(_ id: UInt64) -> RaftCore { nodes[NodeID(id)]!.core! }
    public func isUp(_ id: UInt64) -> Bool { nodes[NodeID(id)]!.isUp }
    public var leaders: [UInt64] { nodes.values.filter { $0.core?.isLeader == true }.map(\.id.rawValue).sorted() }

    private func start(_ id: NodeID) {
        var configuration = RaftConfiguration(id: id)
        configure(&configuration)
        let disk = nodes[id]!.disk
        let recovered = RecoveredState(hardState: disk.hardState, snapshot: disk.snapshot, entries: disk.entries,
                                       initialConfiguration: initialConfiguration)
        nodes[id]!.core = RaftCore(configuration: configuration, recovered: recovered, random: SplitMix64(seed: id.rawValue))
        nodes[id]!.stateMachine = disk.snapshotData
        nodes[id]!.appliedIndex = disk.snapshot?.index.rawValue ?? 0
    }

    // MARK: Driving nodes

    public func tick(_ id: UInt64, times: Int = 1) {
        for _ in 0..<times { nodes[NodeID(id)]!.core!.tick() }
    }

    public func tickAll(times: Int = 1) {
        for _ in 0..<times { for id in nodes.keys.sorted() where nodes[id]!.isUp { nodes[id]!.core!.tick() } }
    }

    public func campaign(_ id: UInt64) { nodes[NodeID(id)]!.core!.campaign() }

    /// Runs `id`'s election, delivering only (pre-)vote traffic, so the new leader's first appends are still
    /// waiting in the mailbox when it returns.
    public func elect(_ id: UInt64) {
        campaign(id)
        for _ in 0..<6 where !core(id).isLeader {
            processAll()
            deliver { message in
                switch message.kind {
                case .requestVote, .voteResponse: true
                default: false
                }
            }
        }
        processAll()
    }

    public func propose(_ id: UInt64, _ text: String) -> Result<LogIndex, RaftRefusal> {
        nodes[NodeID(id)]!.core!.propose(Array(text.utf8))
    }

    public func propose(_ id: UInt64, batch payloads: [[UInt8]]) -> Result<ClosedRange<LogIndex>, RaftRefusal> {
        nodes[NodeID(id)]!.core!.propose(batch: payloads)
    }

    public func change(_ id: UInt64, _ change: ConfigurationChange) -> Result<LogIndex, RaftRefusal> {
        nodes[NodeID(id)]!.core!.proposeConfigurationChange(change)
    }

    public func transfer(from id: UInt64, to target: UInt64) -> RaftRefusal? {
        nodes[NodeID(id)]!.core!.transferLeadership(to: NodeID(target))
    }

    public func stepDown(_ id: UInt64) { nodes[NodeID(id)]!.core!.stepDown() }

    public func reportConnected(_ id: UInt64, _ peer: UInt64) { nodes[NodeID(id)]!.core!.reportConnected(NodeID(peer)) }

    public func read(_ id: UInt64, requestID: UInt64) -> RaftRefusal? {
        nodes[NodeID(id)]!.core!.requestRead(id: requestID)
    }

    public func deliverExternalTail(_ id: UInt64, _ tail: ExternalTail) -> LogIndex {
        nodes[NodeID(id)]!.core!.deliverExternalTail(tail)
    }

    /// Saves `id`'s state machine as a snapshot at its applied index and compacts its log behind it.
    public func campaignWithoutExternalTail(_ id: UInt64) { nodes[NodeID(id)]!.core!.campaignWithoutExternalTail() }

    public func externalLogAppended(_ id: UInt64, through index: LogIndex, term: Term) {
        nodes[NodeID(id)]!.core!.externalLogAppended(through: index, term: term)
    }

    public func externalLogFenced(_ id: UInt64, term: Term) { nodes[NodeID(id)]!.core!.externalLogFenced(term: term) }

    public func snapshot(_ id: UInt64) { nodes[NodeID(id)]!.takeSnapshot() }

    public func reportUnreachable(_ id: UInt64, _ peer: UInt64) { nodes[NodeID(id)]!.core!.reportUnreachable(NodeID(peer)) }

    public func reportSnapshot(_ id: UInt64, to peer: UInt64, index: LogIndex, delivered: Bool) {
        nodes[NodeID(id)]!.core!.reportSnapshot(to: NodeID(peer), index: index, delivered: delivered)
    }

    public func crash(_ id: UInt64) {
        nodes[NodeID(id)]!.core = nil
        mailbox.removeAll { $0.to.rawValue == id || $0.from.rawValue == id }
    }

    public func restart(_ id: UInt64) { start(NodeID(id)) }

    /// Persists and answers every Ready of `id` (all of them, until it has none).
    public func process(_ id: UInt64) {
        let node = NodeID(id)
        while let ready = nodes[node]?.core?.ready() {
            mailbox.append(contentsOf: ready.messages)
            nodes[node]!.persist(ready) { index in self.commandIDs(through: index) }
            mailbox.append(contentsOf: ready.messagesAfterPersist)
            for entry in ready.committedEntries {
                precondition(applied[entry.index.rawValue].map { $0 == entry } ?? true, "state machine safety")
                applied[entry.index.rawValue] = entry
                nodes[node]!.appliedIndex = entry.index.rawValue
            }
            readStates[node, default: []].append(contentsOf: ready.readStates)
            if let request = ready.externalTailRequest { externalTailRequests[node] = request }
            nodes[node]!.core!.advance(ready)
        }
    }

    public func processAll() { for id in nodes.keys.sorted() { process(id.rawValue) } }

    private func commandIDs(through index: LogIndex) -> [UInt64] { [] }

    // MARK: The network

    /// Delivers the waiting messages `predicate` picks (all by default), in order; messages over cut links,
    /// or to crashed nodes, are lost. Returns how many were delivered.
    @discardableResult
    public func deliver(where predicate: (Message) -> Bool = { _ in true }) -> Int {
        var delivered = 0
        var kept: [Message] = []
        let batch = mailbox
        mailbox = []
        for message in batch {
            guard predicate(message) else { kept.append(message); continue }
            guard !cut.contains([message.from, message.to]), nodes[message.to]?.isUp == true else { continue }
            try! nodes[message.to]!.core!.step(message)
            delivered += 1
        }
        mailbox = kept + mailbox
        return delivered
    }

    /// Puts messages (held back earlier) into the mailbox, as a network that delayed them would.
    public func inject(_ messages: [Message]) { mailbox.append(contentsOf: messages) }

    /// Drops waiting messages `predicate` picks.
    public func drop(where predicate: (Message) -> Bool) { mailbox.removeAll(where: predicate) }

    /// Processes and delivers until nothing is left (bounded).
    public func stabilize(rounds: Int = 100) {
        for _ in 0..<rounds {
            processAll()
            if deliver() == 0 && mailbox.isEmpty { processAll(); if mailbox.isEmpty { return } }
        }
    }

    public func isolate(_ id: UInt64) {
        for other in nodes.keys where other.rawValue != id {
            cut.insert([NodeID(id), other])
            cut.insert([other, NodeID(id)])
        }
    }

    public func cutLink(_ a: UInt64, _ b: UInt64) {
        cut.insert([NodeID(a), NodeID(b)])
        cut.insert([NodeID(b), NodeID(a)])
    }

    public func heal() { cut.removeAll() }

    /// The node's log: entries from its first index to its last.
    public func log(_ id: UInt64) -> [Entry] {
        let core = core(id)
        guard core.lastIndex >= core.firstIndex else { return [] }
        return core.entries(from: core.firstIndex)
    }

    public func terms(_ id: UInt64) -> [UInt64] { log(id).map(\.term.rawValue) }
}
