import SkiffRaft
import Testing

/// Witness mode in the core: the external log is voter 99. The core sends it votes and heartbeats (which
/// the owner answers) but no appends; its acknowledgement is `externalLogAppended`; a node adopts its
/// whole tail before campaigning, whatever its term.
@Suite struct WitnessModeTests {
    static let witness = NodeID(99)

    /// Node 1 of voters {1, 2, 99}, with `terms` as its persisted log and `term` as its hard state's term.
    static func node(terms: [UInt64] = [], term: UInt64 = 0, commit: UInt64 = 0) -> RaftCore {
        var configuration = RaftConfiguration(id: NodeID(1))
        configuration.commitRequiresExternalLog = true
        configuration.externalTailWaitTicks = 5
        configuration.witness = witness
        let recovered = RecoveredState(hardState: HardState(term: Term(term), vote: .none, commit: LogIndex(commit)),
                                       entries: RaftPaperTests.entries(terms),
                                       initialConfiguration: ClusterConfiguration(voters: [NodeID(1), NodeID(2), witness]))
        return RaftCore(configuration: configuration, recovered: recovered, random: SplitMix64(seed: 7))
    }

    /// Takes every Ready, treats it as persisted, and returns the messages it carried.
    static func drain(_ core: inout RaftCore) -> [Message] {
        var sent: [Message] = []
        while let ready = core.ready() {
            sent += ready.messages + ready.messagesAfterPersist
            core.advance(ready)
        }
        return sent
    }

    static func grant(_ request: Message) -> Message {
        guard case .requestVote(_, _, let preVote, _) = request.kind else { preconditionFailure("not a vote request") }
        return Message(from: request.to, to: request.from, term: request.term, kind: .voteResponse(granted: true, preVote: preVote))
    }

    /// Elects node 1 with the witness's votes alone (node 2 never answers) and returns it.
    static func electedWithTheWitness(terms: [UInt64] = []) throws -> RaftCore {
        var core = node(terms: terms)
        core.campaign()
        let preVote = drain(&core).first { $0.to == witness }!
        try core.step(grant(preVote))
        #expect(core.isAwaitingExternalTail)
        core.campaignWithoutExternalTail()
        let vote = drain(&core).first { $0.to == witness }!
        try core.step(grant(vote))
        #expect(core.isLeader)
        return core
    }

    @Test func aLeaderCommitsWithTheWitnessAloneAndSendsItNoAppends() throws {
        var core = try Self.electedWithTheWitness()
        let index = try core.propose(Array("x".utf8)).get()
        let sent = Self.drain(&core)
        #expect(!sent.contains { if case .append = $0.kind { $0.to == Self.witness } else { false } })
        #expect(sent.contains { if case .append = $0.kind { $0.to == NodeID(2) } else { false } })
        #expect(core.commitIndex < index)  // durable here, but the witness does not hold it yet
        core.externalLogAppended(through: index, term: Term(core.term))
        #expect(core.commitIndex == index)
        #expect(core.matchIndex(of: Self.witness) == index)
    }

    /// The witness answers heartbeats like a follower: a read waits for its answer when node 2 is gone, and
    /// without answers the leader steps down after an election timeout (check-quorum).
    @Test func theWitnessConfirmsReadsAndKeepsTheLeaderInOffice() throws {
        var core = try Self.electedWithTheWitness()
        core.externalLogAppended(through: core.lastIndex, term: Term(core.term))
        #expect(core.requestRead(id: 1) == nil)
        let heartbeat = Self.drain(&core).first { $0.to == Self.witness }!
        guard case .heartbeat(_, let context) = heartbeat.kind else { Issue.record("expected a heartbeat, got \(heartbeat)"); return }
        try core.step(Message(from: Self.witness, to: NodeID(1), term: heartbeat.term, kind: .heartbeatResponse(context: context)))
        let taken = core.ready()
        let ready = try #require(taken)
        #expect(ready.readStates == [ReadState(requestID: 1, index: core.commitIndex)])
        core.advance(ready)
        #expect(core.isLeader)  // the witness's answers keep it in office

        for _ in 0..<25 {  // the witness stops answering
            core.tick()
            _ = Self.drain(&core)
        }
        #expect(!core.isLeader)
    }

    /// A node whose term is past the writer's, and whose last entry conflicts with the witness's log,
    /// adopts the witness's tail all the same, replacing the uncommitted conflicting entry.
    @Test func adoptsTheWitnessTailWhateverItsTermReplacingAnUncommittedConflict() throws {
        var core = Self.node(terms: [1, 1, 2], term: 5, commit: 2)
        core.campaign()
        try core.step(Self.grant(Self.drain(&core).first { $0.to == Self.witness }!))
        #expect(core.isAwaitingExternalTail)
        let tail = ExternalTail(leaderTerm: Term(3), previousIndex: LogIndex(2), previousTerm: Term(1),
                                entries: [Entry(index: LogIndex(3), term: Term(3), payload: [3]), Entry(index: LogIndex(4), term: Term(3), payload: [4])])
        #expect(core.deliverExternalTail(tail) == LogIndex(4))
        #expect(core.term(at: LogIndex(3)) == Term(3))
        #expect(core.role == .candidate && core.term == 6)
        let vote = Self.drain(&core).first { $0.to == Self.witness }!
        #expect(vote.kind == .requestVote(lastIndex: LogIndex(4), lastTerm: Term(3), preVote: false, leadershipTransfer: false))
    }

    @Test func leadershipCannotGoToTheWitness() throws {
        var core = try Self.electedWithTheWitness()
        #expect(core.transferLeadership(to: Self.witness) == .notAVoter(Self.witness))
    }

    @Test func aWitnessNeedsTheExternalLogSettings() {
        var configuration = RaftConfiguration(id: NodeID(1))
        configuration.witness = Self.witness
        #expect(throws: RaftRefusal.self) { try configuration.validate() }
        configuration.commitRequiresExternalLog = true
        configuration.externalTailWaitTicks = 1
        #expect(throws: Never.self) { try configuration.validate() }
        configuration.witness = NodeID(1)
        #expect(throws: RaftRefusal.self) { try configuration.validate() }
    }
}
