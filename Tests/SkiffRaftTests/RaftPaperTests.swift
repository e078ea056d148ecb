import SkiffRaft
import SkiffSimulation
import Testing

/// Focused cases from the Raft paper (Ongaro & Ousterhout 2014, "In Search of an Understandable Consensus
/// Algorithm", sections cited per test) and from the pre-vote and check-quorum extensions (Ongaro 2014, §9.6,
/// §6.2), each replayed by hand on a `ScriptedCluster`.
@Suite struct RaftPaperTests {
    static func entries(_ terms: [UInt64]) -> [Entry] {
        terms.enumerated().map { Entry(index: LogIndex(UInt64($0 + 1)), term: Term($1), payload: Array("e\($0 + 1)".utf8)) }
    }

    /// §5.2: a timed-out follower becomes candidate in a new term, votes for itself, and wins with a majority;
    /// exactly one leader results and every node moves to its term.
    @Test func oneRoundElection() {
        let cluster = ScriptedCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.stabilize()
        #expect(cluster.leaders == [1])
        #expect([1, 2, 3].map { cluster.core($0).term } == [1, 1, 1])
        #expect(cluster.core(2).leader == NodeID(1))
        // The leader's no-op of its term is committed everywhere (§8, "a leader ... commits a blank no-op").
        #expect(cluster.log(3).map(\.kind) == [.noop])
        #expect(cluster.core(3).commitIndex == LogIndex(1))
    }

    /// A batch of proposals gets contiguous indices, travels together, and commits together.
    @Test func batchProposalsCommitTogether() {
        let cluster = ScriptedCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.stabilize()
        let indices = try! cluster.propose(1, batch: [[1], [2], [3]]).get()
        #expect(indices == LogIndex(2)...LogIndex(4))
        cluster.stabilize()
        #expect(cluster.core(3).commitIndex == LogIndex(4))
        #expect(cluster.log(3).suffix(3).map(\.payload) == [[1], [2], [3]])
        #expect(ScriptedCluster(voters: [1, 2]).propose(2, batch: [[1]]) == .failure(.notLeader(leader: nil)))
    }

    /// §5.4.1: a voter refuses a candidate whose log is less up to date, and votes once per term.
    @Test func voteRulesRefuseStaleLogsAndSecondVotes() {
        let cluster = ScriptedCluster(voters: [1, 2, 3], logs: [
            1: (Self.entries([1, 1]), HardState(term: Term(1))),
            2: (Self.entries([1, 1, 2]), HardState(term: Term(2))),
            3: (Self.entries([1, 1, 2]), HardState(term: Term(2))),
        ])
        cluster.campaign(1)  // pre-vote: nobody grants (their logs are more up to date)
        cluster.stabilize()
        #expect(cluster.leaders.isEmpty)
        #expect(cluster.core(1).term == 2)  // it only learned the cluster's term from the refusals...
        #expect(cluster.core(1).hardState.vote == .none)  // ...and never voted for itself in a real election
        cluster.campaign(2)
        cluster.stabilize()
        #expect(cluster.leaders == [2])
        // Node 3 voted for 2 in term 3; a request from 1 in the same term is refused.
        #expect(cluster.core(3).hardState.vote == NodeID(2))
    }

