import SkiffExternal
import SkiffRaft
import Testing

/// Entries `first...` with the given terms, each payload naming its index and term.
func entries(from first: UInt64, terms: [UInt64]) -> [Entry] {
    terms.enumerated().map { offset, term in
        let index = first + UInt64(offset)
        return Entry(index: LogIndex(index), term: Term(term), payload: Array("e\(index)t\(term)".utf8))
    }
}

func batch(_ term: UInt64, after previous: (UInt64, UInt64), _ terms: [UInt64]) -> ExternalRecord {
    .batch(term: Term(term), previousIndex: LogIndex(previous.0), previousTerm: Term(previous.1),
           entries: entries(from: previous.0 + 1, terms: terms), commit: .zero)
}

/// The rules a reader applies to the records in slot order: fencing by term, seals, and chaining.
@Suite struct ExternalLogViewTests {
    func view(_ records: [ExternalRecord]) throws -> ExternalLogView {
        var view = ExternalLogView(keepsEntries: true)
        for record in records { try view.apply(record) }
        return view
    }

    func terms(_ view: ExternalLogView) -> [UInt64] { view.entries.map(\.term.rawValue) }

    @Test func recordsRoundTripAndAMovedOrDamagedRecordIsRefused() throws {
        let records: [ExternalRecord] = [batch(3, after: (4, 2), [2, 3, 3]), .seal(term: Term(7)), batch(1, after: (0, 0), []),
                                         .vote(term: Term(9), candidate: NodeID(4), lastIndex: LogIndex(12), lastTerm: Term(8)),
                                         .snapshot(term: Term(6), index: LogIndex(40), snapshotTerm: Term(5))]
        for (slot, record) in records.enumerated() {
            let bytes = ExternalRecordCoding.encode(record, slot: UInt64(slot))
            #expect(try ExternalRecordCoding.decode(bytes, slot: UInt64(slot)) == record)
            #expect(throws: ExternalLogError.self) { try ExternalRecordCoding.decode(bytes, slot: UInt64(slot) + 1) }
            for position in [0, 9, bytes.count / 2, bytes.count - 1] {
                var damaged = bytes
                damaged[position] ^= 0x40
                #expect(throws: ExternalLogError.self) { try ExternalRecordCoding.decode(damaged, slot: UInt64(slot)) }
            }
            #expect(throws: ExternalLogError.self) { try ExternalRecordCoding.decode(Array(bytes.dropLast(5)), slot: UInt64(slot)) }
        }
    }

    @Test func aLeadersBatchesChainAndANewLeaderReplacesTheConflictingSuffix() throws {
        let view = try view([
            .seal(term: Term(1)), batch(2, after: (0, 0), [2, 2, 2]), batch(2, after: (3, 2), [2]),
            .seal(term: Term(2)), batch(3, after: (2, 2), [3]),
        ])
        #expect(terms(view) == [2, 2, 3])
        #expect(view.lastIndex == LogIndex(3) && view.lastTerm == Term(3) && view.lastWriterTerm == Term(3))
        #expect(view.nextSlot == 5 && view.floor == Term(3))
        #expect(view.entries.last?.payload == Array("e3t3".utf8))
    }

    /// As a Raft follower: a batch that agrees with what is held changes nothing, even where it ends early,
    /// so entries after it (maybe committed) stay; only a conflicting entry cuts the log.
    @Test func onlyAConflictCutsTheLog() throws {
        var view = try view([batch(2, after: (0, 0), [2, 2, 2, 2]), .seal(term: Term(2))])
        #expect(try view.apply(batch(3, after: (1, 2), [2])))
        #expect(terms(view) == [2, 2, 2, 2])
        #expect(view.lastWriterTerm == Term(3) && view.writerLastIndex == LogIndex(2) && view.lastIndex == LogIndex(4))
        #expect(try view.apply(batch(3, after: (2, 2), [2, 3])))
        #expect(terms(view) == [2, 2, 2, 3] && view.writerLastIndex == LogIndex(4))
        #expect(try view.apply(batch(3, after: (4, 3), [])))  // an empty batch confirms up to its previous entry
        #expect(view.writerLastIndex == LogIndex(4))
    }

