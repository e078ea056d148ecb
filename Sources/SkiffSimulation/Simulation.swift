import SkiffRaft

/// A deterministic run of a Raft cluster against a faulty world: a network that loses, delays, duplicates,
/// reorders and partitions messages; nodes that crash, losing what they had not persisted, and restart;
/// membership changes, leadership transfers, snapshots and reads. All of it from one seed.
///
/// After every step it checks Raft's safety properties (`SafetyChecker`); after the faulty phase it heals
/// everything and requires a leader and a committed proposal on every member within bounded ticks.
public final class Simulation {
    public let seed: UInt64
    public let options: SimulationOptions
    var random: SplitMix64
    var nodes: [SimulatedNode]
    let initialConfiguration: ClusterConfiguration
    /// Messages on their way; `fromRemoved`: sent by a node that knew it had been removed from the cluster.
    var inFlight: [(message: Message, deliverAt: Int, fromRemoved: Bool)] = []
    /// Directed links that drop everything (partitions).
    var blocked = Set<[NodeID]>()
    /// Nodes whose process is stopped (a long GC, SIGSTOP): no ticks, no work, messages wait for them.
    var paused = Set<NodeID>()
    var dropPercent: UInt64
    var duplicatePercent: UInt64
    var now = 0
    var stepNumber = 0
    var nextCommandID: UInt64 = 1
    var nextReadID: UInt64 = 1
    var checker = SafetyChecker()
    var external = SimulatedExternalStore()
    /// The witness's node id in witness mode (never a simulated node's).
    static let witness = NodeID(99)
    public internal(set) var summary = SimulationSummary()
    /// Receives a line for every event of the run, for diagnosing a failing seed (`SKIFF_TRACE=1`).
    public var trace: ((String) -> Void)?

    public init(seed: UInt64, options: SimulationOptions) {
        precondition((1...7).contains(options.voters) && options.nodesMax >= options.voters && options.nodesMax <= 7)
        precondition(!options.witness || (options.externalLog && !options.membershipChanges), "a witness needs the external log and fixed membership")
        self.seed = seed
        self.options = options
        random = SplitMix64(seed: seed)
        dropPercent = options.dropPercent
        duplicatePercent = options.duplicatePercent
        let voters = Set((1...options.voters).map { NodeID(UInt64($0)) })
        initialConfiguration = ClusterConfiguration(voters: options.witness ? voters.union([Self.witness]) : voters)
        nodes = (1...options.nodesMax).map { SimulatedNode(id: NodeID(UInt64($0))) }
        for position in nodes.indices { start(position) }
    }

    /// Runs the faulty phase and then the liveness phase; throws the first violation.
    public func run() throws(SafetyViolation) -> SimulationSummary {
        for _ in 0..<options.steps {
            stepNumber += 1
            try randomStep()
            try checker.checkLeaders(nodes, step: stepNumber)
            if options.externalLog { try checkExternalLog() }
        }
        try heal()
        try requireLiveness()
        summary.steps = stepNumber
        summary.ticks = now
        summary.elections = checker.electionsWon
        return summary
    }

    // MARK: The faulty phase

    private func randomStep() throws(SafetyViolation) {
        // Weights per thousand: mostly the normal work of a cluster, with faults now and then.
        if options.externalLog, random.below(5) == 0 { return try externalStep() }
        let roll = random.below(1000)
        switch roll {
        case 0..<380: try deliverOne()
        case 380..<640: try processReady(of: randomUpNode())
        case 640..<760: try tickAll()
        case 760..<900: propose()
        case 900..<920: requestRead()
        case 920..<925: if options.leaderChurn { crash(leaderPosition) } else { requestRead() }
        case 925..<930: if options.leaderChurn { repartition() } else { requestRead() }
        case 930..<934: if options.crashes { crash(leaderPosition) }
        case 934..<938: if options.crashes { crash(randomUpNode()) }
        case 938..<960: if options.crashes { try restartOne() }
        case 960..<968: if options.partitions { repartition() }
        case 968..<980: if options.membershipChanges { changeMembership() }
        case 980..<985: if options.leadershipTransfers { transferLeadership() }
        case 985..<995: if options.snapshots { takeSnapshot() }
        case 995..<997: if options.pauses { pause() }
        case 997..<1000: if options.pauses { resumeAll() }
        default: break
        }
    }

    func randomUpNode() -> Int? {
        let up = nodes.indices.filter { nodes[$0].isUp && !paused.contains(nodes[$0].id) }
        return up.isEmpty ? nil : up[Int(random.below(UInt64(up.count)))]
    }