    /// §5.3, Figure 7: whatever a follower's log looks like (missing entries, extra uncommitted entries, or
    /// both), the leader's consistency checks bring it to the leader's log.
    @Test func figure7FollowersConvergeOnTheLeadersLog() {
        let leader: [UInt64] = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
        let followers: [UInt64: [UInt64]] = [
            2: [1, 1, 1, 4, 4, 5, 5, 6, 6],                 // (a) missing one
            3: [1, 1, 1, 4],                                // (b) missing many
            4: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],           // (c) one extra
            5: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],        // (d) extra of a later term
            6: [1, 1, 1, 4, 4, 4, 4],                       // (e) extra and missing
            7: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],           // (f) extra of other terms
        ]
        var logs: [UInt64: (entries: [Entry], hardState: HardState)] = [1: (Self.entries(leader), HardState(term: Term(7)))]
        for (id, terms) in followers { logs[id] = (Self.entries(terms), HardState(term: Term(7))) }
        let cluster = ScriptedCluster(voters: [1, 2, 3, 4, 5, 6, 7], logs: logs)
        // (d) has a later last term than the leader, so it would win the election: keep it out while 1 wins.
        cluster.isolate(5)
        cluster.campaign(1)
        cluster.stabilize()
        #expect(cluster.leaders == [1])
        cluster.heal()
        for _ in 0..<3 { cluster.tickAll(); cluster.stabilize() }
        let expected = leader + [8]  // plus the leader's no-op of term 8
        for id: UInt64 in [2, 3, 4, 5, 6, 7] {
            #expect(cluster.terms(id) == expected, "follower \(id)")
        }
        #expect(cluster.core(7).commitIndex == LogIndex(11))
    }

    /// §5.4.2, Figure 8: a leader must not commit an entry of an earlier term by counting replicas. S1 (term 4)
    /// holds S1's term-2 entry at index 2 on a majority, yet the entry commits only once S1's own term-4 entry
    /// is on a majority too; otherwise S5 (term 3 at index 2) could still win and overwrite it.
    @Test func figure8OldTermEntriesCommitOnlyUnderACurrentTermEntry() {
        let cluster = ScriptedCluster(voters: [1, 2, 3, 4, 5], logs: [
            1: (Self.entries([1, 2]), HardState(term: Term(3))),
            2: (Self.entries([1, 2]), HardState(term: Term(3))),
            3: (Self.entries([1]), HardState(term: Term(3))),
            4: (Self.entries([1]), HardState(term: Term(3))),
            5: (Self.entries([1, 3]), HardState(term: Term(3))),
        ]) { $0.appendBytesMax = 1 }  // one entry per append: the old entry and the no-op travel apart
        cluster.isolate(5)
        cluster.elect(1)  // S1 wins term 4 with S2, S3, S4 and appends its no-op at index 3
        #expect(cluster.leaders == [1] && cluster.core(1).term == 4)
        cluster.cutLink(1, 4)  // the majority for index 2 must then include S3
        // Withhold the no-op from S3 once S3 holds index 2 (the earlier append, which S3 rejects, is S1's probe).
        let noopToThree: (Message) -> Bool = { message in
            guard message.to == NodeID(3), case .append(_, _, let entries, _) = message.kind else { return false }
            return entries.contains { $0.index == LogIndex(3) } && cluster.core(3).lastIndex >= LogIndex(2)
        }
        for _ in 0..<8 {
            cluster.drop(where: noopToThree)
            cluster.deliver()
            cluster.processAll()
        }
        #expect(cluster.terms(3) == [1, 2])  // S1, S2 and S3 hold the term-2 entry: a majority
        #expect(cluster.terms(2) == [1, 2, 4])
        #expect(cluster.core(1).commitIndex == .zero, "an old-term entry was committed by counting replicas")
        // Once the term-4 no-op is on a majority, both commit.
        cluster.heal()
        for _ in 0..<3 { cluster.tickAll(); cluster.stabilize() }
        #expect(cluster.core(1).commitIndex >= LogIndex(3))
    }

    /// §5.1: a leader cut off from the others keeps its term until it hears of a higher one, and cannot commit;
    /// on return it steps down and its uncommitted entries are replaced.
    @Test func staleLeaderStepsDownAndItsUncommittedEntriesAreReplaced() {
        let cluster = ScriptedCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.stabilize()
        cluster.isolate(1)
        _ = cluster.propose(1, "lost")
        cluster.stabilize()
        for _ in 0..<30 { cluster.tickAll(); cluster.stabilize() }  // 2 and 3 time out and elect one of them
        let newLeader = try! #require(cluster.leaders.first { $0 != 1 })
        _ = cluster.propose(newLeader, "kept")
        cluster.stabilize()
        cluster.heal()
        for _ in 0..<3 { cluster.tickAll(); cluster.stabilize() }
        #expect(cluster.leaders == [newLeader])
        #expect(cluster.log(1).map { String(decoding: $0.payload, as: UTF8.self) }.contains("lost") == false)
        #expect(cluster.log(1) == cluster.log(newLeader))
    }

    /// §5.4's Leader Completeness binds leaders of *later* terms only. A candidate paused after one vote was
    /// granted can still win its old term once it resumes, lacking what a later term committed meanwhile. That
    /// is safe: every quorum has moved on, so it commits nothing, and the first reply it gets deposes it.
    @Test func aCandidateThatWinsAnOldTermLateCommitsNothing() {
        let cluster = ScriptedCluster(voters: [1, 2, 3]) { $0.preVote = false; $0.checkQuorum = false }
        cluster.elect(1)
        cluster.stabilize()
        cluster.campaign(3)  // term 2
        cluster.processAll()
        cluster.drop { $0.to == NodeID(1) }
        cluster.deliver { $0.to == NodeID(2) }  // 2 grants; its answer waits while 3 is paused
        cluster.processAll()
        let heldVote = cluster.mailbox.filter { $0.to == NodeID(3) }
        #expect(heldVote.map(\.kind) == [.voteResponse(granted: true, preVote: false)])
        cluster.drop { $0.to == NodeID(3) }

        // Meanwhile 1 learns of term 2 from 2, wins term 3 with 2's vote, and commits a write with it.
        for _ in 0..<30 where cluster.leaders != [1] || cluster.core(1).term < 3 {
            cluster.tick(1)
            cluster.processAll()
            cluster.drop { $0.to == NodeID(3) }
            cluster.deliver()
        }
        #expect(cluster.leaders == [1] && cluster.core(1).term == 3)
        let write = try! cluster.propose(1, "written in term 3").get()
        for _ in 0..<4 { cluster.processAll(); cluster.drop { $0.to == NodeID(3) }; cluster.deliver() }
        #expect(cluster.core(1).commitIndex == write)

        // 3 resumes and the old vote arrives: it leads term 2 without the entries term 3 committed.
        cluster.inject(heldVote)
        cluster.deliver()
        #expect(cluster.core(3).isLeader && cluster.core(3).term == 2)
        #expect(cluster.core(3).lastIndex < write)
        cluster.stabilize()
        #expect(cluster.leaders == [1])
        for _ in 0..<2 { cluster.tick(1); cluster.stabilize() }  // heartbeats bring 3 back in line
        #expect(cluster.log(3) == cluster.log(1))
        #expect(cluster.applied.values.allSatisfy { $0.term != Term(2) })  // nothing of term 2 ever committed
    }

    /// Pre-vote (§9.6): a node partitioned away campaigns without raising its term, so on its return it does
    /// not depose the healthy leader.
    @Test func partitionedNodeDoesNotDisruptOnReturn() {
        let cluster = ScriptedCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.stabilize()
        cluster.isolate(3)
        for _ in 0..<100 { cluster.tickAll(); cluster.stabilize() }
        #expect(cluster.core(3).term == 1)
        cluster.heal()
        for _ in 0..<5 { cluster.tickAll(); cluster.stabilize() }
        #expect(cluster.leaders == [1])
        #expect(cluster.core(1).term == 1)
    }

    /// Without pre-vote the same node would have raised its term, for contrast: the test above could fail.
    @Test func withoutPreVoteAPartitionedNodeRaisesItsTerm() {
        let cluster = ScriptedCluster(voters: [1, 2, 3]) { $0.preVote = false }
        cluster.campaign(1)
        cluster.stabilize()
        cluster.isolate(3)
        for _ in 0..<100 { cluster.tickAll(); cluster.stabilize() }
        #expect(cluster.core(3).term > 1)
    }

    /// ReadIndex against a paused process (§6.4): a leader stopped for longer than an election timeout wakes
    /// up still believing it leads. A read it is asked for before it hears anything must not be served from
    /// its stale commit index: confirming leadership with a heartbeat round reveals the new term instead.
    @Test func aResumedStaleLeaderDoesNotServeAStaleRead() {
        let cluster = ScriptedCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.stabilize()
        cluster.isolate(1)  // paused: it neither ticks nor hears anything
        for _ in 0..<40 { cluster.tick(2); cluster.tick(3); cluster.stabilize() }
        #expect(cluster.leaders.contains(2) || cluster.leaders.contains(3))
        let newLeader = cluster.leaders.first { $0 != 1 }!
        _ = cluster.propose(newLeader, "later write")
        cluster.stabilize()
        cluster.heal()
        #expect(cluster.core(1).isLeader)  // it does not know yet
        #expect(cluster.read(1, requestID: 9) == nil)
        cluster.stabilize()
        #expect(cluster.readStates[NodeID(1)] == [ReadState(requestID: 9, index: nil)])
        #expect(!cluster.core(1).isLeader)
    }

    /// Check-quorum (§6.2): a leader that has not heard from a majority for an election timeout steps down.
    @Test func leaderWithoutQuorumStepsDown() {
        let cluster = ScriptedCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.stabilize()
        cluster.isolate(1)
        for _ in 0..<(2 * 10 + 1) { cluster.tick(1); cluster.process(1) }
        #expect(!cluster.core(1).isLeader)
    }

    /// Learners (§4.2.1's non-voting members) receive the log but never campaign, and their acknowledgements
    /// never count towards commitment.
    @Test func learnersNeverCampaignOrCount() {
        let cluster = ScriptedCluster(voters: [1, 2], learners: [3])
        cluster.campaign(1)
        cluster.stabilize()
        _ = cluster.propose(1, "a")
        cluster.stabilize()
        #expect(cluster.log(3).count == 2)  // the learner has the no-op and "a"
        cluster.isolate(2)  // the only other voter
        let index = try! cluster.propose(1, "b").get()
        for _ in 0..<3 { cluster.stabilize() }
        #expect(cluster.log(3).count == 3)  // replicated to the learner...
        #expect(cluster.core(1).commitIndex < index)  // ...but not committed by it
        cluster.isolate(1)
        for _ in 0..<100 { cluster.tick(3); cluster.process(3) }
        #expect(cluster.core(3).role == .follower)  // a learner never campaigns
        #expect(cluster.core(3).term == cluster.core(1).term)
    }

    /// Leadership transfer (§3.10): the target catches up, is told to campaign at once, and wins without
    /// waiting for an election timeout; proposals are refused meanwhile.
    @Test func leadershipTransferHandsOverPromptly() {
        let cluster = ScriptedCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.stabilize()
        cluster.drop { _ in true }
        _ = cluster.propose(1, "x")
        #expect(cluster.transfer(from: 1, to: 3) == nil)
        #expect(cluster.propose(1, "y") == .failure(.leadershipTransferInProgress(target: NodeID(3))))
        cluster.stabilize()  // no ticks: no timeout can fire
        #expect(cluster.leaders == [3])
        #expect(cluster.log(3).contains { $0.payload == Array("x".utf8) })
    }

    /// ReadIndex (§6.4): a read on the leader is confirmed by a heartbeat round at its commit index; on a
    /// follower it is forwarded and confirmed the same way; a node with no leader refuses.
    @Test func readIndexOnLeaderAndFollower() {
        let cluster = ScriptedCluster(voters: [1, 2, 3])
        #expect(cluster.read(2, requestID: 7) == .notLeader(leader: nil))
        cluster.campaign(1)
        cluster.stabilize()
        _ = cluster.propose(1, "w")
        cluster.stabilize()
        #expect(cluster.read(1, requestID: 1) == nil)
        cluster.processAll()
        #expect(cluster.readStates[NodeID(1)] == nil || cluster.readStates[NodeID(1)]!.isEmpty)  // not before the round
        cluster.stabilize()
        #expect(cluster.readStates[NodeID(1)] == [ReadState(requestID: 1, index: LogIndex(2))])
        #expect(cluster.read(2, requestID: 2) == nil)
        cluster.stabilize()
        #expect(cluster.readStates[NodeID(2)] == [ReadState(requestID: 2, index: LogIndex(2))])
        // An isolated leader cannot confirm: its read waits, then fails when it steps down.
        cluster.isolate(1)
        #expect(cluster.read(1, requestID: 3) == nil)
        for _ in 0..<25 { cluster.tick(1); cluster.process(1) }
        #expect(cluster.readStates[NodeID(1)]!.last == ReadState(requestID: 3, index: nil))
    }

    /// Removing a member (§4.1): the change takes effect on append, the removed node learns of it, never
    /// campaigns again, and does not disrupt the rest.
    @Test func aRemovedNodeLearnsItAndStaysQuiet() {
        let cluster = ScriptedCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.stabilize()
        _ = cluster.change(1, .remove(NodeID(3)))
        cluster.stabilize()
        #expect(!cluster.core(3).isRemoved)  // the leader stopped replicating to it before it got the change
        for _ in 0..<25 { cluster.tickAll(); cluster.stabilize() }  // its election timer fires; the leader answers
        #expect(cluster.core(3).isRemoved)
        #expect(cluster.core(1).clusterConfiguration.voters == [NodeID(1), NodeID(2)])
        let term = cluster.core(1).term
        for _ in 0..<100 { cluster.tickAll(); cluster.stabilize() }
        #expect(cluster.core(1).term == term)
        #expect(cluster.leaders == [1])
        #expect(cluster.core(3).role == .follower)
    }

    /// Removing the leader itself (§4.2.2): it commits the change without counting itself, steps down, and
    /// the others elect a leader.
    @Test func removingTheLeaderItself() {
        let cluster = ScriptedCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.stabilize()
        _ = cluster.change(1, .remove(NodeID(1)))
        cluster.stabilize()
        #expect(!cluster.core(1).isLeader)
        #expect(cluster.core(1).isRemoved)
        for _ in 0..<40 { cluster.tickAll(); cluster.stabilize() }
        #expect(cluster.leaders.count == 1 && cluster.leaders[0] != 1)
    }

    /// One membership change at a time; the leader's own first entry must commit first.
    @Test func oneConfigurationChangeAtATime() {
        let cluster = ScriptedCluster(voters: [1, 2, 3], others: [4, 5])
        cluster.elect(1)  // its no-op is not yet replicated
        #expect(cluster.change(1, .addLearner(NodeID(4))) == .failure(.configurationChangeInProgress(index: LogIndex(1))))
        cluster.stabilize()
        let first = try! cluster.change(1, .addLearner(NodeID(4))).get()
        #expect(cluster.change(1, .addLearner(NodeID(5))) == .failure(.configurationChangeInProgress(index: first)))
        cluster.stabilize()
        #expect((try? cluster.change(1, .addVoter(NodeID(4))).get()) != nil)  // the learner's change committed
        cluster.stabilize()
        #expect(cluster.core(4).clusterConfiguration.voters.contains(NodeID(4)))
    }
}
