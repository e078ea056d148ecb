import Logging
import NIOCore
import SkiffExternal
import SkiffRaft

/// The node's link to the external log (see the ExternalLog article of SkiffExternal).
///
/// As leader it mirrors its log there in batches, several slots at once, and reports to the core how far
/// the external log holds its log without a gap; the core commits only that far. A fenced write makes it
/// step down. Before campaigning it seals the term it is in and hands the core the dead leader's tail.
struct ExternalMirror {
    let store: any ExternalStore
    /// The store's id, as this node claimed it at start (nil only if its data directory lost the record since).
    let storeID: String?
    /// The leader's handle, which keeps only the terms of what it read.
    let log: ExternalLog
    /// The term this node attached in as leader, once `attach` returned.
    var attachedTerm: UInt64?
    var attaching = false
    /// A write failed or found its slot taken: what landed after it may not count, so attach again first.
    var mustReattach = false
    /// The slot for the next batch.
    var nextSlot: UInt64 = 0
    /// The last index handed to a batch. (How far the external log holds the log is the core's to know.)
    var sentThrough: UInt64 = 0
    /// The attach found nothing in common with this leader's compacted log: once a snapshot reaching the
    /// leader's is in the store, the next slot says the log continues from there; nothing is written before.
    var continuesFromSnapshot = false
    /// Batches being written, in slot order, each with its last entry's index and term, and whether it landed.
    var inFlight: [(slot: UInt64, last: UInt64, lastTerm: Term, landed: Bool)] = []
    /// After a failure, nothing is retried before this.
    var retryAt = NIODeadline.uptimeNanoseconds(0)
    var lastError: String?
    var replays: UInt64 = 0
    var adoptedEntries: UInt64 = 0
    /// Where this leader could put a checkpoint: the slot after each of its batches that landed and counted,
    /// with the index and term that batch ended at, oldest first (see `ExternalCheckpoint`).
    var checkpointCandidates: [(slot: UInt64, base: LogIndex, baseTerm: Term)] = []
    /// The newest snapshot known to be in the store, once looked up, and the base of the last trim.
    var storedSnapshot: ExternalSnapshotID?
    var knowsStoredSnapshot = false
    var trimmedThrough = LogIndex.zero
    /// An upload or a trim is under way; the next one is considered no earlier than `housekeepingAt`.
    var housekeeping = false
    var housekeepingAt = NIODeadline.uptimeNanoseconds(0)
    /// When housekeeping next looks for uploads that crashed writers left in the store (at once at first).
    var tidyAt = NIODeadline.uptimeNanoseconds(0)

    /// Payload bytes in one batch, at most (one entry always goes), and batches in flight at once.
    static let batchBytesMax = 4 << 20
    static let inFlightMax = 8
    static let retryDelay = TimeAmount.milliseconds(100)
    static let housekeepingRetryDelay = TimeAmount.seconds(1)
    static let housekeepingCheckInterval = TimeAmount.milliseconds(100)
    static let tidyInterval = TimeAmount.minutes(10)
    /// A file in the store's `tmp/` untouched this long is taken as abandoned: an upload writes its chunks
    /// one after another, so a live one is touched every few milliseconds. One that was only paused this
    /// long fails to publish and is uploaded again.
    static let abandonedUploadSeconds = 900.0
    /// Checkpoint candidates kept, at most: the oldest go first (trimming then waits for a newer one).
    static let checkpointCandidatesMax = 1024

    init(store: any ExternalStore, storeID: String?) {
        self.store = store
        self.storeID = storeID
        log = ExternalLog(store: store, keepsEntries: false)
    }
}

/// What INFO reports of the external log.
public struct ExternalStatus: Sendable {
    public var store: String
    /// The store's id (`ExternalStoreOwner.store`): a node that joins checks that its store is this one.
    public var storeID: String?
    /// How far the external log holds this leader's log without a gap; nil unless this node leads (only the
    /// leader mirrors, so a follower has no figure to give).
    public var mirroredIndex: UInt64?
    public var snapshotIndex: UInt64?
    public var trimmedThrough: UInt64
    public var lastError: String?
    public var replays: UInt64
    public var adoptedEntries: UInt64
    /// Votes the witness granted to this node's campaigns; nil unless in witness mode.
    public var witnessVotes: UInt64?
}

extension Node {
    var externalStatus: ExternalStatus? {
        external.map { ExternalStatus(store: $0.store.description, storeID: $0.storeID, mirroredIndex: core.isLeader ? core.externalLogIndex.rawValue : nil,
                                      snapshotIndex: $0.storedSnapshot?.index, trimmedThrough: $0.trimmedThrough.rawValue,
                                      lastError: $0.lastError, replays: $0.replays, adoptedEntries: $0.adoptedEntries,
                                      witnessVotes: witness?.votesGranted) }
    }