    /// The running leader of the highest term (a paused process takes no requests).
    var leaderPosition: Int? {
        nodes.indices.filter { nodes[$0].core?.isLeader == true && !paused.contains(nodes[$0].id) }.max { nodes[$0].core!.term < nodes[$1].core!.term }
    }

    private func start(_ position: Int) {
        let disk = nodes[position].disk
        var configuration = RaftConfiguration(id: nodes[position].id)
        configuration.electionTicks = options.electionTicks
        configuration.inflightMessagesMax = 4
        configuration.appendBytesMax = options.appendBytesMax
        if options.externalLog {
            configuration.commitRequiresExternalLog = true
            configuration.externalTailWaitTicks = options.electionTicks / 2
            if options.witness { configuration.witness = Self.witness }
        }
        let recovered = RecoveredState(hardState: disk.hardState, snapshot: disk.snapshot, entries: disk.entries,
                                       initialConfiguration: initialConfiguration)
        let nodeSeed = seed ^ (nodes[position].id.rawValue &* 0x9E37_79B9) ^ (nodes[position].restarts << 32)
        nodes[position].core = RaftCore(configuration: configuration, recovered: recovered, random: SplitMix64(seed: nodeSeed))
        nodes[position].stateMachine = disk.snapshotData
        nodes[position].appliedIndex = disk.snapshot?.index.rawValue ?? 0
        nodes[position].restarts += 1
        nodes[position].mirror = SimulatedMirror()
    }

    private func tickAll() throws(SafetyViolation) {
        now += 1
        for position in nodes.indices where nodes[position].isUp && !paused.contains(nodes[position].id) {
            let before = (nodes[position].core!.role, nodes[position].core!.term)
            nodes[position].core!.tick()
            if before != (nodes[position].core!.role, nodes[position].core!.term) { note("tick: \(status(position))") }
        }
    }

    /// Resumes every paused node. Clients that were waiting on one retry at once, before it has heard
    /// anything: exactly when a deposed leader that does not know it yet is most tempted to answer.
    private func resumeAll() {
        let resumed = paused
        paused.removeAll()
        if !resumed.isEmpty { note("resume \(resumed.sorted())") }
        for id in resumed.sorted() {
            guard let position = nodes.firstIndex(where: { $0.id == id }), nodes[position].isUp else { continue }
            requestRead(at: position)
        }
    }

    /// Stops a node's process, often the leader's: its clock stands still while the others' run on.
    private func pause() {
        let position = random.below(2) == 0 ? (leaderPosition ?? randomUpNode()) : randomUpNode()
        if let position {
            paused.insert(nodes[position].id)
            note("pause \(status(position))")
        }
    }

    // MARK: The network

    private func deliverOne() throws(SafetyViolation) {
        let ready = inFlight.indices.filter { inFlight[$0].deliverAt <= now && !paused.contains(inFlight[$0].message.to) }
        guard !ready.isEmpty else { return }
        let pick = ready[Int(random.below(UInt64(ready.count)))]
        let (message, _, fromRemoved) = inFlight[pick]
        inFlight.swapAt(pick, inFlight.count - 1)
        inFlight.removeLast()
        if random.chance(duplicatePercent, in: 100) { inFlight.append((message, now + Int(random.below(3)), fromRemoved)) }
        if blocked.contains([message.from, message.to]) || random.chance(dropPercent, in: 100) {
            reportSnapshotStream(message, delivered: false)
            return
        }
        try deliver(message, fromRemoved: fromRemoved)
    }

    func note(_ line: @autoclosure () -> String) {
        guard let trace else { return }
        trace("[\(stepNumber) t\(now)] \(line())")
    }

    private func status(_ position: Int) -> String {
        guard let core = nodes[position].core else { return "\(nodes[position].id) down" }
        return "\(core.id) \(core.role) t\(core.term) last=\(core.lastIndex)/\(core.term(at: core.lastIndex).map { "\($0)" } ?? "?") "
            + "commit=\(core.commitIndex) stable=\(core.persistedIndex) first=\(core.firstIndex)"
    }

    /// A snapshot travels as a stream over its own connection, whose end (delivered or failed) the transport
    /// reports to the sender; plain messages are lost silently.
    private func reportSnapshotStream(_ message: Message, delivered: Bool) {
        guard case .snapshot(let snapshot) = message.kind, let sender = nodes.firstIndex(where: { $0.id == message.from }),
              nodes[sender].isUp else { return }
        nodes[sender].core!.reportSnapshot(to: message.to, index: snapshot.index, delivered: delivered)
    }

