import NIOCore
import SkiffKV
import SkiffRESP

/// One client connection: decoded commands in, replies out in the order the commands came, however
/// long each takes (a write waits for its commit, a read for its ReadIndex round). Stops reading from a
/// client that has `pipelineDepthMax` replies outstanding until they drain.
///
/// Commands take effect in the order they were sent, as in Redis: a run of writes is in flight together
/// (the log orders them), and so is a run of reads (one ReadIndex round), but a read waits for the writes
/// before it and a write for the reads before it, so a client always reads its own writes and never a later
/// one. Other commands wait for everything before them.
final class ClientHandler: ChannelInboundHandler {
    typealias InboundIn = [[UInt8]]
    typealias OutboundOut = ByteBuffer

    let node: Node
    let connectionID: Int64
    let connections: ConnectionRegistry
    var session: ClientSession
    /// For CLIENT LIST: when the connection opened, when its last read began, and the name of its last
    /// command, with the subcommand of a container command (nil after a command that could not be parsed).
    let openedAt = NIODeadline.now()
    var lastReadAt = NIODeadline.now()
    var lastCommand: (name: [UInt8], subcommand: [UInt8]?)?
    private var reading = false
    /// Replies not yet written, each with the protocol version in force when it was made; `nil` until the
    /// command finishes. `written` counts those already sent.
    private var pending: [(value: RESPValue, protocolVersion: Int)?] = []
    private var pendingStart = 0
    private var written = 0
    private(set) var context: ChannelHandlerContext?
    /// The buffer of the last write, written into again once the kernel took that one (the usual case), so
    /// that replies cost no allocation. A buffer grown past `replyBufferKeptMax` for a large reply is dropped.
    private var replyBuffer: ByteBuffer?
    static let replyBufferKeptMax = 64 << 10
    private var flushScheduled = false
    private var readPaused = false
    private(set) var closeAfterFlush = false
    /// Set once SKIFF.WATCH started: the connection then streams events and takes only PING and QUIT.
    private var watch: (id: Int64, next: UInt64)?
    /// Events (and their bytes) handed to a connection that could not take more (not writable), since it
    /// last could.
    private var eventsWhileBlocked = 0
    private var bytesWhileBlocked = 0
    /// A watcher this many events or bytes behind is cut off, so that it costs bounded memory.
    static let watchLagMax = 10_000
    static let watchLagBytesMax = 64 << 20
    /// How long past the request timeout a connection closing after an error may take to send what it owes.
    static let closeGrace = TimeAmount.seconds(5)

    enum Kind { case read, write, other }
    /// Commands waiting for the ones in flight, in order, and those refused when parsed: their errors wait
    /// their turn too, since one inside a transaction must mark it.
    private var held: [(command: Result<ClientCommand, RESPCommandError>, slot: Int)] = []
    private var heldStart = 0
    private var inFlight = 0
    private var inFlightKind = Kind.other
    /// The transaction MULTI opened, until EXEC or DISCARD; the keys WATCH named since the last EXEC,
    /// DISCARD or UNWATCH, with their revisions.
    var transaction: ClientTransaction?
    var watchedKeys: [[UInt8]: UInt64] = [:]

    init(node: Node, connectionID: Int64, password: String?, connections: ConnectionRegistry) {
        self.node = node
        self.connectionID = connectionID
        self.connections = connections
        session = ClientSession(password: password)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        context.read()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closeAfterFlush else { return }
        let slot = written + (pending.count - pendingStart)
        pending.append(nil)
        if !reading {
            reading = true
            lastReadAt = .now()  // once per read, not per command
        }
        let words = unwrapInboundIn(data)
        let parsed = ClientCommand.parse(words)
        lastCommand = try? Self.recordedName(words, of: parsed.get())
        held.append((parsed, slot))
        startHeld()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        writeReady()
        if outstanding < node.configuration.limits.pipelineDepthMax { context.read() } else { readPaused = true }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let watch { node.stopWatch(watch.id) }
        watch = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            eventsWhileBlocked = 0
            bytesWhileBlocked = 0
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let protocolError = error as? RESPProtocolError {
            closeAfter(error: "ERR \(protocolError)")  // after the replies owed to the commands before it, as in Redis
        } else if case ByteToMessageDecoderError.dataReceivedInErrorState = error {
            return  // bytes after a malformed request, read and dropped so that the close is clean (FIN, not RST)
        } else {
            context.close(promise: nil)
        }
    }

    private var outstanding: Int { pending.count - pendingStart }

