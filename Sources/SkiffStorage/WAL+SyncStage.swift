import Dispatch
import SkiffRaft
import Synchronization

/// A group commit that is written to its segment but not yet known to be durable.
struct WrittenGroup {
    /// The segment written to; nil when the group wrote nothing (an empty append).
    var file: (any StorageFile)?
    /// The size of the frame written.
    var bytes = 0
    /// Where the frame ends in its segment.
    var end: Int64 = 0
    /// Where the group's entries lie; nil when it held only a hard state.
    var frame: FrameRef?
    var entryTerms: [(UInt64, UInt64)]
    var hardState: HardState?
    var waiters: ArraySlice<WAL.Request>
}

/// Work handed from the writer to the sync stage, done in order.
enum SyncJob {
    case group(WrittenGroup)
    /// Signalled once every group handed over before it is durable and answered.
    case barrier(DispatchSemaphore)
    case stop
}

/// The sync stage's queue. `busy` is set while the stage works on jobs it has taken off `jobs`.
struct SyncQueue {
    var jobs: [SyncJob] = []
    var busy = false
    var isIdle: Bool { jobs.isEmpty && !busy }
}

/// The second stage of the writer. Under load the writer hands each written group here and goes on to
/// encode and write the next one while this stage waits for fdatasync, so the disk's flush and the
/// writer's CPU work (checksums, compression, copying) overlap instead of taking turns. One fdatasync
/// covers every group handed over before it started. Groups become readable and are answered strictly in
/// the order they were written.
///
/// When the stage is idle, the writer syncs a group itself if nothing else is queued (a lone append then
/// costs no extra thread hand-off) or if the group is small (below `handOverBytesMin`, encoding the next
/// group takes too little time for the overlap to pay for the hand-off). Every operation other than an
/// append (truncation, a new segment, compaction, close) first waits until the stage is idle, so it sees
/// the log exactly as written.
extension WAL {
    static let handOverBytesMin = 64 << 10

    func startSyncStage() {
        let thread = WriterThread(name: "skiff-wal-sync") { [self] in runSyncStage() }
        thread.start()
    }

    /// Makes `group` durable and answers its appenders: here and now when nothing is in flight or waiting,
    /// otherwise through the sync stage so the writer can go on.
    func finish(_ group: WrittenGroup, moreToWrite: Bool) {
        let inline = !moreToWrite && syncs.withLock(\.isIdle)
            && (group.bytes < Self.handOverBytesMin || queue.withLock(\.requests.isEmpty))
        if inline { complete([group]) } else { handOver(.group(group)) }
    }

    /// Returns once every group handed to the sync stage is durable and answered.
    func drainSyncStage() {
        guard !syncs.withLock(\.isIdle) else { return }
        let done = DispatchSemaphore(value: 0)
        handOver(.barrier(done))
        done.wait()
    }

    /// Ends the sync stage's thread; the stage must be drained.
    func stopSyncStage() {
        handOver(.stop)
    }

    private func handOver(_ job: SyncJob) {
        let wakeStage = syncs.withLock { queue in
            queue.jobs.append(job)
            return queue.jobs.count == 1
        }
        if wakeStage { syncWake.signal() }
    }

    private func runSyncStage() {
        while true {
            syncWake.wait()
            let jobs = syncs.withLock { queue in
                defer { queue.jobs.removeAll(keepingCapacity: true) }
                queue.busy = !queue.jobs.isEmpty
                return queue.jobs
            }
            var groups: [WrittenGroup] = []
            for job in jobs {
                switch job {
                case .group(let group):
                    groups.append(group)
                case .barrier(let done):
                    complete(groups)
                    groups.removeAll()
                    done.signal()
                case .stop:
                    precondition(groups.isEmpty, "the sync stage is drained before it stops")
                    return
                }
            }
            complete(groups)
            syncs.withLock { $0.busy = false }
        }
    }

    /// Syncs the groups' segment once, publishes the groups to readers in order, then answers them.
    private func complete(_ groups: [WrittenGroup]) {
        let files = groups.compactMap(\.file)
        if let file = files.last {
            // The writer drains this stage before it starts a new segment, so all groups share one file.
            assert(files.allSatisfy { $0 === file }, "groups waiting for one sync span two segments")
            if syncFile(file) { syncedEnd.store(groups.last { $0.file != nil }!.end, ordering: .releasing) }
        }
        readState.withLock { state in
            for group in groups {
                if let frame = group.frame { state.replay.append(frame: frame, terms: group.entryTerms) }
                if let hardState = group.hardState { state.replay.set(hardState: hardState) }
            }
        }
        for group in groups {
            for waiter in group.waiters { waiter.done(.success(())) }
        }
    }
}
