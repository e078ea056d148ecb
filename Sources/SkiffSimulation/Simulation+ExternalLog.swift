import SkiffExternal
import SkiffRaft

/// The external log in the simulation, driven the way the server drives it (`Node+ExternalLog`): a leader
/// attaches and mirrors with up to eight writes in flight, which land at later steps in any order; a node
/// about to campaign seals its term and adopts the tail; the store goes down and comes back, and now and
/// then (in mirror mode) is replaced by an empty one.
extension Simulation {
    /// One step of external-log work, chosen at random.
    func externalStep() throws(SafetyViolation) {
        switch random.below(1000) {
        case 0..<450: try landExternalWrite()
        case 450..<720: try driveMirror(leaderPosition)
        case 720..<800: keepExternalStoreShort(leaderPosition)
        case 800..<970: try serveReplay(randomUpNode())
        case 970..<972: if !options.witness { try replaceExternalStore() }
        default:
            external.isDown.toggle()
            note("external store \(external.isDown ? "down" : "up")")
        }
    }

    /// The operator stops every node, replaces the store with an empty one, and starts them again: leaders
    /// then find an external log that ends before their snapshots. Never in witness mode, where the store
    /// is a voter, and a voter that forgets its votes breaks Raft's guarantees.
    private func replaceExternalStore() throws(SafetyViolation) {
        let running = nodes.indices.filter { nodes[$0].isUp }
        for position in running { kill(position) }
        external = SimulatedExternalStore()
        checker.externalStoreReplaced()
        summary.externalReplacements += 1
        note("external store replaced by an empty one")
        for position in running { try restart(position) }
    }

    /// Attaches a leader that has not yet in its term (or must again), else starts batches up to eight at once.
    func driveMirror(_ position: Int?) throws(SafetyViolation) {
        guard let position, let core = nodes[position].core, core.isLeader, !external.isDown else { return }
        let term = core.term
        if nodes[position].mirror.attachedTerm != term || nodes[position].mirror.mustReattach {
            guard nodes[position].mirror.inFlight.isEmpty, core.leadsInADurableTerm else { return }
            try attach(position, term: term)
            return
        }
        if nodes[position].mirror.continuesFromSnapshot {
            let point = core.snapshotPoint
            guard external.snapshotIndex >= point.index.rawValue else { return }
            nodes[position].mirror.continuesFromSnapshot = false
            startWrite(position, .snapshot(term: Term(term), index: point.index, snapshotTerm: point.term), through: point.index, lastTerm: point.term)
        }
        while nodes[position].mirror.inFlight.count < 8, nodes[position].mirror.sentThrough < core.lastIndex.rawValue {
            let previous = nodes[position].mirror.sentThrough
            guard let previousTerm = core.term(at: LogIndex(previous)) else {
                nodes[position].mirror.mustReattach = true  // committed before the store was replaced, then compacted: attach decides
                return
            }
            let entries = core.entries(from: LogIndex(previous + 1), byteLimit: options.appendBytesMax)
            startWrite(position, .batch(term: Term(term), previousIndex: LogIndex(previous), previousTerm: previousTerm, entries: entries,
                                        commit: core.commitIndex), through: entries.last!.index, lastTerm: entries.last!.term)
        }
    }

    /// Puts `record` in flight to the leader's next slot; it brings the external log through `last`.
    private func startWrite(_ position: Int, _ record: ExternalRecord, through last: LogIndex, lastTerm: Term) {
        let slot = nodes[position].mirror.nextSlot
        nodes[position].mirror.nextSlot += 1
        nodes[position].mirror.sentThrough = last.rawValue
        nodes[position].mirror.inFlight.append((slot, last.rawValue, lastTerm, false))
        external.pending.append((nodes[position].id, nodes[position].restarts, slot, record))
    }