    /// Starts external writes while this node leads and the external log lags its log.
    func driveMirror() {
        maintainExternalStore()
        guard let mirror = external, core.isLeader, !mirror.attaching, !stopped, NIODeadline.now() >= mirror.retryAt else { return }
        let term = core.term
        if mirror.attachedTerm != term || mirror.mustReattach {
            // The writes out finish first, and the term must be on disk (the core's no-op entry persisted).
            guard mirror.inFlight.isEmpty, core.leadsInADurableTerm else { return }
            external!.attaching = true
            let log = mirror.log
            Task {
                // Read first: the attach's seal goes only into a log this leader may continue.
                let read = await outcome { () async throws(ExternalLogError) in try await log.catchUp() }
                loop.execute { [self] in
                    if case .failure(let refusal) = read.flatMap(continuation(of:)) {
                        external!.attaching = false
                        failed(refusal, term: term)
                        return
                    }
                    Task {
                        let result = await outcome { () async throws(ExternalLogError) in try await log.attach(asLeaderOf: Term(term)) }
                        loop.execute { [self] in attached(result, term: term) }
                    }
                }
            }
            return
        }
        if mirror.continuesFromSnapshot {
            let point = core.snapshotPoint
            // Housekeeping uploads the leader's snapshot; a reader restoring from the store needs it.
            guard let stored = mirror.storedSnapshot, stored.index >= point.index.rawValue else { return }
            external!.continuesFromSnapshot = false
            startWrite(through: point.index, lastTerm: point.term, term: term) { log, slot throws(ExternalLogError) in
                try await log.writeSnapshot(term: Term(term), index: point.index, snapshotTerm: point.term, slot: slot)
            }
        }
        while external!.inFlight.count < ExternalMirror.inFlightMax, external!.sentThrough < core.lastIndex.rawValue {
            let previous = external!.sentThrough
            guard let previousTerm = core.term(at: LogIndex(previous)) else {
                // Entries committed before the store was new (or missing) were compacted before they reached it.
                // Attaching again decides, as for any log this leader has nothing in common with, whether and
                // how to continue it (with a snapshot record, and never in witness mode).
                external!.mustReattach = true
                return
            }
            let entries = core.entries(from: LogIndex(previous + 1), byteLimit: ExternalMirror.batchBytesMax)
            let commit = core.commitIndex
            startWrite(through: entries.last!.index, lastTerm: entries.last!.term, term: term) { log, slot throws(ExternalLogError) in
                try await log.write(term: Term(term), previousIndex: LogIndex(previous), previousTerm: previousTerm,
                                    entries: entries, commit: commit, slot: slot)
            }
        }
    }

    /// Writes the next slot with `write`, a record that brings the external log through `last`.
    private func startWrite(through last: LogIndex, lastTerm: Term, term: UInt64,
                            _ write: @escaping @Sendable (ExternalLog, UInt64) async throws(ExternalLogError) -> Bool) {
        let slot = external!.nextSlot
        external!.nextSlot += 1
        external!.sentThrough = last.rawValue
        external!.inFlight.append((slot, last.rawValue, lastTerm, false))
        let log = external!.log
        Task {
            let result = await outcome { () async throws(ExternalLogError) in try await write(log, slot) }
            loop.execute { [self] in written(result, slot: slot, term: term) }
        }
    }

    /// Where this leader continues `view`: after the last position where both logs hold the same term (by
    /// Log Matching, everything up to there is already held), or, if there is none, from its snapshot (nil).
    /// Fails if it must not write there at all.
    private func continuation(of view: ExternalLogView) -> Result<LogIndex?, ExternalLogError> {
        if let agreed = view.lastAgreement(with: core.term(at:), upTo: core.lastIndex) { return .success(agreed) }
        // No agreement: this log was compacted while the store was missing, or the store is new. Unless the
        // store knows of committed entries at or past the snapshot: this cluster's would agree with them.
        let snapshot = core.snapshotPoint.index
        guard view.committedIndex < snapshot else {
            return .failure(.unavailable("the external log's entries through \(view.committedIndex) are committed but disagree with "
                                         + "this cluster's log: is it another cluster's store?"))
        }
        guard witness == nil else {
            return .failure(.unavailable("the external log ends before this leader's snapshot at \(snapshot): the witness lost this "
                                         + "cluster's log (a new or replaced store?) and the votes it cast with it; continuing could break "
                                         + "Raft's guarantees"))
        }
        return .success(nil)
    }

