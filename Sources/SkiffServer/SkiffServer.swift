import Foundation
import Logging
import SkiffExternal
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import SkiffRESP
import SkiffStorage

/// A running Skiff node with its client listener: what `skiff serve` runs and tests start.
///
/// Everything of one node runs on one event loop (clients, peers, the Raft core), beside the WAL's writer
/// thread: no locks on the hot path, and on a two-core machine the other core is left to the disk and to
/// the other processes. `stop()` is graceful: it stops accepting clients, lets the writes in flight finish
/// (for up to two seconds), and closes the WAL once everything handed to it is durable.
public final class SkiffServer: Sendable {
    public let node: Node
    public let clientAddress: SocketAddress
    public let peerAddress: SocketAddress
    let group: MultiThreadedEventLoopGroup
    let listener: Channel
    let metricsListener: Channel?
    let connections: ConnectionRegistry

    private init(node: Node, clientAddress: SocketAddress, peerAddress: SocketAddress, group: MultiThreadedEventLoopGroup,
                 listener: Channel, metricsListener: Channel?, connections: ConnectionRegistry) {
        self.node = node
        self.clientAddress = clientAddress
        self.peerAddress = peerAddress
        self.group = group
        self.listener = listener
        self.metricsListener = metricsListener
        self.connections = connections
    }

    public static func start(configuration: NodeConfiguration, logger: Logger) async throws -> SkiffServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        do {
            try configuration.validate()  // before anything is recorded in the data directory
            let identity: ClusterIdentity
            if configuration.restoreFromExternal, let store = configuration.externalLog, !ExternalRestore.holdsNodeData(configuration.dataDirectory) {
                identity = try await restore(configuration: configuration, from: store, logger: logger)
            } else {
                if configuration.restoreFromExternal {
                    logger.notice("--restore-from-external: the data directory already holds this node's data; starting from it")
                }
                identity = try await ClusterIdentity.establish(for: configuration, logger: logger)
            }
            let node = try await Node.open(configuration: configuration, identity: identity, loop: loop, logger: logger)
            let peerAddress = try await node.start().get()
            let connections = ConnectionRegistry()
            var limits = RESPLimits()
            limits.bulkBytesMax = configuration.limits.bulkBytesMax
            let requestLimits = limits
            let listener = try await ServerBootstrap(group: loop)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 1024)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.autoRead, value: false)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = connections.add(channel) { id in
                            ClientHandler(node: node, connectionID: id, password: configuration.password, connections: connections)
                        }
                        let id = handler.connectionID
                        channel.closeFuture.whenComplete { _ in connections.remove(id) }  // first: a failure below closes the channel
                        try channel.pipeline.syncOperations.addHandlers([ByteToMessageHandler(RESPRequestDecoder(limits: requestLimits)), handler])
                    }
                }
                .bind(host: configuration.clientAddress.host, port: configuration.clientAddress.port).get()
            let metrics = try await configuration.metricsAddress.asyncMap { try await startMetrics(node: node, at: $0) }
            if metrics != nil { logger.info("serving metrics", metadata: ["address": "http://\(configuration.metricsAddress!)/metrics"]) }
            logger.info("serving clients", metadata: ["address": "\(listener.localAddress!)", "peers": "\(peerAddress)",
                                                      "node": "\(configuration.name)", "data": "\(configuration.dataDirectory)",
                                                      "cluster": "\(identity.tag)"])
            return SkiffServer(node: node, clientAddress: listener.localAddress!, peerAddress: peerAddress, group: group,
                               listener: listener, metricsListener: metrics, connections: connections)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Rebuilds the data directory from the external store, then establishes the node's cluster. A node that
    /// joins (`--join`) is rebuilt beside its data directory and moved in only once the cluster has let it in
    /// under its fresh id: a refused join leaves no data that a later start could run under its old id.
    private static func restore(configuration: NodeConfiguration, from store: any ExternalStore, logger: Logger) async throws -> ClusterIdentity {
        let directory = configuration.dataDirectory
        guard !configuration.join.isEmpty else {
            _ = try await ClusterIdentity.owner(of: store, namedFor: configuration.clusterName)  // before downloading anything
            try await rebuild(directory: directory, from: store, logger: logger)
            return try await ClusterIdentity.establish(for: configuration, logger: logger)
        }
        let staging = directory + ".restoring"
        try? FileManager.default.removeItem(atPath: staging)  // a rebuild that an earlier start abandoned
        try await ExternalRestore.rebuild(directory: staging, from: store, logger: logger)
        let identity = try await ClusterIdentity.establish(for: configuration, logger: logger)
        for part in ["wal", "snap"] where FileManager.default.fileExists(atPath: staging + "/" + part) {
            try FileManager.default.moveItem(atPath: staging + "/" + part, toPath: directory + "/" + part)
        }
        try PosixFileSystem().syncDirectory(directory)
        try? FileManager.default.removeItem(atPath: staging)
        return identity
    }

    /// Rebuilds a node's data directory from the external store (`ExternalRestore.rebuild`) and records
    /// there the store it came from, so that a node started on it uses that store and no other.
    @discardableResult
    public static func rebuild(directory: String, from store: any ExternalStore, logger: Logger) async throws -> ExternalRestore.Report {
        let report = try await ExternalRestore.rebuild(directory: directory, from: store, logger: logger)
        if let owner = report.owner { try ExternalStoreMarker.remember(owner.store, of: store, in: directory) }
        return report
    }

    public func stop() async {
        try? await listener.close()
        try? await metricsListener?.close()
        for _ in 0..<200 {
            let pending = try? await node.loop.submit { self.node.status.pendingWrites }.get()
            if pending ?? 0 == 0 { break }
            try? await Task.sleep(for: .milliseconds(10))
        }
        await node.stop()
        await connections.closeAll()
        try? await group.shutdownGracefully()
    }

    /// Runs a node until SIGTERM or SIGINT, or until it learns it was removed from the cluster, then stops
    /// it gracefully. The signals are watched before the node starts, so one that arrives while it is
    /// starting still stops it gracefully once it has started.
    public static func run(configuration: NodeConfiguration, logger: Logger) async throws {
        // A node that returns by itself (it was removed) ends the group as a signal would, not as a failure.
        let service = ServiceGroupConfiguration.ServiceConfiguration(service: NodeService(configuration: configuration, logger: logger),
                                                                     successTerminationBehavior: .gracefullyShutdownGroup)
        let group = ServiceGroup(configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// Starts the node, waits for the shutdown signal or the node's removal, then stops it.
struct NodeService: Service {
    let configuration: NodeConfiguration
    let logger: Logger

    func run() async throws {
        // A signal while the node is still starting (joining can take a while) abandons the start.
        let starting = Task { try await SkiffServer.start(configuration: configuration, logger: logger) }
        let server: SkiffServer
        do {
            server = try await withGracefulShutdownHandler { try await starting.value } onGracefulShutdown: { starting.cancel() }
        } catch where starting.isCancelled && !(error is CancellationError) {
            // A store call the signal abandoned fails as unavailable: the start ended because of the signal.
            logger.info("a start stopped by a signal ended with an error", metadata: ["error": "\(error)"])
            throw CancellationError()
        }
        let (removed, removal) = AsyncStream<Void>.makeStream()
        try await server.node.loop.submit { server.node.onRemoved = { removal.yield() } }.get()
        await withGracefulShutdownHandler {
            for await _ in removed { break }
        } onGracefulShutdown: {
            removal.finish()
        }
        server.node.logger.info("shutting down")
        await server.stop()
        server.node.logger.info("stopped")
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