    /// Steps `message` into its node. A message from a node that knew it was removed, to a member whose
    /// configuration leaves the sender out too, must not raise that member's term: a removed node that
    /// returns never disrupts the cluster. (A node can believe itself removed while it was added back in
    /// entries it has not received yet; to members that know, it is a member again.)
    private func deliver(_ message: Message, fromRemoved: Bool = false) throws(SafetyViolation) {
        if message.to == Self.witness { return try answerAsWitness(message) }
        guard let position = nodes.firstIndex(where: { $0.id == message.to }), nodes[position].isUp else {
            reportSnapshotStream(message, delivered: false)
            return
        }
        defer { reportSnapshotStream(message, delivered: true) }
        note("deliver \(message.from)->\(message.to) t\(message.term) \(message.kind)")
        defer { note("  now \(status(position))") }
        let termBefore = nodes[position].core!.term
        let outsider = fromRemoved && !nodes[position].core!.isRemoved && !nodes[position].core!.clusterConfiguration.contains(message.from)
        do {
            try nodes[position].core!.step(message)
        } catch {
            throw SafetyViolation(step: stepNumber, invariant: "valid messages", detail: "node \(message.to) rejected \(message): \(error)")
        }
        if outsider {
            summary.messagesFromRemovedNodes += 1
            if nodes[position].core!.term > termBefore {
                throw SafetyViolation(step: stepNumber, invariant: "a removed node never raises a member's term",
                                      detail: "node \(message.to) went from term \(termBefore) to \(nodes[position].core!.term) on \(message)")
            }
        }
        try checker.noteCommit(by: nodes[position].core!, step: stepNumber)
        summary.messagesDelivered += 1
    }

    func enqueueAnswer(_ message: Message) { enqueue([message], fromRemoved: false) }

    /// Most messages arrive within a tick; some linger for several, so stale messages from old terms and old
    /// leaders keep turning up.
    private func enqueue(_ messages: [Message], fromRemoved: Bool) {
        for message in messages {
            let delay = random.chance(1, in: 10) ? 2 + Int(random.below(8)) : Int(random.below(2))
            inFlight.append((message, now + delay, fromRemoved))
        }
    }

    private func repartition() {
        blocked.removeAll()
        summary.partitions += 1
        let ids = nodes.map(\.id)
        switch random.below(4) {
        case 0:
            return  // healed
        case 1:  // isolate one node, half the time the leader
            let victim = (random.below(2) == 0 ? leaderPosition.map { nodes[$0].id } : nil) ?? ids[Int(random.below(UInt64(ids.count)))]
            for other in ids where other != victim { blocked.insert([victim, other]); blocked.insert([other, victim]) }
        case 2:  // split into two sides
            let side = Dictionary(uniqueKeysWithValues: ids.map { ($0, random.below(2)) })
            for a in ids { for b in ids where side[a] != side[b] { blocked.insert([a, b]) } }
        default:  // one way: one node cannot hear from the others, but is heard
            let deaf = ids[Int(random.below(UInt64(ids.count)))]
            for other in ids where other != deaf { blocked.insert([other, deaf]) }
        }
    }

    // MARK: Node work

    /// A Ready in two halves: taking it sends the leader's messages and applies what is committed; persisting
    /// it, later and in order, answers and advances. Up to three can be taken before the oldest is persisted,
    /// as a server does while its disk is busy. A crash loses every one not yet persisted.
    func processReady(of position: Int?) throws(SafetyViolation) {
        guard let position, nodes[position].isUp else { return }
        let waiting = nodes[position].pendingReadys.count
        if waiting < 3, waiting == 0 || random.below(2) == 0, let ready = nodes[position].core!.ready() {
            note("take \(nodes[position].id): entries=\(ready.entries.map { "\($0.index)/\($0.term)" }) apply=\(ready.committedEntries.last.map { "\($0.index)" } ?? "-")")
            try takeReady(ready, at: position)
        } else if let ready = nodes[position].pendingReadys.first {
            note("persist \(nodes[position].id): hs=\(ready.hardState.map { "\($0)" } ?? "-") entries=\(ready.entries.map { "\($0.index)/\($0.term)" }) snapshot=\(ready.snapshot.map { "\($0.index)/\($0.term)" } ?? "-")")
            try finishReady(ready, at: position)
            note("  now \(status(position))")
        }
    }

