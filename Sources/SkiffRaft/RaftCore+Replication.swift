extension RaftCore {
    // MARK: Leader side

    mutating func broadcastAppend() {
        for node in progress.keys.sorted() where node != id { sendAppend(to: node) }
    }

    mutating func broadcastHeartbeat(context: UInt64) {
        for node in progress.keys.sorted() where node != id {
            let match = progress[node]!.match
            send(.heartbeat(commit: LogIndex(min(match, log.committed)), context: context), to: node)
        }
    }

    /// Sends the next append (or the snapshot, if the follower needs entries already compacted) unless the
    /// follower's pipeline is full or a probe is unanswered.
    mutating func sendAppend(to node: NodeID) {
        guard node != configuration.witness else { return }  // the owner mirrors to it (`externalLogAppended`)
        guard var tracker = progress[node], !tracker.isPaused else { return }
        let previousIndex = tracker.next - 1
        guard let previousTerm = log.term(at: previousIndex) else {
            // The entries this follower needs are compacted: it gets the snapshot instead.
            tracker.becomeSnapshot(index: log.snapshotIndex)
            progress[node] = tracker
            send(.snapshot(snapshotPoint), to: node)
            return
        }
        let entries = log.entries(from: tracker.next, byteLimit: configuration.appendBytesMax)
        tracker.sent(through: previousIndex + UInt64(entries.count), entries: entries.count)
        progress[node] = tracker
        send(.append(previousIndex: LogIndex(previousIndex), previousTerm: Term(previousTerm), entries: entries,
                     commit: LogIndex(log.committed)), to: node)
    }

    /// Commits the highest index a quorum of voters holds, if it is of this leader's term (§5.4.2: entries of
    /// earlier terms commit only by being before one of the current term). Returns whether the commit moved.
    @discardableResult
    mutating func maybeCommit() -> Bool {
        guard role == .leader else { return false }
        let voters = clusterConfiguration.voters
        let matches = voters.map { progress[$0]?.match ?? 0 }.sorted(by: >)
        guard matches.count >= clusterConfiguration.quorum else { return false }
        var candidate = matches[clusterConfiguration.quorum - 1]
        if configuration.commitRequiresExternalLog { candidate = min(candidate, externalMatch) }
        guard candidate > log.committed, log.term(at: candidate) == term else { return false }
        let hadTermCommit = log.term(at: log.committed) == term
        log.commit(to: candidate)
        if !hadTermCommit { releaseReadsWaitingForTermCommit() }
        updateRemoved()
        if role == .leader && !voters.contains(id) && configuration(at: log.committed).voters.contains(id) == false {
            // This leader removed itself and the change is committed: hand over by stepping down.
            becomeFollower(term: term, leader: .none)
            return true
        }
        commitNoticesOwed.formUnion(progress.keys.filter { $0 != id })
        return true
    }

    /// Tells the followers owed it the commit index: by raising it in the appends already queued for them, or
    /// with an append of their own. A burst of commits between two Readys costs at most one message each.
    mutating func sendCommitNotices() {
        let owed = commitNoticesOwed
        commitNoticesOwed.removeAll()
        guard role == .leader else { return }
        var told = Set<NodeID>()
        func raiseCommit(in queue: inout [Message]) {
            for position in queue.indices where queue[position].term.rawValue == term {
                guard case .append(let previousIndex, let previousTerm, let entries, _) = queue[position].kind else { continue }
                queue[position].kind = .append(previousIndex: previousIndex, previousTerm: previousTerm, entries: entries,
                                               commit: LogIndex(log.committed))
                told.insert(queue[position].to)
            }
        }
        raiseCommit(in: &messages)
        raiseCommit(in: &messagesAfterPersist)
        for node in owed.sorted() where node != id && progress[node] != nil {
            // A queued append tells a follower that is streaming; one being probed may need its probe now.
            if told.contains(node), case .replicate = progress[node]!.state { continue }
            sendAppend(to: node)
        }
    }

    mutating func stepLeader(_ message: Message) {
        let from = message.from
        guard progress[from] != nil else {
            if !clusterConfiguration.contains(from) && !configuration(at: log.committed).contains(from) {
                tellRemoved(from)
            }
            return
        }
        progress[from]!.recentActive = true
        switch message.kind {
        case .appendResponse(let index, let rejected, let hintIndex, let hintTerm):
            if rejected {
                var next = hintIndex.rawValue
                if hintTerm.rawValue > 0 { next = log.lastIndex(atOrBelow: hintIndex.rawValue, withTermAtMost: hintTerm.rawValue) }
                if progress[from]!.rejected(index.rawValue, hint: next) {
                    if progress[from]!.state == .replicate { progress[from]!.becomeProbe() }
                    sendAppend(to: from)
                }
                return
            }
            let before = progress[from]!.state
            let advanced = progress[from]!.acknowledge(index.rawValue)
            // A probe answered at the match already known (nothing new to append then) also ends probing.
            guard advanced || (before == .probe && index.rawValue == progress[from]!.match) else { return }
            switch before {
            case .probe:
                progress[from]!.becomeReplicate()
            case .snapshot(let pending) where progress[from]!.match >= pending:
                progress[from]!.becomeProbe()
            default:
                break
            }
            if !maybeCommit() && role == .leader {
                // More entries go now; with none, only the commit index may be news, told once per Ready.
                if progress[from]!.next <= log.lastIndex { sendAppend(to: from) } else { commitNoticesOwed.insert(from) }
            }
            if transferTarget == from && progress[from]?.match == log.lastIndex {
                send(.timeoutNow, to: from)
            }
        case .heartbeatResponse(let context):
            progress[from]!.probeSent = false
            progress[from]!.freeOldestInflight()
            if progress[from]!.match < log.lastIndex { sendAppend(to: from) }
            let voters = clusterConfiguration.voters
            for read in reads.acknowledge(context: context, from: from, voters: voters, quorum: clusterConfiguration.quorum) {
                answerRead(requestID: read.requestID, origin: read.origin, index: read.index)
            }
        case .readIndex(let requestID):
            handleRead(requestID: requestID, origin: from)
        default:
            break
        }
    }

    /// The transport could not deliver to `node` (connection down): stop streaming to it and probe instead.
    public mutating func reportUnreachable(_ node: NodeID) {
        guard role == .leader, progress[node]?.state == .replicate else { return }
        progress[node]!.becomeProbe()
    }

    /// The transport finished streaming the snapshot at `index` to `node`, delivered or not. Either way the
    /// leader goes back to probing: the follower's answer to the next append says whether it installed the
    /// snapshot (and a lost acknowledgement cannot leave the follower waiting forever); if it did not, the
    /// probe resends it. A report about an older stream than the one pending is ignored.
    public mutating func reportSnapshot(to node: NodeID, index: LogIndex, delivered: Bool) {
        guard role == .leader, case .snapshot(let pending) = progress[node]?.state, pending == index.rawValue else { return }
        progress[node]!.becomeProbe()
    }

    /// Tells a node that the committed configuration leaves it out (see `Message.Kind.removed`).
    mutating func tellRemoved(_ node: NodeID) {
        let index = configurationEntries.last?.index ?? log.snapshotIndex
        send(.removed(configurationIndex: LogIndex(index)), to: node)
    }

    // MARK: Follower side

    mutating func handleAppend(from leader: NodeID, previousIndex: UInt64, previousTerm: UInt64, entries: [Entry], commit: UInt64) {
        if previousIndex < log.committed {
            // Everything up to our commit index already matches the leader's log.
            send(.appendResponse(index: LogIndex(log.committed), rejected: false, hintIndex: .zero, hintTerm: .zero), to: leader)
            return
        }
        if let (lastNew, firstWritten) = log.append(after: previousIndex, previousTerm: previousTerm, entries) {
            if let firstWritten { noteEntriesWritten(entries, from: firstWritten) }
            log.commit(to: min(commit, lastNew))
            updateRemoved()
            send(.appendResponse(index: LogIndex(lastNew), rejected: false, hintIndex: .zero, hintTerm: .zero), to: leader)
        } else {
            let hint = log.lastIndex(atOrBelow: min(previousIndex, log.lastIndex), withTermAtMost: previousTerm)
            send(.appendResponse(index: LogIndex(previousIndex), rejected: true, hintIndex: LogIndex(hint),
                                 hintTerm: Term(log.term(at: hint) ?? 0)), to: leader)
        }
    }

    mutating func handleSnapshot(from leader: NodeID, _ snapshot: RaftSnapshot) {
        let index = snapshot.index.rawValue
        if index <= log.committed {
            send(.appendResponse(index: LogIndex(log.committed), rejected: false, hintIndex: .zero, hintTerm: .zero), to: leader)
            return
        }
        if log.matches(index: index, term: snapshot.term.rawValue) {
            // We already hold the snapshot's entries: just commit them. Only they are known to match the
            // leader's log; entries after them may be another leader's, so the acknowledgement stops there.
            log.commit(to: index)
            updateRemoved()
            send(.appendResponse(index: snapshot.index, rejected: false, hintIndex: .zero, hintTerm: .zero), to: leader)
            return
        }
        log.restore(index: index, term: snapshot.term.rawValue)
        baseConfiguration = snapshot.configuration
        configurationEntries.removeAll()
        pendingSnapshot = snapshot
        updateRemoved()
        send(.appendResponse(index: snapshot.index, rejected: false, hintIndex: .zero, hintTerm: .zero), to: leader)
    }
}
