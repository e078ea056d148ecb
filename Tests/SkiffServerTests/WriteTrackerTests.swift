import NIOCore
@testable import SkiffServer
import SkiffKV
import Testing

/// The bookkeeping that decides when a client's write is answered, retried or declared unknown.
@Suite struct WriteTrackerTests {
    final class Outcomes: @unchecked Sendable {
        var results: [UInt64: Result<KVReply, WriteFailure>] = [:]
    }

    static func add(_ tracker: WriteTracker, _ outcomes: Outcomes, tag: UInt64, deadline: NIODeadline = .distantFuture) -> UInt64 {
        let id = tracker.nextRequestID
        tracker.add(payload: { _ in [UInt8(tag)] }, deadline: deadline) { outcomes.results[tag] = $0 }
        return id
    }

    /// A write whose log position is taken by another entry goes back to the queue (retrying is safe: that
    /// position can never hold it); a write answered at its position completes.
    @Test func lostPositionsAreRetriedAndAppliedWritesAnswered() {
        let tracker = WriteTracker()
        let outcomes = Outcomes()
        let a = Self.add(tracker, outcomes, tag: 1)
        let b = Self.add(tracker, outcomes, tag: 2)
        let c = Self.add(tracker, outcomes, tag: 3)
        #expect(tracker.takeQueued().ids == [a, b, c])
        tracker.proposed([a], firstIndex: 5)
        tracker.proposed([b], firstIndex: 5)  // a new leadership of this node reused index 5
        #expect(tracker.takeQueued().ids.isEmpty, "either entry may still be the one that commits at 5")
        tracker.applied(requestID: b, at: 5, reply: .ok)
        #expect(outcomes.results[2].map { if case .success(.ok) = $0 { true } else { false } } == true)
        #expect(tracker.takeQueued().ids == [a], "b is at 5: a lost its place")
        tracker.proposed([c], firstIndex: 6)
        tracker.appliedOther(at: 6)  // another node's entry was committed at 6
        #expect(tracker.takeQueued().ids == [c])
        tracker.proposed([a, c], firstIndex: 7)
        tracker.applied(requestID: c, at: 7, reply: .integer(1))  // c landed where a was expected: a is lost again
        #expect(tracker.takeQueued().ids == [a])
        #expect(tracker.count == 1)
    }

    /// A completion may add the next write at once, as a client's pipelined commands do: the tracker is
    /// not in the middle of a change when it runs (this trapped as a conflicting access when it was a struct).
    @Test func aCompletionMayAddTheNextWrite() {
        let tracker = WriteTracker()
        let outcomes = Outcomes()
        var next: UInt64?
        let first = tracker.nextRequestID
        tracker.add(payload: { _ in [1] }, deadline: .distantFuture) { _ in next = Self.add(tracker, outcomes, tag: 2) }
        #expect(tracker.takeQueued().ids == [first])
        tracker.proposed([first], firstIndex: 1)
        tracker.applied(requestID: first, at: 1, reply: .ok)
        #expect(next != nil && tracker.takeQueued().ids == [next!])
        let third = Self.add(tracker, outcomes, tag: 3)
        tracker.add(payload: { _ in [4] }, deadline: .now() - .seconds(1)) { _ in _ = Self.add(tracker, outcomes, tag: 5) }
        tracker.expire(now: .now())
        #expect(tracker.takeQueued().ids == [third, third + 2], "the write added on expiry is queued")
    }