    private func takeReady(_ ready: Ready, at position: Int) throws(SafetyViolation) {
        enqueue(ready.messages, fromRemoved: nodes[position].core!.isRemoved)
        if let request = ready.externalTailRequest { nodes[position].mirror.replayRequests.append(request) }
        for entry in ready.committedEntries {
            try checker.checkApplied(entry, node: nodes[position].id, nodeTerm: nodes[position].core!.term, after: nodes[position].appliedIndex, step: stepNumber)
            nodes[position].appliedIndex = entry.index.rawValue
            if entry.kind == .command { nodes[position].stateMachine.append(commandID(entry)) }
        }
        summary.committed = max(summary.committed, Int(checker.appliedCount))
        for read in ready.readStates {
            try checker.checkRead(read, step: stepNumber)
            if read.index != nil { summary.readsConfirmed += 1 }
        }
        nodes[position].pendingReadys.append(ready)
    }

    private func finishReady(_ ready: Ready, at position: Int) throws(SafetyViolation) {
        let previous = nodes[position].disk.hardState
        if let state = ready.hardState { try checker.checkHardState(from: previous, to: state, node: nodes[position].id, step: stepNumber) }
        if ready.snapshot != nil { summary.snapshotsInstalled += 1 }
        nodes[position].persist(ready) { [checker] index in checker.commandIDs(through: index.rawValue) }
        try checker.checkPersistedEntries(ready.entries, disk: nodes[position].disk, node: nodes[position].id, step: stepNumber)
        enqueue(ready.messagesAfterPersist, fromRemoved: nodes[position].core!.isRemoved)
        nodes[position].core!.advance(ready)
        nodes[position].pendingReadys.removeFirst()
        try checker.noteCommit(by: nodes[position].core!, step: stepNumber)
    }

    private func commandID(_ entry: Entry) -> UInt64 {
        entry.payload.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }

    private func propose() {
        let target = random.below(5) == 0 ? randomUpNode() : (leaderPosition ?? randomUpNode())
        guard let target else { return }
        let id = nextCommandID
        if case .success = nodes[target].core!.propose(withUnsafeBytes(of: id) { Array($0) }) { nextCommandID += 1 }
    }

    private func requestRead() {
        guard let position = randomUpNode() else { return }
        requestRead(at: position)
    }

    private func requestRead(at position: Int) {
        let id = nextReadID
        nextReadID += 1
        if nodes[position].core!.requestRead(id: id) == nil { checker.noteReadRequested(id, nodes: nodes) }
    }

    private func crash(_ position: Int?) {
        guard let position, nodes.filter(\.isUp).count > 1 else { return }
        kill(position)
    }

    /// Crashes the node at `position`: it loses everything it had not persisted.
    func kill(_ position: Int) {
        note("crash \(status(position))")
        paused.remove(nodes[position].id)
        nodes[position].core = nil
        nodes[position].pendingReadys.removeAll()
        summary.crashes += 1
    }

    private func restartOne() throws(SafetyViolation) {
        let down = nodes.indices.filter { !nodes[$0].isUp }
        guard !down.isEmpty else { return }
        let position = down[Int(random.below(UInt64(down.count)))]
        try restart(position)
    }

    func restart(_ position: Int) throws(SafetyViolation) {
        let committedBefore = nodes[position].disk.hardState.commit
        start(position)
        note("restart \(status(position))")
        if nodes[position].core!.commitIndex < committedBefore {
            throw SafetyViolation(step: stepNumber, invariant: "commit index never goes back",
                                  detail: "node \(nodes[position].id) restarted at \(nodes[position].core!.commitIndex) after persisting \(committedBefore)")
        }
    }

    private func changeMembership() {
        guard let leader = leaderPosition else { return }
        let configuration = nodes[leader].core!.clusterConfiguration
        let id = nodes[Int(random.below(UInt64(nodes.count)))].id
        let change: ConfigurationChange
        if configuration.learners.contains(id) {
            change = random.below(2) == 0 ? .addVoter(id) : .remove(id)
        } else if configuration.voters.contains(id) {
            change = .remove(id)
        } else {
            change = random.below(2) == 0 ? .addLearner(id) : .addVoter(id)
        }
        // Details (the server's addresses) ride along half the time, so snapshots and replays carry them too.
        let details = random.below(2) == 0 ? Array("address of \(id) from step \(stepNumber)".utf8) : nil
        if case .success = nodes[leader].core!.proposeConfigurationChange(change, details: details) {
            summary.membershipChanges += 1
            note("membership \(change) proposed by \(status(leader))")
        }
    }

