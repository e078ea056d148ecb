import NIOCore
@testable import SkiffServer
import SkiffRaft
import Testing

/// How linearizable reads are grouped into ReadIndex rounds.
@Suite struct ReadWaitersTests {
    final class Served: @unchecked Sendable { var reads: [Int] = [] }

    /// A one-voter leader whose first entry is committed, so that it answers reads at once.
    static func leader() -> RaftCore {
        let recovered = RecoveredState(initialConfiguration: ClusterConfiguration(voters: [NodeID(1)]))
        var core = RaftCore(configuration: RaftConfiguration(id: NodeID(1)), recovered: recovered, random: SplitMix64(seed: 1))
        core.campaign()
        while let ready = core.ready() { core.advance(ready) }
        precondition(core.isLeader, "a lone voter leads")
        return core
    }

    /// Reads that arrive while a round is under way wait for the next one, which starts once that round
    /// is answered or has run longer than `overlapAfter`; every read is served once its round is confirmed.
    @Test func aRoundUnderWayHoldsBackTheNextUntilItEndsOrIsOld() {
        var core = Self.leader()
        let reads = ReadWaiters(overlapAfter: .milliseconds(100))
        let served = Served()
        let start = NIODeadline.now()
        func read(_ number: Int) -> ReadWaiters.Waiter {
            ReadWaiters.Waiter(run: { served.reads.append(number) }, fail: {}, deadline: start + .seconds(10))
        }
        reads.add(read(1))
        reads.submit(to: &core, now: start)
        #expect(!reads.hasWaiting)
        reads.add(read(2))
        reads.submit(to: &core, now: start + .milliseconds(50))
        #expect(reads.hasWaiting, "a second round started while the first was young")
        reads.submit(to: &core, now: start + .milliseconds(100))
        #expect(!reads.hasWaiting, "the first round is old enough for another to start beside it")
        let states = core.ready()?.readStates ?? []
        #expect(states.count == 2)
        for state in states { reads.confirmed(state, appliedIndex: core.hardState.commit.rawValue) }
        #expect(served.reads == [1, 2])
        reads.add(read(3))
        reads.submit(to: &core, now: start + .milliseconds(101))
        #expect(!reads.hasWaiting, "no round is under way: the next starts at once")
        #expect(reads.count == 1)
    }

    /// A read served may add the next read at once (a client's pipelined commands): this trapped as a
    /// conflicting access when the waiters were a struct.
    @Test func aReadServedMayAddTheNextRead() {
        var core = Self.leader()
        let reads = ReadWaiters(overlapAfter: .milliseconds(100))
        let served = Served()
        reads.add(ReadWaiters.Waiter(run: {
            served.reads.append(1)
            reads.add(ReadWaiters.Waiter(run: { served.reads.append(2) }, fail: {}, deadline: .now() + .seconds(10)))
        }, fail: {}, deadline: .now() + .seconds(10)))
        reads.submit(to: &core)
        for state in core.ready()?.readStates ?? [] { reads.confirmed(state, appliedIndex: core.hardState.commit.rawValue) }
        #expect(served.reads == [1] && reads.hasWaiting)
        reads.submit(to: &core)
        for state in core.ready()?.readStates ?? [] { reads.confirmed(state, appliedIndex: core.hardState.commit.rawValue) }
        #expect(served.reads == [1, 2])
    }
}