    private func attached(_ result: Result<ExternalLogView, ExternalLogError>, term: UInt64) {
        external!.attaching = false
        switch result.flatMap({ view in continuation(of: view).map { (view, $0) } }) {
        case .success(let (view, agreed)):
            if external!.attachedTerm != term { external!.checkpointCandidates = [] }
            external!.attachedTerm = term
            external!.mustReattach = false
            external!.nextSlot = view.nextSlot
            external!.continuesFromSnapshot = agreed == nil
            external!.sentThrough = (agreed ?? core.snapshotPoint.index).rawValue
            external!.lastError = nil
            if let agreed {
                logger.info("attached to the external log", metadata: ["store": "\(external!.store)", "term": "\(term)", "held": "\(agreed)"])
                core.externalLogAppended(through: agreed, term: Term(term))
            } else {
                logger.notice("attached to an external log with no entry in common with this leader's log; continuing it from the snapshot",
                              metadata: ["store": "\(external!.store)", "term": "\(term)", "external-last": "\(view.lastIndex)",
                                         "snapshot": "\(core.snapshotPoint.index)"])
            }
        case .failure(let error):
            failed(error, term: term)
        }
        scheduleReady()
    }

    private func written(_ result: Result<Bool, ExternalLogError>, slot: UInt64, term: UInt64) {
        let position = external!.inFlight.firstIndex { $0.slot == slot }!
        switch result {
        case .success(true):
            external!.inFlight[position].landed = true
        case .success(false):
            external!.inFlight.remove(at: position)
            external!.mustReattach = true
            logger.notice("an external log slot was taken by an earlier term or trimmed; attaching again", metadata: ["slot": "\(slot)"])
        case .failure(let error):
            external!.inFlight.remove(at: position)
            external!.mustReattach = true
            failed(error, term: term)
        }
        // Report what landed with no gap before it; after a failure only a new attach tells what counts.
        while let first = external!.inFlight.first, first.landed {
            external!.inFlight.removeFirst()
            guard !external!.mustReattach, external!.attachedTerm == term else { continue }
            external!.lastError = nil
            core.externalLogAppended(through: LogIndex(first.last), term: Term(term))
            // After this batch the external log is this leader's log through its end, with the floor at its term.
            external!.checkpointCandidates.append((first.slot + 1, LogIndex(first.last), first.lastTerm))
            if external!.checkpointCandidates.count > ExternalMirror.checkpointCandidatesMax { external!.checkpointCandidates.removeFirst() }
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
    /// dead leader's late append. In witness mode it only reads (the vote record the campaign writes is what
    /// fences) and delivers the witness's log after the last agreement. If the store fails, the core
    /// campaigns at once without a tail.
    func replayExternalTail(_ request: ExternalTailRequest) {
        guard let mirror = external else { return }
        let reader = ExternalLog(store: mirror.store, keepsEntries: true)
        let witnessMode = witness != nil
        Task {
            let result = await outcome { () async throws(ExternalLogError) in
                witnessMode ? try await reader.catchUp() : try await reader.seal(term: request.term)
            }
            loop.execute { [self] in
                switch result {
                case .success(let view): deliverTail(of: view)
                case .failure(let error):
                    external!.lastError = error.description
                    logger.warning("could not read the external log; campaigning without it", metadata: ["error": "\(error)"])
                    core.campaignWithoutExternalTail()
                    scheduleReady()
                }
            }
        }
    }

    private func deliverTail(of view: ExternalLogView) {
        external!.replays += 1
        // The tail starts after the last position where both logs agree; the core adopts what extends its log.
        let tail = witness == nil ? view.tail(for: core.term(at:), lastIndex: core.lastIndex)
            : view.witnessTail(for: core.term(at:), lastIndex: core.lastIndex)
        guard let tail else {
            core.campaignWithoutExternalTail()  // nothing joins: the external log starts after this log
            scheduleReady()
            return
        }
        let before = core.lastIndex
        let last = core.deliverExternalTail(tail)
        let adopted = last.rawValue - min(before.rawValue, last.rawValue)
        external!.adoptedEntries += adopted
        logger.info("replayed the external log before campaigning", metadata: [
            "external-last": "\(view.lastIndex)/\(view.lastTerm)", "writer-term": "\(view.lastWriterTerm)", "adopted": "\(adopted)",
        ])
        scheduleReady()
    }
}

/// The outcome of an external log call, to carry back to the event loop.
func outcome<T>(_ body: () async throws(ExternalLogError) -> T) async -> Result<T, ExternalLogError> {
    do { return .success(try await body()) } catch { return .failure(error) }
}