    private func transferLeadership() {
        guard let leader = leaderPosition else { return }
        let voters = nodes[leader].core!.clusterConfiguration.voters.sorted()
        let target = voters[Int(random.below(UInt64(voters.count)))]
        if nodes[leader].core!.transferLeadership(to: target) == nil {
            summary.transfers += 1
            note("transfer to \(target) from \(status(leader))")
        }
    }

    private func takeSnapshot() {
        guard let position = randomUpNode(), nodes[position].pendingReadys.isEmpty else { return }
        nodes[position].takeSnapshot()
        note("snapshot \(status(position))")
    }

    // MARK: Healing and liveness

    private func heal() throws(SafetyViolation) {
        blocked.removeAll()
        paused.removeAll()
        dropPercent = 0
        duplicatePercent = 0
        external.isDown = false
        for position in nodes.indices where !nodes[position].isUp { try restart(position) }
    }

    /// Delivers everything and processes every Ready until nothing is left to do (bounded).
    private func settle() throws(SafetyViolation) {
        for _ in 0..<200 {
            var worked = false
            while !inFlight.isEmpty {
                let (message, _, fromRemoved) = inFlight.removeFirst()
                try deliver(message, fromRemoved: fromRemoved)
                worked = true
            }
            for position in nodes.indices where nodes[position].isUp {
                while !nodes[position].pendingReadys.isEmpty || nodes[position].core!.hasReady {
                    try processReady(of: position)
                    worked = true
                }
            }
            if options.externalLog {
                for position in nodes.indices where nodes[position].isUp {
                    keepExternalStoreShort(position)  // a leader may wait for its snapshot to be stored
                    try driveMirror(position)
                    while !nodes[position].mirror.replayRequests.isEmpty { try serveReplay(position) }
                }
                while !external.pending.isEmpty {
                    try landExternalWrite()
                    worked = true
                }
            }
            stepNumber += 1
            try checker.checkLeaders(nodes, step: stepNumber)
            if options.externalLog { try checkExternalLog() }
            if !worked { return }
        }
    }

    private func requireLiveness() throws(SafetyViolation) {
        // Like a client: propose to the leader, and propose again to each new leader until one commits it.
        var proposedTo: (node: NodeID, term: UInt64)?
        let id = nextCommandID
        nextCommandID += 1
        for _ in 0..<options.livenessTicksMax {
            try tickAll()
            try settle()
            guard let leader = leaderPosition else { continue }
            let core = nodes[leader].core!
            if proposedTo.map({ $0.node != core.id || $0.term != core.term }) ?? true {
                if case .success = nodes[leader].core!.propose(withUnsafeBytes(of: id) { Array($0) }) {
                    proposedTo = (core.id, core.term)
                }
                continue
            }
            let members = core.clusterConfiguration.members
            if nodes.filter({ members.contains($0.id) }).allSatisfy({ $0.stateMachine.contains(id) }) {
                try checkConvergence(members: members)
                return
            }
        }
        let roles = nodes.map { "\($0.id):\($0.core.map { "\($0.role) t\($0.term) c\($0.commitIndex) l\($0.lastIndex) removed=\($0.isRemoved) [\($0.clusterConfiguration)] first=\($0.firstIndex) \($0.followers.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" })" } ?? "down") applied=\($0.appliedIndex)" }
        throw SafetyViolation(step: stepNumber, invariant: "liveness",
                              detail: "no leader committed a proposal on every member within \(options.livenessTicksMax) ticks of healing; \(roles.joined(separator: "; "))")
    }

    private func checkConvergence(members: Set<NodeID>) throws(SafetyViolation) {
        let states = nodes.filter { members.contains($0.id) }
        let longest = states.max { $0.appliedIndex < $1.appliedIndex }!
        for node in states where node.stateMachine != Array(longest.stateMachine.prefix(node.stateMachine.count)) {
            throw SafetyViolation(step: stepNumber, invariant: "state machine safety",
                                  detail: "node \(node.id) applied a different command sequence from node \(longest.id)")
        }
        let expected = checker.commandIDs(through: longest.appliedIndex)
        if longest.stateMachine != expected {
            throw SafetyViolation(step: stepNumber, invariant: "no acknowledged proposal lost",
                                  detail: "node \(longest.id) holds \(longest.stateMachine.count) commands, the committed log \(expected.count)")
        }
    }
}
