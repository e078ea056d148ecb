import Logging
import NIOCore
import SkiffExternal
import SkiffRaft

extension Node {
    /// While this node leads and is attached: puts its newest snapshot in the external store, and trims the
    /// external log behind the newest snapshot there, never past an entry that is uncommitted or that some
    /// voter lacks; every `tidyInterval`, removes the uploads that crashed writers left behind. One round at a
    /// time; a failed round is retried a second later.
    func maintainExternalStore() {
        let now = NIODeadline.now()
        guard let mirror = external, core.isLeader, mirror.attachedTerm == core.term, !mirror.housekeeping, !stopped,
              !snapshots.saving, now >= mirror.housekeepingAt else { return }
        // Looked at no more often than this: it scans the candidates, and runs from the Ready loop.
        external!.housekeepingAt = now + ExternalMirror.housekeepingCheckInterval
        let localIndex = snapshots.lastIndex
        let upload = !mirror.knowsStoredSnapshot || localIndex > mirror.storedSnapshot?.index ?? 0
        let bound = core.clusterConfiguration.voters.reduce(core.commitIndex) { min($0, core.matchIndex(of: $1) ?? .zero) }
        let reachable = max(localIndex, mirror.storedSnapshot?.index ?? 0)
        let candidate = mirror.checkpointCandidates.last { $0.base <= bound && $0.base.rawValue <= reachable }
        let trim = candidate.map { $0.base > mirror.trimmedThrough } ?? false
        let tidy = now >= mirror.tidyAt
        guard upload || trim || tidy else { return }
        if tidy { external!.tidyAt = now + ExternalMirror.tidyInterval }

        let checkpoint = trim ? candidate.map { ExternalCheckpoint(slot: $0.slot, floor: Term(core.term), lastWriterTerm: Term(core.term),
                                                                    baseIndex: $0.base, baseTerm: $0.baseTerm) } : nil
        let (store, log, storage) = (mirror.store, mirror.log, storage)
        external!.housekeeping = true
        Task {
            // A step of its own: what it cannot remove must not hold up the snapshot or the trim.
            let tidied = tidy ? await outcome { () async throws(ExternalLogError) in
                try await store.removeAbandonedUploads(untouchedFor: ExternalMirror.abandonedUploadSeconds)
            } : nil
            let result = await outcome { () async throws(ExternalLogError) -> (stored: ExternalSnapshotID?, trimmed: LogIndex?) in
                var stored = try await store.snapshots().first
                // Listed here, off the event loop; a snapshot file pruned meanwhile fails the round, which is retried.
                if upload, let local = (try? storage.snapshots.list())?.first, local.index.rawValue > stored?.index ?? 0 {
                    let id = ExternalSnapshotID(index: local.index.rawValue, term: local.term.rawValue)
                    try await ExternalSnapshotTransfer.upload(file: local.path, as: id, to: store)
                    stored = id
                }
                guard let checkpoint, checkpoint.baseIndex.rawValue <= stored?.index ?? 0 else { return (stored, nil) }
                try await log.trim(to: checkpoint)
                return (stored, checkpoint.baseIndex)
            }
            loop.execute { [self] in
                if let tidied { reportTidying(tidied) }
                housekept(result)
            }
        }
    }

    private func reportTidying(_ result: Result<AbandonedUploads, ExternalLogError>) {
        switch result {
        case .success(let report):
            if !report.removed.isEmpty {
                logger.notice("removed what crashed writers had left half written in the external store",
                              metadata: ["files": "\(report.removed.sorted().joined(separator: ", "))"])
            }
            if !report.failures.isEmpty {
                logger.warning("could not remove what crashed writers left in the external store",
                               metadata: ["failures": "\(report.failures.joined(separator: "; "))"])
            }
        case .failure(let error):
            logger.warning("could not look for what crashed writers left in the external store", metadata: ["error": "\(error)"])
        }
    }

    private func housekept(_ result: Result<(stored: ExternalSnapshotID?, trimmed: LogIndex?), ExternalLogError>) {
        external!.housekeeping = false
        switch result {
        case .success(let outcome):
            if outcome.stored != external!.storedSnapshot, let stored = outcome.stored {
                logger.info("the external store holds a snapshot", metadata: ["index": "\(stored.index)", "term": "\(stored.term)"])
            }
            external!.storedSnapshot = outcome.stored
            external!.knowsStoredSnapshot = true
            if let trimmed = outcome.trimmed {
                external!.trimmedThrough = trimmed
                external!.checkpointCandidates.removeAll { $0.base <= trimmed }
                logger.info("trimmed the external log", metadata: ["through": "\(trimmed)"])
            }
        case .failure(let error):
            external!.lastError = error.description
            external!.housekeepingAt = .now() + ExternalMirror.housekeepingRetryDelay
            logger.warning("could not upload a snapshot to, or trim, the external log", metadata: ["error": "\(error)"])
        }
        scheduleReady()
    }
}