    private func attach(_ position: Int, term: UInt64) throws(SafetyViolation) {
        let view = try external(do: { () throws(ExternalLogError) in try external.read(keepsEntries: false) })
        guard view.admits(Term(term)) else {
            note("external: \(nodes[position].id) fenced at attach in term \(term)")
            summary.externalFences += 1
            nodes[position].core!.externalLogFenced(term: Term(term))
            return
        }
        let sealed = try external(do: { () throws(ExternalLogError) in try external.seal(Term(term - 1), keepsEntries: false)! })
        let core = nodes[position].core!
        let agreed = sealed.lastAgreement(with: core.term(at:), upTo: core.lastIndex)
        // The server refuses a store whose committed entries disagree with its log, and in witness mode any
        // store it has nothing in common with (one that lost its votes); here no store ever may.
        guard agreed != nil || (sealed.committedIndex < core.snapshotPoint.index && !options.witness) else {
            throw SafetyViolation(step: stepNumber, invariant: "the external log agrees with every leader's committed log",
                                  detail: "\(core.id) of term \(term), with a snapshot at \(core.snapshotPoint.index), finds it ending at "
                                      + "\(sealed.lastIndex)/\(sealed.lastTerm), committed through \(sealed.committedIndex), with no entry in common")
        }
        if nodes[position].mirror.attachedTerm != term { nodes[position].mirror.checkpointCandidates = [] }
        nodes[position].mirror.attachedTerm = term
        nodes[position].mirror.mustReattach = false
        nodes[position].mirror.nextSlot = sealed.nextSlot
        nodes[position].mirror.continuesFromSnapshot = agreed == nil
        nodes[position].mirror.sentThrough = (agreed ?? core.snapshotPoint.index).rawValue
        guard let agreed else {
            note("external: \(core.id) attached in term \(term) at slot \(sealed.nextSlot); it ends at \(sealed.lastIndex), "
                 + "before the snapshot at \(core.snapshotPoint.index)")
            return
        }
        note("external: \(core.id) attached in term \(term) at slot \(sealed.nextSlot), holding \(agreed)")
        nodes[position].core!.externalLogAppended(through: agreed, term: Term(term))
        try checker.noteCommit(by: nodes[position].core!, step: stepNumber)
    }

    /// Lands one write in flight (of a node not paused): it takes its slot, finds it taken, or fails because
    /// the store is down. The node hears the outcome only if it has not restarted since it started the write.
    func landExternalWrite() throws(SafetyViolation) {
        let candidates = external.pending.indices.filter { !paused.contains(external.pending[$0].node) }
        guard !candidates.isEmpty else { return }
        let pick = candidates[Int(random.below(UInt64(candidates.count)))]
        let write = external.pending.remove(at: pick)
        let landed = external.create(write.slot, write.record)
        if landed == true {
            if case .snapshot = write.record { summary.externalSnapshotRecords += 1 } else { summary.externalBatches += 1 }
        }
        guard let position = nodes.firstIndex(where: { $0.id == write.node }), nodes[position].isUp,
              nodes[position].restarts == write.incarnation else { return }
        let term = write.record.term.rawValue
        let mirrorPosition = nodes[position].mirror.inFlight.firstIndex { $0.slot == write.slot }!
        switch landed {
        case true?:
            nodes[position].mirror.inFlight[mirrorPosition].landed = true
        case false?:
            nodes[position].mirror.inFlight.remove(at: mirrorPosition)
            nodes[position].mirror.mustReattach = true
            let taker = external.slots[write.slot]!
            let deposes = if case .seal(let sealed) = taker { sealed.rawValue >= term } else { taker.term.rawValue > term }
            if deposes {
                note("external: \(write.node) deposed at slot \(write.slot)")
                summary.externalFences += 1
                nodes[position].mirror.attachedTerm = nil
                nodes[position].core!.externalLogFenced(term: Term(term))
            }
        case nil:
            nodes[position].mirror.inFlight.remove(at: mirrorPosition)
            nodes[position].mirror.mustReattach = true
        }
        while let first = nodes[position].mirror.inFlight.first, first.landed {
            nodes[position].mirror.inFlight.removeFirst()
            guard !nodes[position].mirror.mustReattach, nodes[position].mirror.attachedTerm == term else { continue }
            nodes[position].core!.externalLogAppended(through: LogIndex(first.last), term: Term(term))
            nodes[position].mirror.checkpointCandidates.append((first.slot + 1, LogIndex(first.last), first.lastTerm))
        }
        try checker.noteCommit(by: nodes[position].core!, step: stepNumber)
    }

    /// What `Node.maintainExternalStore` does, in one step: the attached leader uploads its newest snapshot,
    /// then trims behind the newest candidate whose base is committed, held by every voter and covered by the
    /// stored snapshot.
    func keepExternalStoreShort(_ position: Int?) {
        guard let position, let core = nodes[position].core, core.isLeader, !external.isDown,
              nodes[position].mirror.attachedTerm == core.term else { return }
        external.snapshotIndex = max(external.snapshotIndex, nodes[position].disk.snapshot?.index.rawValue ?? 0)
        let bound = core.clusterConfiguration.voters.reduce(core.commitIndex) { min($0, core.matchIndex(of: $1) ?? .zero) }
        guard let candidate = nodes[position].mirror.checkpointCandidates.last(where: {
            $0.base <= bound && $0.base.rawValue <= external.snapshotIndex
        }), candidate.base > nodes[position].mirror.trimmedThrough else { return }
        external.trim(to: ExternalCheckpoint(slot: candidate.slot, floor: Term(core.term), lastWriterTerm: Term(core.term),
                                             baseIndex: candidate.base, baseTerm: candidate.baseTerm))
        nodes[position].mirror.trimmedThrough = candidate.base
        nodes[position].mirror.checkpointCandidates.removeAll { $0.base <= candidate.base }
        summary.externalTrims += 1
        note("external: \(core.id) trimmed through \(candidate.base) at slot \(candidate.slot)")
    }

