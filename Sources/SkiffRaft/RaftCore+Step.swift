extension RaftCore {
    /// Feeds in a message from a peer. Throws only for input that no correct peer sends.
    public mutating func step(_ message: Message) throws(RaftInputError) {
        guard message.to == id else { throw .misaddressed(to: message.to) }
        try validate(message)
        if role == .leader, !clusterConfiguration.contains(message.from), !configuration(at: log.committed).contains(message.from) {
            // A node that a committed configuration left out, still campaigning or answering: tell it, before
            // its term (perhaps raised while it was away) can matter.
            tellRemoved(message.from)
            return
        }
        let messageTerm = message.term.rawValue
        if case .removed(let configurationIndex) = message.kind {
            // Whatever its term: a removed node may have raised its own while it was away.
            handleRemoved(term: messageTerm, configurationIndex: configurationIndex.rawValue)
            return
        }
        if messageTerm > term {
            switch message.kind {
            case .requestVote(_, _, _, let transfer):
                // A leader lease: a voter that heard from a leader within the election timeout ignores
                // requests that would depose it, unless the leader itself asked for the election.
                if configuration.checkQuorum && !transfer && leader != .none && electionElapsed < configuration.electionTicks {
                    return
                }
            default: break
            }
            switch message.kind {
            case .requestVote(_, _, true, _):
                break  // a pre-vote request never changes our term
            case .voteResponse(true, true):
                break  // a granted pre-vote carries the term the candidate would take
            case .append, .heartbeat, .snapshot:
                becomeFollower(term: messageTerm, leader: message.from)
            default:
                becomeFollower(term: messageTerm, leader: .none)
            }
        } else if messageTerm < term {
            switch message.kind {
            case .append, .heartbeat:
                // A deposed leader: the current term in the answer makes it step down. An acknowledgement of
                // nothing, so that it means nothing to whoever leads when it arrives.
                send(.appendResponse(index: .zero, rejected: false, hintIndex: .zero, hintTerm: .zero), to: message.from)
            case .requestVote(_, _, true, _):
                send(.voteResponse(granted: false, preVote: true), to: message.from)
            default:
                break
            }
            return
        }

        switch message.kind {
        case .requestVote(let lastIndex, let lastTerm, let preVote, _):
            handleVoteRequest(message, lastIndex: lastIndex.rawValue, lastTerm: lastTerm.rawValue, preVote: preVote)
        default:
            switch role {
            case .leader: stepLeader(message)
            case .candidate, .preCandidate: stepCandidate(message)
            case .follower: stepFollower(message)
            }
        }
    }

    /// A leader says a committed configuration leaves this node out. Ignored if this node knows a later
    /// committed configuration that includes it, in its log or its snapshot (an operator added it back, or
    /// the sender is a stale leader that never saw it join); otherwise it stops campaigning for good, until
    /// a configuration that includes it reaches its log. Only a committed one counts: a deposed leader's
    /// uncommitted configuration must not let it ignore its removal.
    private mutating func handleRemoved(term messageTerm: UInt64, configurationIndex: UInt64) {
        let committed = configurationEntries.last { $0.index <= log.committed }
        let latestIndex = committed?.index ?? log.snapshotIndex
        if latestIndex > configurationIndex, (committed?.configuration ?? baseConfiguration).contains(id) { return }
        if messageTerm > term || role != .follower { becomeFollower(term: max(term, messageTerm), leader: .none) }
        isRemoved = true
    }

    private func validate(_ message: Message) throws(RaftInputError) {
        if case .append(let previous, _, let entries, _) = message.kind {
            for (offset, entry) in entries.enumerated() where entry.index.rawValue != previous.rawValue + 1 + UInt64(offset) {
                throw .malformed("append from \(message.from): entry \(entry.index) does not follow \(previous) + \(offset)")
            }
            if let last = entries.last, last.term > message.term {
                throw .malformed("append from \(message.from) in term \(message.term) carries an entry of term \(last.term)")
            }
        }
    }

    private mutating func handleVoteRequest(_ message: Message, lastIndex: UInt64, lastTerm: UInt64, preVote: Bool) {
        let messageTerm = message.term.rawValue
        // May we vote for this candidate in its term? Already did; or nobody yet and no leader known; or, for a
        // pre-vote, the term is one we have not reached.
        let free = vote == message.from || (vote == .none && leader == .none) || (preVote && messageTerm > term)
        // Any node answers, whatever its own configuration says: a learner just promoted may not have the entry
        // that promotes it yet, and without its vote the new configuration could elect nobody. A vote counts
        // only if the candidate's configuration lists the voter, so a learner's vote is never counted.
        let grant = free && log.isUpToDate(lastIndex: lastIndex, lastTerm: lastTerm)
        if grant {
            send(.voteResponse(granted: true, preVote: preVote), to: message.from, term: messageTerm)
            if !preVote {
                electionElapsed = 0
                vote = message.from
            }
        } else {
            send(.voteResponse(granted: false, preVote: preVote), to: message.from)
        }
    }

    private mutating func stepFollower(_ message: Message) {
        switch message.kind {
        case .append(let previousIndex, let previousTerm, let entries, let commit):
            heardFromLeader(message.from)
            handleAppend(from: message.from, previousIndex: previousIndex.rawValue, previousTerm: previousTerm.rawValue,
                         entries: entries, commit: commit.rawValue)
        case .heartbeat(let commit, let context):
            heardFromLeader(message.from)
            log.commit(to: min(commit.rawValue, log.lastIndex))
            updateRemoved()
            send(.heartbeatResponse(context: context), to: message.from)
        case .snapshot(let snapshot):
            heardFromLeader(message.from)
            handleSnapshot(from: message.from, snapshot)
        case .timeoutNow:
            if canCampaign { campaign(preVote: false, leadershipTransfer: true) }
        case .readIndexResponse(let requestID, let index):
            readStates.append(ReadState(requestID: requestID, index: index))
        default:
            break
        }
    }

    private mutating func heardFromLeader(_ node: NodeID) {
        electionElapsed = 0
        leader = node
        cancelExternalTailWait()
    }

    private mutating func stepCandidate(_ message: Message) {
        switch message.kind {
        case .append, .heartbeat, .snapshot:
            // A leader of our term exists: follow it.
            becomeFollower(term: message.term.rawValue, leader: message.from)
            stepFollower(message)
        case .voteResponse(let granted, let preVote):
            guard preVote == (role == .preCandidate) else { return }
            votes[message.from] = granted
            tallyVotes()
        default:
            break
        }
    }
}
