import ArgumentParser
import Logging
import SkiffServer
import SkiffStorage

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a node.",
        discussion: """
            With no options: a one-node cluster with its data in ./skiff-data, clients on 127.0.0.1:7379. \
            For a static cluster, give every node the same --initial-cluster and its own --id, \
            --peer-addr and --client-addr. To add a node to a running cluster, start it with an empty data \
            directory and --join with any member's client address. To form a cluster without listing it \
            up front, start each node with --await-init (and --join pointing at one waiting node), then run \
            skiff init --name NAME --voters A,B,C against any of them. Connect with any Redis client: redis-cli -p 7379.
            The cluster a node belongs to is recorded in its data directory on its first start; later starts \
            keep it.
            """)

    @Option(help: "This node's name (its entry in --initial-cluster).") var id = "n1"
    @Option(help: "Where the WAL and snapshots live.") var dataDir = "./skiff-data"
    @Option(help: "Where Redis clients connect (HOST:PORT).") var clientAddr = "127.0.0.1:7379"
    @Option(help: "Where the other nodes connect (HOST:PORT).") var peerAddr = "127.0.0.1:7380"
    @Option(help: "Where the other nodes are to reach this one, if not at --peer-addr (a proxy or NAT in between); what joining tells the cluster.") var advertisePeerAddr: String?
    @Option(help: "Every voter of a static cluster: NAME=HOST:PEERPORT,... (empty: this node alone).") var initialCluster: String?
    @Option(help: "The cluster's name, part of its tag (a static cluster's first start only).") var clusterName = "skiff"
    @Option(help: "Join a running cluster through any of these members' client addresses (HOST:PORT,...); the data directory must be empty. The node comes in as a learner.") var join: String?
    @Flag(help: "With an empty data directory: wait to be initialised by skiff init (or to join, with --join) instead of forming a one-node cluster. Command line only.") var awaitInit = false
    @Option(help: "What a node does once it learns it was removed: shutdown (exit 0), or standby (ask to be added back as a learner, and follow the log as one).") var onRemoval = "shutdown"
    @Option(help: "learner: stay a learner after joining; voter: ask to be promoted once caught up.") var joinAs = "learner"
    @Option(help: "Seconds to keep trying the --join members before giving up.") var joinTimeout = 60
    @Option(help: "Changes each node keeps in memory for watches to start or resume from (each costs at most 256 bytes; older revisions are refused).") var watchHistory = 50_000
    @Option(help: "Milliseconds without a leader before a node campaigns (at least twice the heartbeat interval).") var electionTimeout = 1000
    @Option(help: "Milliseconds between leader heartbeats: the Raft tick.") var heartbeatInterval = 100
    @Option(help: "always: acknowledge writes only once on disk; never: UNSAFE, for benchmarks (a crash loses writes).") var fsync = "always"
    @Option(help: "Take a snapshot after this many applied entries, then compact the WAL.") var snapshotEntries = 50_000
    @Option(help: "Milliseconds a client request may wait for a leader or a commit.") var requestTimeout = 5000
    @Option(help: "Require AUTH with this password.") var password: String?
    @Option(help: "The largest argument a client may send, in bytes.") var maxBulkBytes = 16 << 20
    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics (off unless given).") var metricsAddr: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"
    @Option(help: "Mirror the log to an external store that all nodes reach, dir:PATH; a dead leader's tail is replayed from it before a new election (off unless given).") var externalLog: String?
    @Option(help: "on: the external store votes as a third voter, so a two-node cluster keeps serving with one node down (needs --external-log and exactly two nodes); off: it is a mirror only.") var externalWitness = "off"
    @Flag(help: "If the data directory is empty, rebuild it from --external-log first (its newest snapshot, then its log). Command line only.") var restoreFromExternal = false
    @Option(help: "A config file of `name = value` lines (the same names as these options).") var config: String?

    func makeConfiguration() throws -> NodeConfiguration {
        var configuration = NodeConfiguration()
        configuration.name = id
        configuration.dataDirectory = dataDir
        configuration.clientAddress = try HostAndPort(parsing: clientAddr)
        configuration.peerAddress = try HostAndPort(parsing: peerAddr)
        if let advertisePeerAddr { configuration.advertisePeerAddress = try HostAndPort(parsing: advertisePeerAddr) }
        if let initialCluster, !initialCluster.isEmpty { configuration.initialCluster = try ClusterMember.parseList(initialCluster) }
        configuration.clusterName = clusterName
        if let join { configuration.join = try HostAndPort.parseList(join) }
        configuration.awaitInit = awaitInit
        guard let removal = NodeConfiguration.RemovalAction(rawValue: onRemoval) else { throw ValidationError("--on-removal must be shutdown or standby") }
        configuration.onRemoval = removal
        guard ["learner", "voter"].contains(joinAs) else { throw ValidationError("--join-as must be learner or voter") }
        configuration.joinAsVoter = joinAs == "voter"
        guard joinTimeout >= 1 else { throw ValidationError("--join-timeout must be positive") }
        configuration.joinTimeout = .seconds(joinTimeout)
        configuration.watchHistory = watchHistory
        guard heartbeatInterval >= 1, electionTimeout >= 2 * heartbeatInterval else {
            throw ValidationError("--election-timeout must be at least twice --heartbeat-interval (and both positive)")
        }
        configuration.tickInterval = .milliseconds(heartbeatInterval)
        configuration.electionTicks = electionTimeout / heartbeatInterval
        guard let mode = WALOptions.FsyncMode(rawValue: fsync) else { throw ValidationError("--fsync must be always or never") }
        configuration.fsync = mode
        configuration.snapshotEntries = snapshotEntries
        guard requestTimeout >= 1 else { throw ValidationError("--request-timeout must be positive") }
        configuration.requestTimeout = .milliseconds(requestTimeout)
        configuration.password = password
        configuration.limits.bulkBytesMax = maxBulkBytes
        if let metricsAddr { configuration.metricsAddress = try HostAndPort(parsing: metricsAddr) }
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))") }
        configuration.logLevel = level
        if let externalLog { configuration.externalLog = try NodeConfiguration.openExternalStore(externalLog) }
        guard !restoreFromExternal || externalLog != nil else { throw ValidationError("--restore-from-external needs --external-log") }
        configuration.restoreFromExternal = restoreFromExternal
        guard ["on", "off"].contains(externalWitness) else { throw ValidationError("--external-witness must be on or off") }
        configuration.externalWitness = externalWitness == "on"
        try configuration.validate()
        return configuration
    }

    func run() async throws {
        let configuration: NodeConfiguration
        do { configuration = try makeConfiguration() } catch let error as ConfigurationError { throw ValidationError(error.description) }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = configuration.logLevel
            return handler
        }
        var logger = Logger(label: "skiff")
        logger[metadataKey: "node"] = "\(configuration.name)"
        if configuration.fsync == .never { logger.warning("--fsync never: UNSAFE, acknowledged writes are lost if the machine crashes") }
        do {
            try await SkiffServer.run(configuration: configuration, logger: logger)
        } catch let removed as RemovedFromCluster {
            // Exit 0, as a node removed while running does, so that a supervisor does not bring it back.
            logger.error("\(removed); not starting (empty the data directory and join again to come back)")
        } catch is CancellationError {
            logger.notice("stopped by a signal before the node had started")
            throw ExitCode(1)
        }
    }
}
