import SkiffRaft
import SkiffSimulation
import Testing

/// The pre-campaign hook for an external log: after a won pre-vote the node asks for the tail, adopts only
/// what extends its log consistently, never truncates, and campaigns after the tail or the wait.
@Suite struct ExternalTailTests {
    static func cluster() -> ScriptedCluster {
        ScriptedCluster(voters: [1, 2, 3], logs: [
            1: (RaftPaperTests.entries([1, 1]), HardState(term: Term(1))),
            2: (RaftPaperTests.entries([1, 1]), HardState(term: Term(1))),
            3: (RaftPaperTests.entries([1, 1]), HardState(term: Term(1))),
        ]) { $0.externalTailWaitTicks = 5 }
    }

    static func tail(term: UInt64, after previous: (UInt64, UInt64), _ terms: [UInt64]) -> ExternalTail {
        ExternalTail(leaderTerm: Term(term), previousIndex: LogIndex(previous.0), previousTerm: Term(previous.1),
                     entries: terms.enumerated().map { Entry(index: LogIndex(previous.0 + 1 + UInt64($0)), term: Term($1), payload: Array("x\($0)".utf8)) })
    }

    /// Runs node 2's pre-vote and returns once it is waiting for the tail.
    static func preVote(_ cluster: ScriptedCluster) {
        cluster.campaign(2)
        cluster.stabilize()
    }

    @Test func asksAfterAWonPreVoteThenAdoptsAConsistentTail() {
        let cluster = Self.cluster()
        Self.preVote(cluster)
        #expect(cluster.core(2).isAwaitingExternalTail)
        #expect(cluster.externalTailRequests[NodeID(2)] == ExternalTailRequest(afterIndex: LogIndex(2), term: Term(1)))
        #expect(cluster.core(2).term == 1)  // not raised yet
        let last = cluster.deliverExternalTail(2, Self.tail(term: 1, after: (2, 1), [1, 1]))
        #expect(last == LogIndex(4))
        cluster.stabilize()
        #expect(cluster.leaders == [2])
        #expect(cluster.core(1).commitIndex >= LogIndex(5))  // the adopted entries and the new leader's no-op
    }

    @Test func neverTruncatesOnConflict() {
        let cluster = Self.cluster()
        Self.preVote(cluster)
        // The tail disagrees at index 2 (term 2 vs our term 1): nothing may be replaced or added after it.
        let last = cluster.deliverExternalTail(2, Self.tail(term: 2, after: (1, 1), [2, 2]))
        #expect(last == LogIndex(2))
        #expect(cluster.terms(2).prefix(2) == [1, 1])
    }

    @Test func refusesATailThatDoesNotJoin() {
        let cluster = Self.cluster()
        Self.preVote(cluster)
        #expect(cluster.deliverExternalTail(2, Self.tail(term: 1, after: (5, 1), [1])) == LogIndex(2))
        #expect(cluster.core(2).lastIndex == LogIndex(3) || cluster.core(2).lastIndex == LogIndex(2))
        #expect(!cluster.log(2).contains { $0.index == LogIndex(6) })
    }

    @Test func refusesATailFromALowerTermThanItsOwn() {
        let cluster = ScriptedCluster(voters: [1, 2, 3], logs: [
            1: (RaftPaperTests.entries([1, 1]), HardState(term: Term(3))),
            2: (RaftPaperTests.entries([1, 1]), HardState(term: Term(3))),
            3: (RaftPaperTests.entries([1, 1]), HardState(term: Term(3))),
        ]) { $0.externalTailWaitTicks = 5 }
        Self.preVote(cluster)
        #expect(cluster.deliverExternalTail(2, Self.tail(term: 2, after: (2, 1), [2])) == LogIndex(2))
    }

    @Test func campaignsAfterTheWaitWithoutATail() {
        let cluster = Self.cluster()
        Self.preVote(cluster)
        for _ in 0..<4 { cluster.tick(2) }
        #expect(cluster.core(2).isAwaitingExternalTail)
        cluster.tick(2)
        #expect(!cluster.core(2).isAwaitingExternalTail)
        cluster.stabilize()
        #expect(cluster.leaders == [2])
    }

