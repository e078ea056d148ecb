import Logging
import NIOCore
import SkiffKV
import SkiffRaft
import SkiffStorage
import SkiffTransport

/// Snapshots taken, being sent, and being received.
struct SnapshotState {
    /// The index of the newest snapshot file.
    var lastIndex: UInt64
    /// A snapshot is being written (taken here or installed from the leader).
    var saving = false

    init(lastIndex: UInt64) { self.lastIndex = lastIndex }

    struct Incoming {
        var index: LogIndex
        var term: Term
        var nextOffset: UInt64
        var decoder: KVSnapshotDecoder
    }
    private var incoming: [NodeID: Incoming] = [:]
    /// A snapshot that arrived whole and waits for the core to take it.
    private var received: (peer: NodeID, index: LogIndex, term: Term, store: KVStore)?

    mutating func receive(from peer: NodeID, named peerName: String, index: LogIndex, term: Term, offset: UInt64, isLast: Bool,
                          bytes: [UInt8], logger: Logger) {
        if offset == 0 { incoming[peer] = Incoming(index: index, term: term, nextOffset: 0, decoder: KVSnapshotDecoder()) }
        guard var stream = incoming[peer], stream.index == index, stream.term == term, stream.nextOffset == offset else {
            incoming[peer] = nil  // a piece is missing: wait for the leader to start over
            return
        }
        do {
            try stream.decoder.feed(bytes)
            stream.nextOffset += UInt64(bytes.count)
            if isLast {
                incoming[peer] = nil
                received = (peer, index, term, try stream.decoder.finish())
                logger.info("received a snapshot", metadata: ["index": "\(index)", "from": "\(peerName)", "bytes": "\(stream.nextOffset)"])
            } else {
                incoming[peer] = stream
            }
        } catch {
            incoming[peer] = nil
            logger.warning("dropped a malformed snapshot", metadata: ["from": "\(peerName)", "error": "\(error)"])
        }
    }

    func hasReceived(_ snapshot: RaftSnapshot, from peer: NodeID) -> Bool {
        received.map { $0.peer == peer && $0.index == snapshot.index && $0.term == snapshot.term } ?? false
    }

    mutating func takeReceived(index: LogIndex) -> KVStore? {
        guard let received, received.index == index else { return nil }
        self.received = nil
        return received.store
    }
}

extension Node {
    /// Takes a snapshot once enough entries were applied since the last one: the key space is copied (copy on
    /// write), written on another thread, and the log is compacted behind it once the file is durable.
    func maybeSnapshot() {
        let applied = LogIndex(storeIndex)
        guard !snapshots.saving, !stopped, applied.rawValue >= snapshots.lastIndex + UInt64(configuration.snapshotEntries),
              applied <= core.persistedIndex, let term = core.term(at: applied) else { return }
        let clusterConfiguration = core.clusterConfiguration(at: applied)
        let copy = Handoff(value: store.copy())
        let storage = storage
        snapshots.saving = true
        let started = NIODeadline.now()
        let previous = snapshotWrite
        snapshotWrite = Task.detached { [self] in
            await previous?.value
            do {
                try await SnapshotIO.save(copy.value, index: applied, term: term, configuration: clusterConfiguration, to: storage)
            } catch {
                fatalError("cannot write a snapshot; stopping so that a restart recovers from disk: \(error)")
            }
            loop.execute { [self] in
                snapshots.saving = false
                snapshots.lastIndex = max(snapshots.lastIndex, applied.rawValue)
                core.compact(through: applied)
                metrics.snapshotsTaken += 1
                logger.info("took a snapshot", metadata: ["index": "\(applied)", "ms": "\((NIODeadline.now() - started).nanoseconds / 1_000_000)"])
            }
        }
    }

