import SkiffRaft
import SkiffSimulation
import Testing

/// Corner cases found by review and by the simulation, each pinned by hand on a `ScriptedCluster`.
@Suite struct RaftEdgeCaseTests {
    /// A follower that already holds a snapshot's entries commits them instead of installing the snapshot.
    /// It must acknowledge only the snapshot's index: the entries after it may be another leader's, and a
    /// leader that believed they matched could commit an entry the follower does not have.
    @Test func aSnapshotOverMatchingEntriesIsAcknowledgedAtItsIndexOnly() {
        let cluster = ScriptedCluster(voters: [1, 2, 3], logs: [
            1: (RaftPaperTests.entries([1, 1, 1]), HardState(term: Term(2))),
            2: (RaftPaperTests.entries([1, 1, 1, 2, 2]), HardState(term: Term(2))),
            3: (RaftPaperTests.entries([1, 1, 1]), HardState(term: Term(2))),
        ])
        cluster.cutLink(1, 2)
        cluster.elect(1)  // with 3's vote, in term 3
        let snapshot = RaftSnapshot(index: LogIndex(3), term: Term(1), configuration: cluster.core(1).clusterConfiguration)
        cluster.drop { $0.to == NodeID(2) }
        cluster.inject([Message(from: NodeID(1), to: NodeID(2), term: Term(3), kind: .snapshot(snapshot))])
        cluster.heal()
        cluster.deliver { $0.to == NodeID(2) }
        cluster.process(2)
        let answers = cluster.mailbox.filter { $0.from == NodeID(2) }.map(\.kind)
        #expect(answers == [.appendResponse(index: LogIndex(3), rejected: false, hintIndex: .zero, hintTerm: .zero)])
        for _ in 0..<3 { cluster.tick(1); cluster.stabilize() }
        #expect(cluster.log(2) == cluster.log(1))
    }

    /// A removed node that raised its term while away still learns of its removal from a leader of a lower
    /// term, and the leader keeps its term.
    @Test func aRemovedNodeWithAHigherTermStillLearnsIt() {
        let cluster = ScriptedCluster(voters: [1, 2, 3]) { $0.preVote = false }
        cluster.elect(1)
        cluster.stabilize()
        cluster.isolate(3)
        _ = cluster.change(1, .remove(NodeID(3)))
        cluster.stabilize()
        for _ in 0..<25 { cluster.tick(3); cluster.stabilize() }  // alone, it campaigns and raises its term
        #expect(cluster.core(3).term > 1 && !cluster.core(3).isRemoved)
        cluster.heal()
        for _ in 0..<25 where !cluster.core(3).isRemoved { cluster.tickAll(); cluster.stabilize() }
        #expect(cluster.core(3).isRemoved)
        #expect(cluster.leaders == [1] && cluster.core(1).term == 1)
    }

    /// A `removed` notice older than the configuration that added the node back is ignored.
    @Test func aStaleRemovalNoticeDoesNotSilenceAReaddedNode() {
        let cluster = ScriptedCluster(voters: [1, 2, 3])
        cluster.elect(1)
        cluster.stabilize()
        let removal = try! cluster.change(1, .remove(NodeID(3))).get()
        cluster.stabilize()
        _ = try! cluster.change(1, .addVoter(NodeID(3))).get()
        for _ in 0..<3 { cluster.tick(1); cluster.stabilize() }
        #expect(cluster.core(3).clusterConfiguration.voters.contains(NodeID(3)))
        let notice = { (index: LogIndex) in Message(from: NodeID(1), to: NodeID(3), term: Term(1), kind: .removed(configurationIndex: index)) }
        cluster.inject([notice(removal)])
        cluster.deliver()
        #expect(!cluster.core(3).isRemoved)
        // A notice at or after its latest configuration is believed.
        cluster.inject([notice(cluster.core(1).lastIndex)])
        cluster.deliver()
        #expect(cluster.core(3).isRemoved)
    }

    /// A stale leader that never saw a node join cannot remove it: the node's configuration, even one that
    /// only its snapshot holds, is later than the one the notice comes from.
    @Test func aStaleLeaderCannotRemoveANodeThatOnlyItsSnapshotSaysJoined() {
        let cluster = ScriptedCluster(voters: [1, 2, 3], others: [4])
        cluster.elect(1)
        cluster.stabilize()
        _ = try! cluster.change(1, .addLearner(NodeID(4))).get()
        for _ in 0..<3 { cluster.tick(1); cluster.stabilize() }
        _ = cluster.propose(1, "after the join")
        for _ in 0..<3 { cluster.tick(1); cluster.stabilize() }
        cluster.snapshot(4)
        #expect(cluster.core(4).clusterConfiguration.learners.contains(NodeID(4)))
        let stale = Message(from: NodeID(1), to: NodeID(4), term: Term(1), kind: .removed(configurationIndex: .zero))
        cluster.inject([stale])
        cluster.deliver()
        #expect(!cluster.core(4).isRemoved)
    }

    /// A deposed leader's own uncommitted configuration, however late in its log, does not let it ignore the
    /// notice that the cluster removed it.
    @Test func anUncommittedConfigurationDoesNotOutweighARemoval() {
        let cluster = ScriptedCluster(voters: [1, 2, 3], others: [4])
        cluster.elect(1)
        cluster.stabilize()
        cluster.isolate(1)
        for number in 0..<5 { _ = cluster.propose(1, "lost \(number)") }
        _ = try! cluster.change(1, .addLearner(NodeID(4))).get()
        cluster.stabilize()
        let late = cluster.core(1).lastIndex
        #expect(late.rawValue > 3 && cluster.core(1).commitIndex < late)
        cluster.drop { _ in true }
        cluster.heal()
        let notice = Message(from: NodeID(2), to: NodeID(1), term: Term(2), kind: .removed(configurationIndex: LogIndex(3)))
        cluster.inject([notice])
        cluster.deliver()
        #expect(cluster.core(1).isRemoved)
    }