    /// A replaying node gets what follows its last agreement with the view, up to the last writer's last
    /// index only: beyond that the entries are an earlier leader's, which the last writer may not hold.
    @Test func aTailStartsAtTheLastAgreementAndStopsAtTheWritersLastIndex() throws {
        let view = try view([batch(2, after: (0, 0), [1, 2, 2, 2]), .seal(term: Term(2)), batch(3, after: (1, 1), [2])])
        let node: [UInt64: UInt64] = [1: 1, 2: 1]  // agrees at 1, conflicts at 2
        let termOf = { (index: LogIndex) in index == .zero ? Term.zero : node[index.rawValue].map { Term($0) } }
        #expect(view.lastAgreement(with: termOf, upTo: LogIndex(2)) == LogIndex(1))
        let tail = try #require(view.tail(for: termOf, lastIndex: LogIndex(2)))
        #expect(tail.leaderTerm == Term(3) && tail.previousIndex == LogIndex(1) && tail.previousTerm == Term(1))
        #expect(tail.entries.map(\.index.rawValue) == [2])
        let stranger = { (index: LogIndex) in index == .zero ? Term.zero : Term(9) }  // agrees only before index 1
        #expect(view.tail(for: stranger, lastIndex: LogIndex(3))?.entries.map(\.index.rawValue) == [1, 2])
    }

    @Test func aDeposedLeadersLaterRecordsDoNotCount() throws {
        var view = try view([batch(2, after: (0, 0), [2, 2]), .seal(term: Term(2))])
        #expect(try view.apply(batch(2, after: (2, 2), [2])) == false)  // written after the seal: skipped
        #expect(try view.apply(batch(4, after: (2, 2), [4])))
        #expect(try view.apply(batch(3, after: (3, 4), [4])) == false)  // a later term wrote first
        #expect(terms(view) == [2, 2, 4])
        #expect(view.nextSlot == 5)
    }

    @Test func aBatchThatDoesNotContinueTheLogIsSkippedAndAMalformedOneIsAnError() throws {
        var view = try view([batch(2, after: (0, 0), [2, 2])])
        #expect(try view.apply(batch(3, after: (3, 2), [3])) == false)  // its predecessor never landed
        #expect(try view.apply(batch(3, after: (2, 1), [3])) == false)  // another term there
        #expect(view.unjoinedBatches == 2 && view.floor == Term(2))
        #expect(throws: ExternalLogError.self) { try view.apply(batch(3, after: (2, 2), [4])) }  // above its writer's term
        #expect(throws: ExternalLogError.self) { try view.apply(batch(3, after: (2, 2), [1])) }  // below the previous term
        let skipping = ExternalRecord.batch(term: Term(3), previousIndex: LogIndex(2), previousTerm: Term(2),
                                            entries: entries(from: 4, terms: [3]), commit: .zero)
        #expect(throws: ExternalLogError.self) { try view.apply(skipping) }
        #expect(terms(view) == [2, 2])
    }

    @Test func aViewWithoutEntriesKeepsTheirTerms() throws {
        var view = ExternalLogView(keepsEntries: false)
        try view.apply(batch(2, after: (0, 0), [1, 2, 2]))
        try view.apply(batch(3, after: (1, 1), [3]))
        #expect(view.entries.isEmpty)
        #expect(view.term(at: LogIndex(1)) == Term(1) && view.term(at: LogIndex(2)) == Term(3) && view.term(at: LogIndex(3)) == nil)
    }

