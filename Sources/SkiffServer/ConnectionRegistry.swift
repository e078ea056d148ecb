import NIOCore
import Synchronization

/// The open client connections of a node: shutdown closes them, `CLIENT LIST` and `CLIENT KILL` look them
/// up, and INFO counts them and the commands they ran.
///
/// Ids are given in order from 1 and never reused while the process runs, as Redis's client ids are. A
/// connection's handler is reached only on its event loop (`NIOLoopBound`), which is the node's.
final class ConnectionRegistry: Sendable {
    private let state = Mutex((next: Int64(1), open: [Int64: (channel: Channel, handler: NIOLoopBound<ClientHandler>)]()))
    private let commands = Atomic<Int>(0)

    /// Registers `channel` under the next id with the handler `makeHandler` makes for that id.
    func add(_ channel: Channel, makeHandler: (Int64) -> ClientHandler) -> ClientHandler {
        state.withLock { state in
            let id = state.next
            state.next += 1
            let handler = makeHandler(id)
            state.open[id] = (channel, NIOLoopBound(handler, eventLoop: channel.eventLoop))
            return handler
        }
    }

    func remove(_ id: Int64) { state.withLock { _ = $0.open.removeValue(forKey: id) } }

    /// The handlers of the open connections, by id; only on the connections' event loop.
    func handlers() -> [ClientHandler] {
        state.withLock { $0.open.sorted { $0.key < $1.key }.map { $0.value.handler } }.map { $0.value }
    }

    /// Counts one command run (parsed and allowed), for INFO's `total_commands_processed`.
    func countCommand() { commands.add(1, ordering: .relaxed) }

    /// What INFO reports of the connections.
    var counts: ClientCounts {
        let (received, connected) = state.withLock { (Int($0.next - 1), $0.open.count) }
        return ClientCounts(connected: connected, received: received, commands: commands.load(ordering: .relaxed))
    }

    func closeAll() async {
        let channels = state.withLock { $0.open.values.map { $0.channel } }
        for channel in channels { try? await channel.close() }
    }
}

/// Connections open now, connections accepted since the node started, and commands they ran.
struct ClientCounts {
    var connected: Int
    var received: Int
    var commands: Int
}
