extension RaftCore {
    /// Asks for a linearizable read. The answer arrives as a `ReadState` in a later Ready: serve the read
    /// once that index is applied. On a follower the request goes to the leader (ReadIndex, Raft §6.4).
    public mutating func requestRead(id requestID: UInt64) -> RaftRefusal? {
        if isRemoved { return .removed }
        switch role {
        case .leader:
            handleRead(requestID: requestID, origin: id)
            return nil
        default:
            guard leader != .none else { return .notLeader(leader: nil) }
            send(.readIndex(requestID: requestID), to: leader)
            return nil
        }
    }

    mutating func handleRead(requestID: UInt64, origin: NodeID) {
        guard log.term(at: log.committed) == term else {
            // A new leader's commit index may lag until it commits an entry of its own term.
            reads.waitingForTermCommit.append((requestID, origin))
            return
        }
        if clusterConfiguration.voters == [id] {
            answerRead(requestID: requestID, origin: origin, index: log.committed)
            return
        }
        let context = reads.register(requestID: requestID, origin: origin, index: log.committed, leader: id)
        broadcastHeartbeat(context: context)
    }

    mutating func releaseReadsWaitingForTermCommit() {
        let waiting = reads.waitingForTermCommit
        reads.waitingForTermCommit.removeAll()
        for read in waiting { handleRead(requestID: read.requestID, origin: read.origin) }
    }

    mutating func answerRead(requestID: UInt64, origin: NodeID, index: UInt64?) {
        if origin == id {
            readStates.append(ReadState(requestID: requestID, index: index.map { LogIndex($0) }))
        } else {
            send(.readIndexResponse(requestID: requestID, index: index.map { LogIndex($0) }), to: origin)
        }
    }

    /// Hands leadership to `target`: once its log has caught up, it is told to campaign at once. Proposals
    /// are refused meanwhile; the transfer is abandoned after an election timeout.
    public mutating func transferLeadership(to target: NodeID) -> RaftRefusal? {
        guard role == .leader else { return .notLeader(leader: leader == .none ? nil : leader) }
        guard target != id else { return nil }
        guard target != configuration.witness else { return .notAVoter(target) }  // the store cannot lead
        guard clusterConfiguration.voters.contains(target), progress[target] != nil else { return .notAVoter(target) }
        transferTarget = target
        transferElapsed = 0
        if progress[target]!.match == log.lastIndex {
            send(.timeoutNow, to: target)
        } else {
            sendAppend(to: target)
        }
        return nil
    }

    /// A leader that may have been deposed without hearing of it (its process stalled for longer than an
    /// election timeout) stops leading: it becomes a follower of its term, with no leader known, and its
    /// pending reads fail. Any node may do this at any time without harming safety. No-op unless leading.
    public mutating func stepDown() {
        guard role == .leader else { return }
        becomeFollower(term: term, leader: .none)
    }

    /// The node leadership is being handed to, if a transfer is under way.
    public var leadershipTransferTarget: NodeID? { transferTarget }
}
