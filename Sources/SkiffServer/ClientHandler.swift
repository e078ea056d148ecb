import NIOCore
import SkiffKV
import SkiffRESP

/// One client connection: decoded commands in, replies out in the order the commands came, however
/// long each takes (a write waits for its commit, a read for its ReadIndex round). Stops reading from a
/// client that has `pipelineDepthMax` replies outstanding until they drain.
final class ClientHandler: ChannelInboundHandler {
    typealias InboundIn = [[UInt8]]
    typealias OutboundOut = ByteBuffer

    let node: Node
    let connectionID: Int64
    var session: ClientSession
    /// Replies not yet written; `nil` until the command finishes. `written` counts those already sent.
    private var pending: [RESPValue?] = []
    private var pendingStart = 0
    private var written = 0
    private var context: ChannelHandlerContext?
    private var flushScheduled = false
    private var readPaused = false
    private var closeAfterFlush = false

    init(node: Node, connectionID: Int64, password: String?) {
        self.node = node
        self.connectionID = connectionID
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
        execute(unwrapInboundIn(data), slot: slot)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        writeReady()
        if outstanding < node.configuration.limits.pipelineDepthMax { context.read() } else { readPaused = true }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let protocolError = error as? RESPProtocolError {
            var buffer = context.channel.allocator.buffer(capacity: 64)
            RESPValue.error("ERR \(protocolError)").write(to: &buffer, protocolVersion: session.protocolVersion)
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in context.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    private var outstanding: Int { pending.count - pendingStart }

    /// Fills reply `slot`; replies go out once every earlier one is ready.
    func reply(_ value: RESPValue, slot: Int) {
        pending[pendingStart + slot - written] = value
        guard !flushScheduled else { return }
        flushScheduled = true
        node.loop.execute { [self] in
            flushScheduled = false
            writeReady()
            if readPaused, outstanding < node.configuration.limits.pipelineDepthMax {
                readPaused = false
                context?.read()
            }
        }
    }

    private func writeReady() {
        guard let context, pendingStart < pending.count, pending[pendingStart] != nil else { return }
        var buffer = context.channel.allocator.buffer(capacity: 256)
        while pendingStart < pending.count, let value = pending[pendingStart] {
            value.write(to: &buffer, protocolVersion: session.protocolVersion)
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
        let write = context.writeAndFlush(wrapOutboundOut(buffer))
        if closeAfterFlush, outstanding == 0 { write.whenComplete { _ in context.close(promise: nil) } }
    }

    private func execute(_ arguments: [[UInt8]], slot: Int) {
        let command: ClientCommand
        switch ClientCommand.parse(arguments) {
        case .failure(let error): return reply(error.reply, slot: slot)
        case .success(let parsed): command = parsed
        }
        if let refusal = session.refusal(for: command) { return reply(refusal, slot: slot) }
        switch command {
        case .read(let read):
            if session.readOnly { return reply(read.execute(on: node.store), slot: slot) }
            node.submitRead({ [self] in reply(read.execute(on: node.store), slot: slot) },
                            fail: { [self] in reply(.error("TRYAGAIN no leader confirmed this read in time; retry"), slot: slot) })
        case .write(let write, let style):
            node.submitWrite(write) { [self] result in
                switch result {
                case .success(let applied): reply(style.reply(for: applied), slot: slot)
                case .failure(.noLeader): reply(.error("TRYAGAIN no leader is available; the write was not applied, retry"), slot: slot)
                case .failure(.outcomeUnknown):
                    reply(.error("ERR the write was not confirmed in time; it may or may not have been applied"), slot: slot)
                case .failure(.shuttingDown): reply(.error("ERR the server is shutting down"), slot: slot)
                }
            }
        case .quit:
            closeAfterFlush = true
            reply(.ok, slot: slot)
        default:
            reply(session.answer(command, node: node, connectionID: connectionID), slot: slot)
        }
    }
}
