import Logging
import SkiffExternal
import SkiffRaft

/// The node's side of witness mode (see the ExternalLog article): the core addresses vote requests and
/// heartbeats to the witness like to any voter, and the node answers them for the store, by
/// `WitnessRules`, from its own reading of the external log.
///
/// One store call at a time: a vote request writes a vote record alone; pre-votes and heartbeats that wait
/// together share one read, which starts after each of them was sent, as a heartbeat's answer must.
struct WitnessPeer {
    let log: ExternalLog
    var busy = false
    var waiting: [Message] = []
    var votesGranted: UInt64 = 0
    static let waitingMax = 64

    init(store: any ExternalStore) {
        log = ExternalLog(store: store, keepsEntries: false)
    }
}

extension Node {
    func sendToWitness(_ message: Message) {
        witness!.waiting.append(message)
        // While a store call hangs, the oldest requests are dropped, as a congested link drops messages.
        if witness!.waiting.count > WitnessPeer.waitingMax { witness!.waiting.removeFirst() }
        serveWitness()
    }

    private func serveWitness() {
        guard let peer = witness, !peer.busy, let first = peer.waiting.first, !stopped else { return }
        witness!.busy = true
        let log = peer.log
        if case .requestVote(let lastIndex, let lastTerm, false, _) = first.kind {
            witness!.waiting.removeFirst()
            Task {
                let result = await outcome { () async throws(ExternalLogError) in
                    try await log.vote(term: first.term, candidate: first.from, lastIndex: lastIndex, lastTerm: lastTerm)
                }
                loop.execute { [self] in
                    if case .success(let granted) = result {
                        if granted { witness!.votesGranted += 1 }
                        logger.info("asked the witness for its vote", metadata: ["term": "\(first.term)", "granted": "\(granted)"])
                        stepWitnessAnswer(WitnessRules.answerVote(first, granted: granted))
                    }
                    witnessCallEnded(result.map { _ in () })
                }
            }
            return
        }
        let count = peer.waiting.prefix { if case .requestVote(_, _, false, _) = $0.kind { false } else { true } }.count
        let batch = Array(peer.waiting.prefix(count))
        witness!.waiting.removeFirst(count)
        Task {
            let result = await outcome { () async throws(ExternalLogError) in try await log.catchUp() }
            loop.execute { [self] in
                if case .success(let view) = result {
                    for request in batch { answerFromWitness(request, view: view) }
                }
                witnessCallEnded(result.map { _ in () })
            }
        }
    }

    private func answerFromWitness(_ request: Message, view: ExternalLogView) {
        switch request.kind {
        case .requestVote:
            stepWitnessAnswer(WitnessRules.answerPreVote(request, view: view, candidateTerms: core.term(at:)))
        case .heartbeat:
            if let answer = WitnessRules.answerHeartbeat(request, view: view) {
                stepWitnessAnswer(answer)
            } else if core.isLeader && core.term == request.term.rawValue {
                logger.warning("the witness moved past this leader's term; stepping down",
                               metadata: ["term": "\(request.term)", "witness-term": "\(view.witnessTerm)"])
                core.externalLogFenced(term: request.term)
            }
        default:
            preconditionFailure("the core sends the witness only votes and heartbeats: \(request)")
        }
    }

    private func stepWitnessAnswer(_ answer: Message) {
        do { try core.step(answer) } catch {
            logger.warning("dropped an invalid witness answer", metadata: ["error": "\(error)"])
        }
    }

    /// A failed call goes unanswered, as a lost message: the core asks again (heartbeats every tick,
    /// elections after a timeout).
    private func witnessCallEnded(_ result: Result<Void, ExternalLogError>) {
        witness!.busy = false
        if case .failure(let error) = result, external?.lastError != error.description {
            external?.lastError = error.description
            logger.warning("the witness could not be asked", metadata: ["error": "\(error)"])  // once per distinct error
        }
        serveWitness()
        scheduleReady()
    }
}