    /// Fills reply `slot`, to be written in `protocolVersion` (by default the connection's now); replies go
    /// out once every earlier one is ready.
    func reply(_ value: RESPValue, slot: Int, protocolVersion: Int? = nil) {
        pending[pendingStart + slot - written] = (value, protocolVersion ?? session.protocolVersion)
        scheduleFlush()
    }

    /// Writes the replies that are ready, once the node gets to it after `scheduleFlush`.
    func flushScheduledReplies() {
        flushScheduled = false
        writeReady()
        if readPaused, outstanding < node.configuration.limits.pipelineDepthMax {
            readPaused = false
            context?.read()
        }
    }

    private func writeReady() {
        guard let context, pendingStart < pending.count, pending[pendingStart] != nil else { return }
        var buffer = replyBuffer.take() ?? context.channel.allocator.buffer(capacity: 256)
        buffer.clear()
        while pendingStart < pending.count, let (value, protocolVersion) = pending[pendingStart] {
            value.write(to: &buffer, protocolVersion: protocolVersion)
            pendingStart += 1
            written += 1
        }
        if pendingStart == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingStart = 0
        } else if pendingStart > 1024 {
            pending.removeFirst(pendingStart)
            pendingStart = 0
        }
        guard closeAfterFlush, outstanding == 0 else {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)  // no promise to allocate per reply
            if buffer.capacity <= Self.replyBufferKeptMax { replyBuffer = buffer }
            return
        }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }

    // MARK: Watching

    /// Sends each event as `[set, revision, key, value]` or `[del, revision, key]`, after every earlier reply.
    private func stream(_ events: [WatchEvent]) {
        guard let current = watch, !closeAfterFlush else { return }
        for event in events {
            let head: [RESPValue] = [.bulk(event.value == nil ? "del" : "set"), .integer(Int64(event.revision)), .bulk(event.key)]
            pending.append((.array(head + (event.value.map { [.bulk($0)] } ?? [])), session.protocolVersion))
        }
        watch = (current.id, events.last!.revision + 1)
        if context?.channel.isWritable == false {
            eventsWhileBlocked += events.count
            bytesWhileBlocked += events.reduce(0) { $0 + $1.key.count + ($1.value?.count ?? 0) }
            if eventsWhileBlocked > Self.watchLagMax || bytesWhileBlocked > Self.watchLagBytesMax {
                // Not from inside the hub's delivery: it is in the middle of a change.
                let handler = NIOLoopBound(self, eventLoop: node.loop)
                node.loop.execute { handler.value.endWatch(nil, stillRegistered: true) }
            }
        }
        scheduleFlush()
    }

    /// Ends the watch with an error line (nil: the client fell behind) and closes the connection once
    /// everything before it is written.
    private func endWatch(_ reason: String?, stillRegistered: Bool) {
        guard let current = watch else { return }
        if stillRegistered { node.stopWatch(current.id) }
        watch = nil
        let behind = "ERR watch cut off: the client fell more than \(Self.watchLagMax) changes or \(Self.watchLagBytesMax >> 20) MiB behind"
        closeAfter(error: (reason ?? behind) + "; resume with FROM \(current.next)")
    }

    /// Ends the connection once the reply in `slot` is written (QUIT, or CLIENT KILL of this connection):
    /// whatever came after it is dropped, never run or answered, as in Redis. Such a command runs alone
    /// (kind `.other`) once everything before it is answered, so every later slot belongs to a held command,
    /// an answered parse error, a queued protocol error or watch events.
    func closeAfterReply(slot: Int) {
        closeAfterFlush = true
        pending.removeSubrange((pendingStart + slot - written + 1)...)
        held.removeAll()
        heldStart = 0
        closeBeforeLong()
    }

    /// Ends the connection: `error` is its last reply, written after every reply owed before it, then it
    /// closes. Nothing is added to a connection already ending.
    private func closeAfter(error: String) {
        guard !closeAfterFlush else { return }
        pending.append((.error(error), session.protocolVersion))
        closeAfterFlush = true
        scheduleFlush()
        closeBeforeLong()
    }

    /// What is owed ends within the request timeout; a client that does not read its replies (while it may
    /// go on sending, read and dropped) must not keep an ending connection beyond that.
    private func closeBeforeLong() {
        let channel = context?.channel
        context?.eventLoop.scheduleTask(in: timeAmount(node.configuration.requestTimeout) + Self.closeGrace) { channel?.close(promise: nil) }
    }

    static let readFailure = RESPValue.error("TRYAGAIN no leader confirmed this read in time; retry")

    static func reply(for failure: WriteFailure) -> RESPValue {
        switch failure {
        case .noLeader: .error("TRYAGAIN no leader is available; the write was not applied, retry")
        case .outcomeUnknown: .error("ERR the write was not confirmed in time; it may or may not have been applied")
        case .shuttingDown: .error("ERR the server is shutting down; the write may or may not have been applied")
        case .tooLarge(let limit): .error("ERR the command is larger than the \(limit) bytes one write may be")
        }
    }

    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        node.flushSoon(self)
    }

    private func kind(of command: ClientCommand) -> Kind {
        if transaction != nil { return .other }  // queued, answered at once
        return switch command {
        case .read: session.readOnly ? .other : .read
        case .write, .membership: .write
        default: .other
        }
    }

    /// Starts held commands in order, as far as the rule in the type's comment allows.
    private func startHeld() {
        while heldStart < held.count {
            let (parsed, slot) = held[heldStart]
            let command: ClientCommand
            switch parsed {
            case .success(let parsedCommand): command = parsedCommand
            case .failure(let error):
                heldStart += 1
                refuseParsed(error, slot: slot)
                continue
            }
            let kind = kind(of: command)
            if inFlight > 0 && (kind == .other || kind != inFlightKind) { break }
            heldStart += 1
            execute(command, kind: kind, slot: slot)
        }
        if heldStart == held.count {
            held.removeAll(keepingCapacity: true)
            heldStart = 0
        }
    }

    /// Marks an asynchronous command that must finish before any later one starts.
    func startAlone() {
        inFlight += 1
        inFlightKind = .other
    }

    func finished(_ value: RESPValue, slot: Int, protocolVersion: Int? = nil) {
        inFlight -= 1
        reply(value, slot: slot, protocolVersion: protocolVersion)
        if inFlight == 0 { startHeld() }
    }

    private func execute(_ command: ClientCommand, kind: Kind, slot: Int) {
        if let refusal = session.refusal(for: command) { return refuseInTransaction(refusal, slot: slot) }
        connections.countCommand()
        if watch != nil {
            switch command {
            case .ping, .quit: break
            default: return reply(.error("ERR this connection is watching; it takes only PING and QUIT"), slot: slot)
            }
        }
        if queueInTransaction(command, slot: slot) { return }
        if kind != .other {
            inFlight += 1
            inFlightKind = kind
        }
        switch command {
        case .read(let read):
            if session.readOnly { return reply(read.execute(on: node.store), slot: slot) }
            node.submitRead({ [self] in finished(read.execute(on: node.store), slot: slot) },
                            fail: { [self] in finished(Self.readFailure, slot: slot) })
        case .write(let write, let style):
            node.submitWrite(write) { [self] result in
                switch result {
                case .success(let applied): finished(style.reply(for: applied), slot: slot)
                case .failure(let failure): finished(Self.reply(for: failure), slot: slot)
                }
            }
        case .multi, .exec, .discard, .watchKeys, .unwatch:
            runTransactionCommand(command, slot: slot)
        case .membership(let change):
            node.runMembership(change) { [self] result in
                switch result {
                case .success(let words): finished(words.isEmpty ? .ok : .array(words.map(RESPValue.bulk)), slot: slot)
                case .failure(let failure): finished(.error(failure.message), slot: slot)
                }
            }
        case .watch(let prefix, let from):
            watch = (0, from ?? 0)  // so that the backlog, delivered before the id is known, is streamed
            let started = node.startWatch(prefix: prefix, from: from, deliver: { [self] events in stream(events) },
                                          cut: { [self] reason in endWatch(reason, stillRegistered: false) })
            switch started {
            case .failure(let refusal):
                watch = nil
                reply(.error(refusal.message), slot: slot)
            case .success(let (id, start)):
                watch!.id = id
                if watch!.next == 0 { watch!.next = start }
                reply(.array([.bulk("watch"), .bulk(prefix), .integer(Int64(start))]), slot: slot)
            }
        case .quit:
            closeAfterReply(slot: slot)
            reply(.ok, slot: slot)
        case .client(.list(let ids)):
            reply(.verbatim(clientList(ids: ids)), slot: slot)
        case .client(.info):
            reply(.verbatim(clientLine(now: .now()) + "\n"), slot: slot)
        case .client(.kill(let filter)):
            reply(kill(filter, slot: slot), slot: slot)
        default:
            reply(session.answer(command, node: node, connectionID: connectionID, clients: connections.counts), slot: slot)
        }
    }
}
