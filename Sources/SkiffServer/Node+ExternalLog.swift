import Logging
import NIOCore
import SkiffExternal
import SkiffRaft

/// The node's link to the external log (see the ExternalLog article of SkiffExternal).
///
/// As leader it mirrors its log there in batches, one write at a time, and reports each to the core, which
/// commits only what the external log holds; a fenced write makes it step down. Before campaigning it seals
/// the term it is in and hands the core the dead leader's tail to adopt.
struct ExternalMirror {
    let store: any ExternalStore
    /// The leader's handle, which keeps only the terms of what it read.
    let log: ExternalLog
    /// The term this node attached in as leader, once `attach` returned.
    var attachedTerm: UInt64?
    /// The last index of this leader's log that the external log holds.
    var mirroredThrough: UInt64 = 0
    /// A call on `log` is running.
    var busy = false
    /// After a failure, nothing is retried before this.
    var retryAt = NIODeadline.uptimeNanoseconds(0)
    var lastError: String?
    var replays: UInt64 = 0
    var adoptedEntries: UInt64 = 0

    /// Payload bytes in one batch, at most (one entry always goes).
    static let batchBytesMax = 4 << 20
    static let retryDelay = TimeAmount.milliseconds(100)

    init(store: any ExternalStore) {
        self.store = store
        log = ExternalLog(store: store, keepsEntries: false)
    }
}

/// What INFO reports of the external log.
public struct ExternalStatus: Sendable {
    public var store: String
    public var mirroredIndex: UInt64
    public var lastError: String?
    public var replays: UInt64
    public var adoptedEntries: UInt64
}

extension Node {
    var externalStatus: ExternalStatus? {
        external.map { ExternalStatus(store: $0.store.description, mirroredIndex: $0.mirroredThrough, lastError: $0.lastError,
                                      replays: $0.replays, adoptedEntries: $0.adoptedEntries) }
    }

    /// Starts the next external write if this node leads and the external log lags its log.
    func driveMirror() {
        guard let mirror = external, core.isLeader, !mirror.busy, !stopped, NIODeadline.now() >= mirror.retryAt else { return }
        let term = core.term
        guard mirror.attachedTerm == term else {
            external!.busy = true
            let log = mirror.log
            Task {
                let result = await outcome { () async throws(ExternalLogError) in try await log.attach(asLeaderOf: Term(term)) }
                loop.execute { [self] in attached(result, term: term) }
            }
            return
        }
        let first = mirror.mirroredThrough + 1
        guard first <= core.lastIndex.rawValue else { return }
        guard let previousTerm = core.term(at: LogIndex(first - 1)) else {
            // A snapshot compacted entries committed in an earlier term before this leader could mirror them.
            failed(.unavailable("entries after \(first - 1) were compacted before they reached the external log; "
                                + "mirroring from a snapshot is not supported yet"), term: term)
            return
        }
        let entries = core.entries(from: LogIndex(first), byteLimit: ExternalMirror.batchBytesMax)
        external!.busy = true
        let log = mirror.log
        Task {
            let result = await outcome { () async throws(ExternalLogError) in
                try await log.append(term: Term(term), previousIndex: LogIndex(first - 1), previousTerm: previousTerm, entries: entries)
            }
            loop.execute { [self] in appended(result, through: entries.last!.index, term: term) }
        }
    }

