import NIOCore
import SkiffKV
import SkiffRaft
import SkiffTransport

extension Node {
    /// Replicates `command`; `completion` runs on the loop once it is applied here, or with why it was not.
    /// `between` is for a transaction: it runs between its writes when this node applies it.
    public func submitWrite(_ command: KVCommand, between: ((Int) -> Void)? = nil,
                            completion: @escaping (Result<KVReply, WriteFailure>) -> Void) {
        guard !stopped else { return completion(.failure(.shuttingDown)) }
        let origin = id.rawValue
        serverMetrics.writes.increment()
        let bytesMax = configuration.limits.bulkBytesMax * 2
        if command.payloadBytes > bytesMax { return completion(.failure(.tooLarge(limit: bytesMax))) }
        writes.add(payload: { KVProposal(origin: origin, requestID: $0, command: command).encoded() },
                   deadline: .now() + timeAmount(configuration.requestTimeout), between: between, completion: completion)
        scheduleReady()
    }

    /// Runs `read` once this node's key space reflects every write acknowledged before now (ReadIndex), or
    /// `fail` if no leader confirms it in time.
    public func submitRead(_ read: @escaping () -> Void, fail: @escaping () -> Void) {
        guard !stopped else { return fail() }
        reads.add(ReadWaiters.Waiter(run: read, fail: fail, deadline: .now() + timeAmount(configuration.requestTimeout)))
        scheduleReady()
    }

    /// Writes `connection`'s ready replies in a loop task of its own, together with every other connection
    /// that has some by then, so that a commit answering many clients costs one task, not one per client.
    func flushSoon(_ connection: ClientHandler) {
        connectionsToFlush.append(connection)
        guard connectionsToFlush.count == 1 else { return }
        loop.execute { [self] in
            var flushed = 0
            while flushed < connectionsToFlush.count {  // one flushed may add another: it goes out in this task too
                let connection = connectionsToFlush[flushed]
                connection.flushScheduledReplies()
                flushed += 1
            }
            connectionsToFlush.removeAll(keepingCapacity: true)
        }
    }

    /// Starts a watch of `prefix` from revision `from` (from the next change if nil). `deliver` gets each batch
    /// of events; `cut` is called, instead, if the node ends the watch (the watch is then already gone).
    func startWatch(prefix: [UInt8], from: UInt64?, deliver: @escaping ([WatchEvent]) -> Void,
                    cut: @escaping (String) -> Void) -> Result<(id: Int64, from: UInt64), WatchRefusal> {
        guard !stopped else { return .failure(WatchRefusal(message: "TRYAGAIN the server is shutting down; watch another member")) }
        return watches.add(prefix: prefix, from: from, appliedIndex: storeIndex, deliver: deliver, cut: cut)
    }

    func stopWatch(_ id: Int64) { watches.remove(id) }

    /// Proposes (on the leader) or forwards (to the leader) every queued write, as one batch.
    func flushWrites() {
        guard writes.hasQueued, !stopped else { return }
        if core.isLeader {
            let (ids, payloads) = writes.takeQueued()
            switch core.propose(batch: payloads) {
            case .success(let indices):
                writes.proposed(ids, firstIndex: indices.lowerBound.rawValue)
                serverMetrics.proposals.increment(by: Int64(ids.count))
            case .failure: writes.requeue(ids)  // a leadership transfer is under way: the next tick retries
            }
        } else if core.leader != .none, transport.isConnected(to: core.leader), NIODeadline.now() >= forwardingPausedUntil {
            let (ids, payloads) = writes.takeQueued()
            // Batches of at most about 8 MiB, well inside the peer frame limit.
            var start = 0
            while start < ids.count {
                var end = start
                var bytes = 0
                while end < ids.count, end == start || bytes + payloads[end].count <= 8 << 20 {
                    bytes += payloads[end].count
                    end += 1
                }
                let batch = writes.forwarded(Array(ids[start..<end]), to: core.leader)
                if !transport.send(.forward(batch: batch, payloads: Array(payloads[start..<end])), to: core.leader) {
                    writes.forwardAnswered(batch: batch, firstIndex: 0, term: 0)
                }
                start = end
            }
        }
    }

    func flushReads() {
        guard !stopped else { return }
        reads.submit(to: &core)
    }

    /// A follower's writes: proposed as one batch if this node leads, refused otherwise (the follower then
    /// retries with the leader it learns of; refusing is safe because nothing was appended).
    func answerForward(batch: UInt64, payloads: [[UInt8]], from peer: NodeID) {
        guard payloads.allSatisfy({ KVProposal(decoding: $0) != nil }) else {
            logger.warning("refused forwarded writes that do not decode", metadata: ["peer": "\(name(of: peer))"])
            transport.send(.forwardAnswer(batch: batch, firstIndex: .zero, term: .zero, leader: core.leader), to: peer)
            return
        }
        switch core.propose(batch: payloads) {
        case .success(let indices):
            serverMetrics.proposals.increment(by: Int64(payloads.count))
            transport.send(.forwardAnswer(batch: batch, firstIndex: indices.lowerBound, term: Term(core.term), leader: id), to: peer)
        case .failure:
            transport.send(.forwardAnswer(batch: batch, firstIndex: .zero, term: .zero, leader: core.leader), to: peer)
        }
    }
}

func timeAmount(_ duration: Duration) -> TimeAmount {
    .nanoseconds(Int64(duration.components.seconds) * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
}
