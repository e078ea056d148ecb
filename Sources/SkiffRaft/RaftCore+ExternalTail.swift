/// The pre-campaign step for an external log (see the RaftCore article): after a pre-vote shows the leader
/// is gone, and before raising its term, a node may adopt entries the dead leader had written elsewhere.
extension RaftCore {
    mutating func startExternalTailWait() {
        externalTailTicksLeft = configuration.externalTailWaitTicks
        externalTailRequest = ExternalTailRequest(afterIndex: LogIndex(log.lastIndex), term: Term(term))
    }

    mutating func cancelExternalTailWait() {
        externalTailTicksLeft = nil
        externalTailRequest = nil
    }

    /// Campaigns now, whether or not a tail arrived.
    mutating func finishExternalTailWait() {
        cancelExternalTailWait()
        guard role == .preCandidate, canCampaign else { return }
        campaign(preVote: false, leadershipTransfer: false)
    }

    /// Ends the wait without a tail, when the owner found none that joins this log or could not read the
    /// store: the node campaigns now instead of when the wait runs out. Outside the wait it does nothing.
    public mutating func campaignWithoutExternalTail() {
        guard isAwaitingExternalTail else { return }
        finishExternalTailWait()
    }

    /// Whether this node is waiting for an external tail before it campaigns.
    public var isAwaitingExternalTail: Bool { externalTailTicksLeft != nil }

    /// Delivers the external log's tail. By default entries are adopted exactly as a late append from that
    /// leader would be, with two restrictions: only if this node's term is not above `leaderTerm`, and never
    /// replacing an entry this node already has (adoption stops at the first disagreement).
    ///
    /// In witness mode the tail is the witness's log after the last agreement, and it is adopted whatever
    /// this node's term, replacing a conflicting suffix. That is safe only with two nodes and the witness
    /// (the ExternalLog article of SkiffExternal argues it). Then the node campaigns. Returns the index of the last entry adopted (the last
    /// index if none).
    @discardableResult
    public mutating func deliverExternalTail(_ tail: ExternalTail) -> LogIndex {
        // A tail that arrives after the wait ended (or was cancelled by a leader's message) is ignored, and
        // must not start a campaign that no won pre-vote backs.
        guard isAwaitingExternalTail else { return LogIndex(log.lastIndex) }
        defer { finishExternalTailWait() }
        let witnessMode = configuration.witness != nil
        guard witnessMode || tail.leaderTerm.rawValue >= term,
              tail.entries.allSatisfy({ $0.term <= tail.leaderTerm }),
              tail.entries.enumerated().allSatisfy({ $1.index.rawValue == tail.previousIndex.rawValue + 1 + UInt64($0) })
        else { return LogIndex(log.lastIndex) }
        guard let (_, firstWritten) = log.append(after: tail.previousIndex.rawValue, previousTerm: tail.previousTerm.rawValue,
                                                 tail.entries, mayTruncate: witnessMode) else { return LogIndex(log.lastIndex) }
        if let firstWritten { noteEntriesWritten(tail.entries, from: firstWritten) }
        return LogIndex(log.lastIndex)
    }
}

/// The leader's side of the external log: what the owner mirrored, and being fenced off by a later term.
extension RaftCore {
    /// On a leader, the last index of its log that the owner reported the external log holds; else zero.
    public var externalLogIndex: LogIndex { LogIndex(role == .leader ? externalMatch : 0) }

    /// Whether this node leads and its term is on disk (its first entry of the term is, and the hard state
    /// goes with or before it). The owner attaches to the external log only then: a leader that won without
    /// waiting for anyone (a lone voter) could otherwise write there as leader of a term that a crash makes
    /// it forget, and lead that term a second time with another log.
    public var leadsInADurableTerm: Bool { role == .leader && log.term(at: log.stable) == term }

    /// Tells a leader of `term` that the external log holds its log through `index`. With
    /// `commitRequiresExternalLog`, entries commit only up to there. A report of another term is ignored.
    public mutating func externalLogAppended(through index: LogIndex, term reportedTerm: Term) {
        guard role == .leader, reportedTerm.rawValue == term else { return }
        precondition(index.rawValue <= log.lastIndex, "the external log cannot hold more than the leader's log")
        externalMatch = max(externalMatch, index.rawValue)
        if let witness = configuration.witness, progress[witness] != nil {
            progress[witness]!.acknowledge(index.rawValue)
            progress[witness]!.recentActive = true
        }
        maybeCommit()
    }

    /// Tells a leader of `term` that the external log refused its write because a later term, or a seal of
    /// this one, is recorded there: another node is taking over, so this one steps down.
    public mutating func externalLogFenced(term fencedTerm: Term) {
        guard role == .leader, fencedTerm.rawValue == term else { return }
        becomeFollower(term: term, leader: .none)
    }
}