    /// A learner never campaigns, so a removed one would never ask anyone; the leader tells it when it connects.
    @Test func aLeaderTellsAConnectingNonMemberThatItWasRemoved() {
        let cluster = ScriptedCluster(voters: [1, 2, 3], learners: [4])
        cluster.elect(1)
        cluster.stabilize()
        cluster.isolate(4)
        _ = try! cluster.change(1, .remove(NodeID(4))).get()
        for _ in 0..<30 { cluster.tickAll(); cluster.stabilize() }
        cluster.heal()
        for _ in 0..<30 { cluster.tickAll(); cluster.stabilize() }
        #expect(!cluster.core(4).isRemoved, "nothing told it yet")
        cluster.reportConnected(1, 4)
        cluster.stabilize()
        #expect(cluster.core(4).isRemoved)
        cluster.reportConnected(1, 2)  // a member: nothing to tell
        cluster.stabilize()
        #expect(!cluster.core(2).isRemoved)
    }

    /// A real campaign (without pre-vote) forgets the leader of the old term.
    @Test func aCandidateKnowsNoLeader() {
        let cluster = ScriptedCluster(voters: [1, 2, 3]) { $0.preVote = false }
        cluster.elect(1)
        cluster.stabilize()
        #expect(cluster.core(2).leader == NodeID(1))
        cluster.campaign(2)
        #expect(cluster.core(2).role == .candidate && cluster.core(2).leader == .none)
    }

    /// A probe answered at the match the leader already knew (the follower had nothing to append) ends
    /// probing: the follower goes back to streamed replication at once, not after the next heartbeat.
    @Test func aProbeAnsweredAtTheKnownMatchResumesReplication() {
        let cluster = ScriptedCluster(voters: [1, 2, 3, 4, 5])
        cluster.elect(1)
        cluster.stabilize()
        let index = try! cluster.propose(1, "a").get()
        cluster.processAll()
        cluster.deliver { $0.to == NodeID(2) || $0.to == NodeID(3) }
        cluster.processAll()
        cluster.deliver { $0.from == NodeID(2) }  // 2's acknowledgement: 1 and 2 are not yet a majority of 5
        #expect(cluster.core(1).matchIndex(of: NodeID(2)) == index && cluster.core(1).commitIndex < index)
        cluster.reportUnreachable(1, 2)
        #expect(cluster.core(1).followers[NodeID(2)]?.state == "probe")
        cluster.deliver { $0.from == NodeID(3) }  // the commit moves and the leader probes 2 with nothing new
        #expect(cluster.core(1).commitIndex == index)
        cluster.processAll()
        #expect(cluster.core(1).followers[NodeID(2)]?.state == "probe(sent)")
        cluster.deliver { $0.to == NodeID(2) }
        cluster.process(2)
        cluster.deliver { $0.from == NodeID(2) }
        #expect(cluster.core(1).followers[NodeID(2)]?.state == "replicate")
    }

    /// The transport's report on a snapshot stream counts only for the snapshot still pending.
    @Test func aReportOnAnOlderSnapshotStreamIsIgnored() {
        let cluster = ScriptedCluster(voters: [1, 2, 3])
        cluster.elect(1)
        cluster.stabilize()
        cluster.isolate(3)
        for text in ["a", "b", "c"] { _ = cluster.propose(1, text) }
        cluster.stabilize()
        cluster.snapshot(1)
        let point = cluster.core(1).snapshotPoint.index
        #expect(point == LogIndex(4))
        cluster.heal()
        cluster.tick(1)  // a heartbeat: 3's answers lead the leader back to entries it has compacted
        for _ in 0..<5 where cluster.core(1).followers[NodeID(3)]?.state.hasPrefix("snapshot") != true {
            cluster.processAll()
            cluster.deliver { $0.to == NodeID(3) || $0.from == NodeID(3) }
        }
        #expect(cluster.core(1).followers[NodeID(3)]?.state == "snapshot(4)")
        cluster.reportSnapshot(1, to: 3, index: LogIndex(2), delivered: false)
        #expect(cluster.core(1).followers[NodeID(3)]?.state == "snapshot(4)")
        cluster.reportSnapshot(1, to: 3, index: point, delivered: false)
        #expect(cluster.core(1).followers[NodeID(3)]?.state == "probe")
    }

    /// A leader whose process stalled steps down in its own term: it leads no more and knows no leader, but
    /// its term does not move, so nobody else's has to; the others elect as usual.
    @Test func aLeaderThatStepsDownKeepsItsTermAndLeadsNoMore() {
        let cluster = ScriptedCluster(voters: [1, 2, 3])
        cluster.campaign(1)
        cluster.stabilize()
        let term = cluster.core(1).term
        cluster.stepDown(1)
        #expect(cluster.core(1).role == .follower)
        #expect(cluster.core(1).term == term)
        #expect(cluster.core(1).leader == .none)
        #expect(cluster.propose(1, "x") == .failure(.notLeader(leader: nil)))
        cluster.stepDown(2)  // not a leader: nothing happens
        #expect(cluster.core(2).role == .follower && cluster.core(2).leader == NodeID(1))
        cluster.campaign(2)
        cluster.stabilize()
        #expect(cluster.leaders == [2])
        #expect(cluster.core(1).term == term + 1)
    }
}