    /// An owner with no tail to give (the store is down, or nothing joins) ends the wait at once.
    @Test func campaignsAtOnceWhenTheOwnerHasNoTail() {
        let cluster = Self.cluster()
        cluster.campaignWithoutExternalTail(2)  // not waiting yet: nothing happens
        #expect(cluster.core(2).role == .follower && cluster.core(2).term == 1)
        Self.preVote(cluster)
        #expect(cluster.core(2).isAwaitingExternalTail)
        cluster.campaignWithoutExternalTail(2)
        #expect(!cluster.core(2).isAwaitingExternalTail && cluster.core(2).term == 2)
        cluster.stabilize()
        #expect(cluster.leaders == [2])
    }

    /// A tail that arrives when the node is not waiting (its pre-vote is still out) starts no campaign.
    @Test func aTailOutsideTheWaitIsIgnored() {
        let cluster = Self.cluster()
        cluster.campaign(2)
        cluster.process(2)
        #expect(cluster.core(2).role == .preCandidate && !cluster.core(2).isAwaitingExternalTail)
        #expect(cluster.deliverExternalTail(2, Self.tail(term: 1, after: (2, 1), [1])) == LogIndex(2))
        #expect(cluster.core(2).role == .preCandidate && cluster.core(2).term == 1)
    }

    /// A pre-vote grant that arrives during the wait does not restart it.
    @Test func aLatePreVoteGrantDoesNotRestartTheWait() {
        let cluster = Self.cluster()
        cluster.campaign(2)
        cluster.processAll()
        cluster.deliver()
        cluster.processAll()
        cluster.deliver { $0.from == NodeID(1) }
        #expect(cluster.core(2).isAwaitingExternalTail)
        cluster.tick(2, times: 3)
        cluster.deliver { $0.from == NodeID(3) }
        cluster.tick(2, times: 2)
        #expect(!cluster.core(2).isAwaitingExternalTail && cluster.core(2).role == .candidate)
    }
}

/// The leader's side of the external log: commitment waits for the mirror, and a fence deposes.
@Suite struct ExternalMirrorTests {
    static func cluster() -> ScriptedCluster {
        let cluster = ScriptedCluster(voters: [1, 2, 3]) { $0.commitRequiresExternalLog = true }
        cluster.elect(1)
        return cluster
    }

    @Test func aLeaderCommitsOnlyWhatTheExternalLogHolds() throws {
        let cluster = Self.cluster()
        let noop = cluster.core(1).lastIndex
        #expect(cluster.core(1).commitIndex < noop)  // replicated to everyone, but not mirrored
        cluster.externalLogAppended(1, through: noop, term: Term(cluster.core(1).term))
        cluster.stabilize()
        #expect(cluster.core(1).commitIndex == noop)
        let index = try cluster.propose(1, "x").get()
        cluster.stabilize()
        #expect(cluster.core(1).commitIndex == noop && cluster.core(2).commitIndex == noop)
        cluster.externalLogAppended(1, through: index, term: Term(cluster.core(1).term - 1))  // another term's: ignored
        cluster.stabilize()
        #expect(cluster.core(1).commitIndex == noop)
        cluster.externalLogAppended(1, through: index, term: Term(cluster.core(1).term))
        cluster.stabilize()
        #expect(cluster.core(1).commitIndex == index && cluster.core(3).commitIndex == index)
    }

    /// A lone voter wins the moment it campaigns, before its new term is on disk; it must not write to the
    /// external log as that term's leader until it is (seed 0x7203dde: after a crash it led the same term
    /// again with another log, and the external log held the first one's).
    @Test func aLoneVoterLeadsInADurableTermOnlyOnceItsFirstEntryIsPersisted() {
        let cluster = ScriptedCluster(voters: [1]) { $0.commitRequiresExternalLog = true }
        cluster.campaign(1)
        #expect(cluster.core(1).isLeader && !cluster.core(1).leadsInADurableTerm)
        cluster.process(1)
        #expect(cluster.core(1).leadsInADurableTerm)
        #expect(!Self.cluster().core(2).leadsInADurableTerm)  // a follower never does
    }

    @Test func aFencedLeaderStepsDownAndAnotherIsElected() {
        let cluster = Self.cluster()
        let term = cluster.core(1).term
        cluster.externalLogFenced(1, term: Term(term - 1))  // a stale report changes nothing
        #expect(cluster.core(1).isLeader)
        cluster.externalLogFenced(1, term: Term(cluster.core(1).term))
        #expect(!cluster.core(1).isLeader && cluster.core(1).term == term)
        #expect(cluster.propose(1, "y") == .failure(.notLeader(leader: nil)))
        cluster.elect(2)
        #expect(cluster.leaders == [2])
    }
}