    /// Raft's vote rule with the view as the voter's log: one vote per term, only for a log at least as
    /// up-to-date, only in a term the witness has not reached; a granted vote fences earlier terms, and a
    /// refused one changes nothing.
    @Test func aVoteCountsOncePerTermForAnUpToDateLogAndFencesEarlierTerms() throws {
        func vote(_ term: UInt64, for node: UInt64, last: (UInt64, UInt64)) -> ExternalRecord {
            .vote(term: Term(term), candidate: NodeID(node), lastIndex: LogIndex(last.0), lastTerm: Term(last.1))
        }
        var view = try view([batch(2, after: (0, 0), [2, 2, 2])])
        #expect(view.witnessTerm == Term(2))
        #expect(try view.apply(vote(2, for: 1, last: (9, 2))) == false)  // the witness already follows a leader of 2
        #expect(try view.apply(vote(3, for: 1, last: (2, 2))) == false)  // behind: 2/2 < 3/2
        #expect(try view.apply(vote(3, for: 1, last: (5, 1))) == false)  // behind: a lower last term
        #expect(view.floor == Term(2) && view.witnessTerm == Term(2))  // refusals change nothing
        #expect(try view.apply(vote(3, for: 1, last: (3, 2))))
        #expect(view.voteTerm == Term(3) && view.votedFor == NodeID(1) && view.floor == Term(3))
        #expect(try view.apply(vote(3, for: 2, last: (9, 3))) == false)  // one vote a term
        #expect(try view.apply(batch(2, after: (3, 2), [2])) == false)  // the old leader is fenced
        #expect(try view.apply(batch(3, after: (3, 2), [3])))  // the new one writes
        #expect(try view.apply(.seal(term: Term(3))))
        #expect(view.witnessTerm == Term(3))
        #expect(try view.apply(vote(4, for: 2, last: (4, 3))))
        #expect(terms(view) == [2, 2, 2, 3])
    }

    /// The witness's answers, as `WitnessRules` computes them from a view.
    @Test func theWitnessAnswersPreVotesAndHeartbeatsByItsView() throws {
        let view = try view([batch(3, after: (0, 0), [1, 3, 3])])
        let own: [UInt64: UInt64] = [1: 1, 2: 2]  // agrees at 1 only
        let termOf = { (index: LogIndex) in index == .zero ? Term.zero : own[index.rawValue].map { Term($0) } }
        func preVote(_ term: UInt64, last: (UInt64, UInt64)) -> Message {
            Message(from: NodeID(1), to: NodeID(99), term: Term(term),
                    kind: .requestVote(lastIndex: LogIndex(last.0), lastTerm: Term(last.1), preVote: true, leadershipTransfer: false))
        }
        let granted = WitnessRules.answerPreVote(preVote(4, last: (2, 2)), view: view, candidateTerms: termOf)
        #expect(granted == Message(from: NodeID(99), to: NodeID(1), term: Term(4), kind: .voteResponse(granted: true, preVote: true)))
        let early = WitnessRules.answerPreVote(preVote(2, last: (2, 2)), view: view, candidateTerms: termOf)
        #expect(early.kind == .voteResponse(granted: false, preVote: true) && early.term == Term(3))  // catch up to term 3
        // A log that ends before a trimmed view's base: nothing joins it, so the candidate could never catch up.
        var trimmed = ExternalLogView(ExternalCheckpoint(slot: 5, floor: Term(3), lastWriterTerm: Term(3), baseIndex: LogIndex(2), baseTerm: Term(3)),
                                      keepsEntries: false)
        try trimmed.apply(batch(3, after: (2, 3), [3]))
        let refused = WitnessRules.answerPreVote(preVote(5, last: (1, 1)), view: trimmed, candidateTerms: termOf)
        #expect(refused.kind == .voteResponse(granted: false, preVote: true) && refused.term == Term(4))  // its own term
        #expect(trimmed.witnessTerm == Term(3))

        let heartbeat = { (term: UInt64) in Message(from: NodeID(1), to: NodeID(99), term: Term(term), kind: .heartbeat(commit: .zero, context: 5)) }
        #expect(WitnessRules.answerHeartbeat(heartbeat(3), view: view)?.kind == .heartbeatResponse(context: 5))
        #expect(WitnessRules.answerHeartbeat(heartbeat(2), view: view) == nil)
    }
}
