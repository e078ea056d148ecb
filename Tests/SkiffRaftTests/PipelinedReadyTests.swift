import SkiffRaft
import Testing

/// The owner may take the next Ready before the earlier ones are persisted. These pin what each Ready then
/// carries, on bare cores driven by hand.
@Suite struct PipelinedReadyTests {
    static let voters: Set<NodeID> = [NodeID(1), NodeID(2), NodeID(3)]

    static func core(_ id: UInt64, recovered: RecoveredState = RecoveredState(initialConfiguration: ClusterConfiguration(voters: voters))) -> RaftCore {
        RaftCore(configuration: RaftConfiguration(id: NodeID(id)), recovered: recovered, random: SplitMix64(seed: id))
    }

    struct NoReady: Error {}

    /// The core's next Ready, which the test expects to exist.
    static func take(_ core: inout RaftCore) throws -> Ready {
        guard let ready = core.ready() else { throw NoReady() }
        return ready
    }

    /// Three cores with node 1 elected and every Ready persisted and advanced at once.
    static func electedCluster() -> [RaftCore] {
        var cores = (1...3).map { core(UInt64($0)) }
        cores[0].campaign()
        var moved = true
        while moved {
            moved = false
            for position in cores.indices {
                guard let ready = cores[position].ready() else { continue }
                moved = true
                cores[position].advance(ready)
                for message in ready.messages + ready.messagesAfterPersist {
                    try! cores[Int(message.to.rawValue) - 1].step(message)
                }
            }
        }
        precondition(cores[0].isLeader, "node 1 should lead")
        return cores
    }

    @Test func aLeaderHandsOutNewEntriesAndAppliesWhatFollowersCommittedBeforeItsOwnWriteIsDone() throws {
        var cores = Self.electedCluster()
        let next = cores[0].lastIndex.rawValue + 1
        _ = cores[0].propose([1])
        let first = try Self.take(&cores[0])
        #expect(first.entries.map(\.index.rawValue) == [next])
        _ = cores[0].propose([2])
        let second = try Self.take(&cores[0])  // the first is still being persisted
        #expect(second.entries.map(\.index.rawValue) == [next + 1])  // only what the first did not carry
        #expect(second.messages.contains { if case .append(_, _, let entries, _) = $0.kind { entries.map(\.index.rawValue) == [next + 1] } else { false } })
        #expect(cores[0].persistedIndex.rawValue == next - 1)

        // Both followers persist the first entry and acknowledge it.
        for message in first.messages { try cores[Int(message.to.rawValue) - 1].step(message) }
        for position in 1...2 {
            let ready = try Self.take(&cores[position])
            #expect(ready.messages.isEmpty)  // the acknowledgement waits until the entry is durable
            cores[position].advance(ready)
            for message in ready.messagesAfterPersist { try cores[0].step(message) }
        }
        let third = try Self.take(&cores[0])
        #expect(third.committedEntries.map(\.index.rawValue) == [next])  // a majority holds it; the leader's copy is still on its way
        #expect(third.entries.isEmpty)
        for ready in [first, second, third] { cores[0].advance(ready) }
        #expect(cores[0].persistedIndex.rawValue == next + 1)
    }

    /// A commit that moves in the same turn as a new proposal reaches each follower in the proposal's append,
    /// not in an extra message of its own.
    @Test func aNewCommitIndexRidesInTheAppendAlreadyQueued() throws {
        var cores = Self.electedCluster()
        let next = cores[0].lastIndex.rawValue + 1
        _ = cores[0].propose([1])
        let first = try Self.take(&cores[0])
        for message in first.messages { try cores[Int(message.to.rawValue) - 1].step(message) }
        for position in 1...2 {
            let ready = try Self.take(&cores[position])
            cores[position].advance(ready)
            for message in ready.messagesAfterPersist { try cores[0].step(message) }
        }
        #expect(cores[0].commitIndex.rawValue == next)
        _ = cores[0].propose([2])  // in the same turn as the acknowledgements
        let second = try Self.take(&cores[0])
        for follower in [NodeID(2), NodeID(3)] {
            let commits = second.messages.filter { $0.to == follower }.compactMap { message -> UInt64? in
                if case .append(_, _, _, let commit) = message.kind { commit.rawValue } else { nil }
            }
            #expect(commits == [next])  // one append, with the new entry and the new commit index
        }
    }

    @Test func aFollowerAcknowledgesOnlyWithTheReadyThatPersistedTheEntries() throws {
        var cores = Self.electedCluster()
        let next = cores[0].lastIndex.rawValue + 1
        _ = cores[0].propose([1])
        let leaderReady = try Self.take(&cores[0])
        let toTwo = leaderReady.messages.filter { $0.to == NodeID(2) }
        for message in toTwo { try cores[1].step(message) }
        let first = try Self.take(&cores[1])
        #expect(first.entries.map(\.index.rawValue) == [next])
        #expect(first.messagesAfterPersist.map(\.kind) == [.appendResponse(index: LogIndex(next), rejected: false, hintIndex: .zero, hintTerm: .zero)])
        for message in toTwo { try cores[1].step(message) }  // a duplicate while the first write is out
        let second = try Self.take(&cores[1])
        #expect(second.entries.isEmpty)  // nothing is handed out twice
        #expect(!second.mustSync)
        cores[1].advance(first)
        cores[1].advance(second)
        #expect(cores[1].persistedIndex.rawValue == next)
    }

    /// A snapshot replaces the log on disk, so its Ready waits for the earlier ones, carries no committed
    /// entries (they apply on top of the snapshot, after it is installed), and no Ready follows until it is done.
    @Test func aSnapshotReadyTravelsAlone() throws {
        var follower = Self.core(2)
        let configuration = ClusterConfiguration(voters: Self.voters)
        let snapshot = RaftSnapshot(index: LogIndex(10), term: Term(1), configuration: configuration)
        try follower.step(Message(from: NodeID(1), to: NodeID(2), term: Term(1), kind: .heartbeat(commit: .zero, context: 0)))
        let earlier = try Self.take(&follower)  // takes term 1: still out when the snapshot arrives
        try follower.step(Message(from: NodeID(1), to: NodeID(2), term: Term(1), kind: .snapshot(snapshot)))
        let entry = Entry(index: LogIndex(11), term: Term(1), payload: [7])
        try follower.step(Message(from: NodeID(1), to: NodeID(2), term: Term(1),
                                  kind: .append(previousIndex: LogIndex(10), previousTerm: Term(1), entries: [entry], commit: LogIndex(11))))
        #expect(!follower.hasReady)  // the snapshot waits for the earlier Ready
        follower.advance(earlier)
        let withSnapshot = try Self.take(&follower)
        #expect(withSnapshot.snapshot == snapshot)
        #expect(withSnapshot.committedEntries.isEmpty)
        #expect(!follower.hasReady)  // nothing overtakes the snapshot
        follower.advance(withSnapshot)
        let after = try Self.take(&follower)
        #expect(after.committedEntries == [entry])
    }
}