    /// A deposed leader's late answer may claim the index where the new leader put another write of this
    /// node. Neither write is retried on the strength of a claim, since either entry may be the one that
    /// commits there; the one applied there is answered and only the other is retried, so none applies twice.
    @Test func aLateAnswerForAnIndexAnotherWriteClaimsRetriesNothingUntilThatIndexApplies() {
        for appliedFirst in [true, false] {
            let tracker = WriteTracker()
            let outcomes = Outcomes()
            let a = Self.add(tracker, outcomes, tag: 1)
            let first = tracker.forwarded(tracker.takeQueued().ids, to: .init(1))
            let b = Self.add(tracker, outcomes, tag: 2)
            let second = tracker.forwarded(tracker.takeQueued().ids, to: .init(2))
            tracker.forwardAnswered(batch: second, firstIndex: 9, term: 3)  // the new leader put b at 9
            tracker.forwardAnswered(batch: first, firstIndex: 9, term: 2)  // the deposed leader had put a at 9
            #expect(tracker.takeQueued().ids.isEmpty)
            tracker.applied(requestID: appliedFirst ? a : b, at: 9, reply: .ok)
            #expect(tracker.takeQueued().ids == [appliedFirst ? b : a])
            #expect(outcomes.results[appliedFirst ? 1 : 2] != nil && outcomes.results[appliedFirst ? 2 : 1] == nil)
        }
    }

    /// A late answer for an index already applied here retries its write at once (the entry there is not
    /// it); one for an index a snapshot covered ends it as unknown (the snapshot may hold it).
    @Test func aLateAnswerForAnIndexAlreadySettledHereSettlesItsWriteAtOnce() {
        let tracker = WriteTracker()
        let outcomes = Outcomes()
        let late = Self.add(tracker, outcomes, tag: 1)
        let batch = tracker.forwarded(tracker.takeQueued().ids, to: .init(1))
        tracker.appliedOther(at: 4)
        tracker.forwardAnswered(batch: batch, firstIndex: 4, term: 2)
        #expect(tracker.takeQueued().ids == [late] && outcomes.results[1] == nil)
        _ = Self.add(tracker, outcomes, tag: 2)
        let second = tracker.forwarded(tracker.takeQueued().ids, to: .init(1))
        tracker.coveredBySnapshot(through: 10)
        tracker.forwardAnswered(batch: second, firstIndex: 8, term: 2)
        #expect(outcomes.results[2].map { if case .failure(.outcomeUnknown) = $0 { true } else { false } } == true)
        #expect(tracker.takeQueued().ids.isEmpty)
    }

    /// Past its deadline, a write never proposed may be retried (no leader); one forwarded or proposed may
    /// still be applied (outcome unknown). A dropped connection settles forwarded writes at once.
    @Test func deadlinesAndDroppedConnections() {
        let tracker = WriteTracker()
        let outcomes = Outcomes()
        _ = Self.add(tracker, outcomes, tag: 1, deadline: .now() - .seconds(1))
        let forwarded = Self.add(tracker, outcomes, tag: 2)
        _ = tracker.takeQueued()
        let batch = tracker.forwarded([forwarded], to: .init(7))
        #expect(batch > 0)
        tracker.expire(now: .now())
        #expect(outcomes.results[1].map { if case .failure(.noLeader) = $0 { true } else { false } } == true)
        #expect(outcomes.results[2] == nil)
        tracker.connectionLost(to: .init(7))
        #expect(outcomes.results[2].map { if case .failure(.outcomeUnknown) = $0 { true } else { false } } == true)
        #expect(tracker.count == 0)
    }

    /// A write that expires while queued leaves the queue: a flush then finds nothing to propose (proposing an
    /// empty batch stopped a node in a torture run).
    @Test func writesThatExpireWhileQueuedAreNotProposed() {
        let tracker = WriteTracker()
        let outcomes = Outcomes()
        _ = Self.add(tracker, outcomes, tag: 1, deadline: .now() - .seconds(1))
        let live = Self.add(tracker, outcomes, tag: 2)
        #expect(tracker.hasQueued)
        tracker.expire(now: .now())
        #expect(tracker.takeQueued().ids == [live])
        tracker.requeue([live])
        _ = Self.add(tracker, outcomes, tag: 3, deadline: .now() - .seconds(1))
        tracker.applied(requestID: live, at: 9, reply: .ok)  // applied through an earlier proposal while queued again
        tracker.expire(now: .now())
        #expect(!tracker.hasQueued)
        #expect(tracker.takeQueued().ids.isEmpty)
        #expect(tracker.count == 0)
    }
}