    /// Streams the snapshot file at `snapshot.index` to a follower in chunks, one in flight at a time, then
    /// the Raft message itself; reports the outcome to the core.
    func streamSnapshot(_ snapshot: RaftSnapshot, message: Message) {
        let peer = message.to
        let path = (try? storage.snapshots.list())?.first { $0.index == snapshot.index }?.path
        guard let path, let reader = try? SnapshotReader(path: path) else {
            logger.warning("no snapshot file to send", metadata: ["index": "\(snapshot.index)", "peer": "\(name(of: peer))"])
            core.reportSnapshot(to: peer, index: snapshot.index, delivered: false)
            return
        }
        logger.info("sending a snapshot", metadata: ["index": "\(snapshot.index)", "peer": "\(name(of: peer))"])
        sendSnapshotChunk(from: Handoff(value: reader), message: message, snapshot: snapshot, offset: 0)
    }

    private func sendSnapshotChunk(from stream: Handoff<SnapshotReader>, message: Message, snapshot: RaftSnapshot, offset: UInt64) {
        let peer = message.to
        let chunk: [UInt8]?
        do { chunk = try stream.value.nextChunk() } catch {
            logger.error("cannot read a snapshot to send", metadata: ["path": "\(stream.value.path)", "error": "\(error)"])
            return finishSnapshotStream(stream, message: message, snapshot: snapshot, delivered: false)
        }
        let frame = PeerFrame.snapshotChunk(index: snapshot.index, term: snapshot.term, offset: offset, isLast: chunk == nil, bytes: chunk ?? [])
        guard let sent = transport.sendNow(frame, to: peer) else {
            return finishSnapshotStream(stream, message: message, snapshot: snapshot, delivered: false)
        }
        sent.whenComplete { [self] result in
            guard case .success = result, !stopped else {
                return finishSnapshotStream(stream, message: message, snapshot: snapshot, delivered: false)
            }
            if let chunk {
                sendSnapshotChunk(from: stream, message: message, snapshot: snapshot, offset: offset + UInt64(chunk.count))
            } else {
                finishSnapshotStream(stream, message: message, snapshot: snapshot, delivered: transport.send(.raft(message), to: peer))
            }
        }
    }

    private func finishSnapshotStream(_ stream: Handoff<SnapshotReader>, message: Message, snapshot: RaftSnapshot, delivered: Bool) {
        stream.value.close()
        core.reportSnapshot(to: message.to, index: snapshot.index, delivered: delivered)
        if delivered { metrics.snapshotsSent += 1 }
        scheduleReady()
    }

    /// Installs a snapshot the leader sent: the key space is replaced now; the file is written, then the WAL
    /// restarts after it; `then` runs once both are durable.
    func installSnapshot(_ snapshot: RaftSnapshot, hardState: HardState, then: @escaping @Sendable () -> Void) {
        guard let received = snapshots.takeReceived(index: snapshot.index) else {
            fatalError("the core took snapshot \(snapshot.index) whose data never arrived")
        }
        store = received
        storeIndex = snapshot.index.rawValue
        watches.replaced(at: snapshot.index.rawValue)
        writes.coveredBySnapshot(through: snapshot.index.rawValue)
        let copy = Handoff(value: received.copy())
        let storage = storage
        snapshots.saving = true
        let previous = snapshotWrite
        snapshotWrite = Task.detached { [self] in
            await previous?.value
            do {
                try await SnapshotIO.save(copy.value, index: snapshot.index, term: snapshot.term, configuration: snapshot.configuration, to: storage)
                try await storage.wal.restart(after: snapshot.index, term: snapshot.term, hardState: hardState)
            } catch {
                fatalError("cannot install a snapshot; stopping so that a restart recovers from disk: \(error)")
            }
            loop.execute { [self] in
                snapshots.saving = false
                snapshots.lastIndex = snapshot.index.rawValue
                metrics.snapshotsInstalled += 1
                logger.info("installed a snapshot", metadata: ["index": "\(snapshot.index)"])
            }
            then()
        }
    }
}
