extension RaftCore {
    mutating func tickElection() {
        electionElapsed += 1
        if let left = externalTailTicksLeft {
            if left <= 1 {
                finishExternalTailWait()
            } else {
                externalTailTicksLeft = left - 1
            }
            return
        }
        if canCampaign && electionElapsed >= randomizedElectionTimeout {
            resetElectionTimeout()
            campaign(preVote: configuration.preVote, leadershipTransfer: false)
        }
    }

    /// Starts an election now, as if the election timeout had passed (for tests and for operators).
    public mutating func campaign() {
        guard canCampaign, role != .leader else { return }
        campaign(preVote: configuration.preVote, leadershipTransfer: false)
    }

    mutating func campaign(preVote: Bool, leadershipTransfer: Bool) {
        cancelExternalTailWait()
        if preVote {
            role = .preCandidate
            leader = .none
        } else {
            becomeFollowerState()
            role = .candidate
            term += 1
            vote = id
            leader = .none
        }
        votes = [id: true]
        resetElectionTimeout()
        let voteTerm = preVote ? term + 1 : term
        for peer in clusterConfiguration.voters.sorted() where peer != id {
            send(.requestVote(lastIndex: LogIndex(log.lastIndex), lastTerm: Term(log.lastTerm), preVote: preVote,
                              leadershipTransfer: leadershipTransfer), to: peer, term: voteTerm)
        }
        tallyVotes()
    }

    mutating func tallyVotes() {
        let voters = clusterConfiguration.voters
        let granted = votes.filter { voters.contains($0.key) && $0.value }.count
        let rejected = votes.filter { voters.contains($0.key) && !$0.value }.count
        if granted >= clusterConfiguration.quorum {
            if role == .preCandidate {
                if isAwaitingExternalTail { return }  // a late grant: the wait has already begun
                if configuration.externalTailWaitTicks > 0 {
                    startExternalTailWait()
                } else {
                    campaign(preVote: false, leadershipTransfer: false)
                }
            } else {
                becomeLeader()
            }
        } else if rejected >= clusterConfiguration.quorum || voters.count - rejected < clusterConfiguration.quorum {
            becomeFollower(term: term, leader: .none)
        }
    }

    mutating func becomeFollower(term newTerm: UInt64, leader newLeader: NodeID) {
        precondition(newTerm >= term, "terms never go back")
        if newTerm > term {
            term = newTerm
            vote = .none
        }
        becomeFollowerState()
        role = .follower
        leader = newLeader
        resetElectionTimeout()
    }

    /// Leaves leader or candidate state behind: answers pending reads as failed, forgets progress.
    private mutating func becomeFollowerState() {
        if role == .leader {
            for read in reads.drain() { answerRead(requestID: read.requestID, origin: read.origin, index: nil) }
            progress.removeAll()
            transferTarget = nil
        }
        cancelExternalTailWait()
        votes.removeAll()
    }

    mutating func becomeLeader() {
        precondition(role == .candidate, "only a candidate becomes leader")
        role = .leader
        leader = id
        heartbeatElapsed = 0
        electionElapsed = 0
        transferTarget = nil
        externalMatch = 0
        progress.removeAll()
        for node in clusterConfiguration.members {
            var tracker = Progress(next: log.lastIndex + 1, inflightMax: configuration.inflightMessagesMax)
            tracker.recentActive = true
            progress[node] = tracker
        }
        progress[id]?.acknowledge(log.stable)
        // No membership change until an entry of this term commits (the fix to single-server changes in
        // Ongaro's dissertation, §4.1 erratum): the no-op below is that entry.
        pendingConfigurationIndex = log.lastIndex + 1
        _ = appendAsLeader(kind: .noop, payload: [])
    }

    // MARK: Check quorum, heartbeats, transfer timeout

    mutating func tickLeader() {
        heartbeatElapsed += 1
        electionElapsed += 1
        if transferTarget != nil {
            transferElapsed += 1
            if transferElapsed >= configuration.electionTicks { transferTarget = nil }
        }
        if electionElapsed >= configuration.electionTicks {
            electionElapsed = 0
            if configuration.checkQuorum {
                let voters = clusterConfiguration.voters
                let active = voters.filter { $0 == id || progress[$0]?.recentActive == true }.count
                if active < clusterConfiguration.quorum {
                    becomeFollower(term: term, leader: .none)
                    return
                }
                for node in progress.keys where node != id { progress[node]?.recentActive = false }
            }
        }
        if heartbeatElapsed >= configuration.heartbeatTicks {
            heartbeatElapsed = 0
            broadcastHeartbeat(context: reads.lastContext)
        }
    }
}