    private func attached(_ result: Result<ExternalLogView, ExternalLogError>, term: UInt64) {
        external!.busy = false
        switch result {
        case .success(let view):
            // Continue after the last position where the external log and this leader's log agree: by log
            // matching, everything up to there is already held.
            var agreed = min(view.lastIndex, core.lastIndex)
            while agreed > .zero, let externalTerm = view.term(at: agreed), core.term(at: agreed) != externalTerm {
                agreed = agreed.previous
            }
            guard view.term(at: agreed) == core.term(at: agreed), core.term(at: agreed) != nil else {
                failed(.unavailable("the external log ends at \(view.lastIndex), before this leader's log starts at "
                                    + "\(core.firstIndex); mirroring from a snapshot is not supported yet"), term: term)
                return
            }
            external!.attachedTerm = term
            external!.mirroredThrough = agreed.rawValue
            external!.lastError = nil
            logger.info("attached to the external log", metadata: ["store": "\(external!.store)", "term": "\(term)", "held": "\(agreed)"])
            core.externalLogAppended(through: agreed, term: Term(term))
        case .failure(let error):
            failed(error, term: term)
        }
        scheduleReady()
    }

    private func appended(_ result: Result<Void, ExternalLogError>, through last: LogIndex, term: UInt64) {
        external!.busy = false
        switch result {
        case .success:
            external!.lastError = nil
            if external!.attachedTerm == term { external!.mirroredThrough = last.rawValue }
            core.externalLogAppended(through: last, term: Term(term))
        case .failure(let error):
            failed(error, term: term)
        }
        scheduleReady()
    }

    private func failed(_ error: ExternalLogError, term: UInt64) {
        external!.lastError = error.description
        if case .deposed = error {
            logger.warning("the external log fenced this leader off; stepping down", metadata: ["term": "\(term)", "reason": "\(error)"])
            external!.attachedTerm = nil
            core.externalLogFenced(term: Term(term))
            return
        }
        logger.warning("external log write failed; writes wait until it succeeds", metadata: ["error": "\(error)"])
        external!.retryAt = .now() + ExternalMirror.retryDelay
        loop.scheduleTask(in: ExternalMirror.retryDelay) { [self] in scheduleReady() }
    }

    /// Seals the term the core is in and delivers what the external log holds beyond its log, as the
    /// dead leader's late append. If the store fails, nothing is delivered and the core campaigns after its wait.
    func replayExternalTail(_ request: ExternalTailRequest) {
        guard let mirror = external else { return }
        let reader = ExternalLog(store: mirror.store, keepsEntries: true)
        Task {
            let result = await outcome { () async throws(ExternalLogError) in try await reader.seal(term: request.term) }
            loop.execute { [self] in
                switch result {
                case .success(let view): deliverTail(of: view)
                case .failure(let error):
                    external!.lastError = error.description
                    logger.warning("could not read the external log before campaigning", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    private func deliverTail(of view: ExternalLogView) {
        external!.replays += 1
        // The tail starts after the last position where both logs agree; the core adopts what extends its log.
        var previous = min(view.lastIndex, core.lastIndex)
        while previous > view.baseIndex, view.term(at: previous) != core.term(at: previous) { previous = previous.previous }
        guard let previousTerm = view.term(at: previous), core.term(at: previous) == previousTerm else {
            // Nothing joins this log (the external log starts after it): campaign without adopting anything.
            core.deliverExternalTail(ExternalTail(leaderTerm: .zero, previousIndex: .zero, previousTerm: .zero, entries: []))
            scheduleReady()
            return
        }
        let entries = view.entries.filter { $0.index > previous }
        let before = core.lastIndex
        let last = core.deliverExternalTail(ExternalTail(leaderTerm: view.lastWriterTerm, previousIndex: previous,
                                                         previousTerm: previousTerm, entries: entries))
        let adopted = last.rawValue - min(before.rawValue, last.rawValue)
        external!.adoptedEntries += adopted
        logger.info("replayed the external log before campaigning", metadata: [
            "external-last": "\(view.lastIndex)/\(view.lastTerm)", "writer-term": "\(view.lastWriterTerm)", "adopted": "\(adopted)",
        ])
        scheduleReady()
    }
}

/// The outcome of an external log call, to carry back to the event loop.
private func outcome<T>(_ body: () async throws(ExternalLogError) -> T) async -> Result<T, ExternalLogError> {
    do { return .success(try await body()) } catch { return .failure(error) }
}