    /// Serves a node's oldest external tail request as the server does: seals its term and hands it the
    /// dead leader's tail; in witness mode, reads (a vote record will fence) and hands it the witness's log.
    func serveReplay(_ position: Int?) throws(SafetyViolation) {
        guard let position, !nodes[position].mirror.replayRequests.isEmpty else { return }
        let request = nodes[position].mirror.replayRequests.removeFirst()
        guard !external.isDown else {
            nodes[position].core!.campaignWithoutExternalTail()
            return
        }
        let core = nodes[position].core!
        let tail: ExternalTail?
        if options.witness {
            let view = try external(do: { () throws(ExternalLogError) in try external.read(keepsEntries: true) })
            tail = view.witnessTail(for: core.term(at:), lastIndex: core.lastIndex)
        } else {
            let view = try external(do: { () throws(ExternalLogError) in try external.seal(request.term, keepsEntries: true)! })
            tail = view.tail(for: core.term(at:), lastIndex: core.lastIndex)
        }
        guard let tail else {
            nodes[position].core!.campaignWithoutExternalTail()
            return
        }
        let before = core.lastIndex
        let last = nodes[position].core!.deliverExternalTail(tail)
        summary.externalAdopted += Int(last.rawValue - min(last.rawValue, before.rawValue))
        note("external: \(core.id) replayed in term \(request.term) and adopted through \(last) (tail of term \(tail.leaderTerm) after \(tail.previousIndex))")
    }

    /// Answers a message addressed to the witness, as the server does (`WitnessRules`), when it arrives: the
    /// store is read (and a vote record written) then, and the answer travels back like any message. No
    /// answer while the store is down, or to a node that crashed meanwhile.
    func answerAsWitness(_ message: Message) throws(SafetyViolation) {
        guard !external.isDown, let position = nodes.firstIndex(where: { $0.id == message.from }), let core = nodes[position].core else { return }
        var view = try external(do: { () throws(ExternalLogError) in try external.read(keepsEntries: false) })
        switch message.kind {
        case .requestVote(_, _, true, _):
            enqueueAnswer(WitnessRules.answerPreVote(message, view: view, candidateTerms: core.term(at:)))
        case .requestVote:
            let granted = try external(do: { () throws(ExternalLogError) in try external.append(WitnessRules.voteRecord(for: message), to: &view) })
            note("external: vote of term \(message.term) for \(message.from) \(granted ? "granted" : "refused") at slot \(view.nextSlot - 1)")
            if granted { summary.witnessVotes += 1 }
            enqueueAnswer(WitnessRules.answerVote(message, granted: granted))
        case .heartbeat:
            if let answer = WitnessRules.answerHeartbeat(message, view: view) {
                enqueueAnswer(answer)
            } else {
                note("external: \(message.from) fenced by the witness in term \(message.term)")
                nodes[position].core!.externalLogFenced(term: message.term)
            }
        default:
            throw SafetyViolation(step: stepNumber, invariant: "the core sends the witness only votes and heartbeats", detail: "\(message)")
        }
    }

    /// The committed log must be in the external log, as readers see it, whenever either changes; and a
    /// reader that starts at the newest checkpoint must see what a reader of every slot sees.
    func checkExternalLog() throws(SafetyViolation) {
        let changed = try external(do: { () throws(ExternalLogError) in try external.catchUpReader() })
        try checker.checkExternalLog(external.readerView, snapshotIndex: external.snapshotIndex, changed: changed, step: stepNumber)
        guard changed, external.readerStart != nil else { return }
        let whole = try external(do: { () throws(ExternalLogError) in try external.readWhole() })
        try checker.checkCheckpoint(external.readerView, against: whole, step: stepNumber)
    }

    private func external<T>(do body: () throws(ExternalLogError) -> T) throws(SafetyViolation) -> T {
        do { return try body() } catch {
            throw SafetyViolation(step: stepNumber, invariant: "a well-formed external log", detail: "\(error)")
        }
    }
}
