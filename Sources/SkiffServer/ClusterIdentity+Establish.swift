import Foundation
import Logging
import SkiffClient
import SkiffExternal
import SkiffRaft

extension ClusterIdentity {
    /// The identity a node runs with: the one its data directory records; else, for a node told to join, the
    /// one the cluster hands it when it lets the node in; else its static cluster's (`--initial-cluster`, or
    /// the node alone). Recorded before the node starts, so a node never runs in two clusters.
    ///
    /// A node that has an identity and is still told to join (a restart with the same command line) asks the
    /// cluster whether it is still a member: if the cluster refuses it (removed, or another cluster), this
    /// throws with the reason; if no member answers, it starts anyway.
    static func establish(for configuration: NodeConfiguration, logger: Logger) async throws -> ClusterIdentity {
        let directory = configuration.dataDirectory
        if let recorded = try load(directory: directory) {
            if !configuration.join.isEmpty {
                switch try await ask(configuration, uuid: recorded.uuidString, patience: .seconds(5), logger: logger) {
                case .some: logger.info("the cluster confirms this node is a member", metadata: ["cluster": "\(recorded.tag)"])
                case nil: logger.notice("no member confirmed this node's membership in time; starting from its own data")
                }
            } else if !configuration.initialCluster.isEmpty,
                      derived(name: configuration.clusterName, members: configuration.members).uuid != recorded.uuid {
                logger.notice("--initial-cluster and --cluster-name are used only on a node's first start; this data directory belongs to cluster \(recorded.tag)")
            }
            return recorded
        }
        guard !configuration.join.isEmpty else {
            let identity = derived(name: configuration.clusterName, members: configuration.members)
            try identity.save(directory: directory)
            return identity
        }
        guard !ExternalRestore.holdsNodeData(directory) else {
            throw ConfigurationError("\(directory) holds a node's data but names no cluster; a node joins with an empty data directory")
        }
        guard let answer = try await ask(configuration, uuid: nil, patience: configuration.joinTimeout, logger: logger) else {
            throw ConfigurationError("no member of \(configuration.join.map(\.description).joined(separator: ", ")) let this node in within \(configuration.joinTimeout); is the cluster running?")
        }
        try answer.save(directory: directory)
        logger.notice("joined the cluster", metadata: ["cluster": "\(answer.tag)", "role": "learner"])
        return answer
    }

    /// Sends SKIFF.JOIN to each member in turn, with backoff, until one answers or `patience` runs out (nil).
    /// Throws the cluster's reason if it refuses.
    private static func ask(_ configuration: NodeConfiguration, uuid: String?, patience: Duration, logger: Logger) async throws -> ClusterIdentity? {
        let request = ["SKIFF.JOIN", configuration.name, configuration.peerAddress.description, configuration.clientAddress.description,
                       String(joinProtocolVersion)] + (uuid.map { [$0] } ?? [])
        let clock = ContinuousClock()
        let deadline = clock.now + patience
        var delay = Duration.milliseconds(100)
        while true {
            for member in configuration.join {
                let reply: RESPClient.Reply
                do {
                    reply = try await offThread { try RESPClient(host: member.host, port: member.port, timeoutSeconds: 10).call(request) }
                } catch {
                    logger.debug("cannot reach a member to join through", metadata: ["member": "\(member)", "error": "\(error)"])
                    continue
                }
                switch reply {
                case .error(let message) where message.hasPrefix("TRYAGAIN"):
                    logger.info("a member asked to retry the join", metadata: ["member": "\(member)", "reason": "\(message)"])
                case .error(let message):
                    throw ConfigurationError("the cluster refused this node: \(message)")
                case .array(let words):
                    guard let identity = decodeJoinAnswer(words.map(\.text)) else {
                        throw ConfigurationError("\(member) answered the join with something this version does not understand: \(reply.text)")
                    }
                    return identity
                default:
                    throw ConfigurationError("\(member) answered the join with something this version does not understand: \(reply.text)")
                }
            }
            guard clock.now + delay < deadline else { return nil }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }

    /// `cluster NAME uuid UUID role ROLE base HEX seed HEX`, as the leader's `joinAnswer` gives it.
    static func decodeJoinAnswer(_ words: [String]) -> ClusterIdentity? {
        guard words.count % 2 == 0 else { return nil }
        var fields: [String: String] = [:]
        for position in stride(from: 0, to: words.count, by: 2) { fields[words[position]] = words[position + 1] }
        guard let name = fields["cluster"], let uuid = fields["uuid"].flatMap(parseUUID),
              let base = fields["base"].flatMap(bytes(fromHex:)).flatMap(ClusterConfiguration.init(decoding:)),
              let seed = fields["seed"].flatMap(bytes(fromHex:)).flatMap(ClusterConfiguration.init(decoding:)) else { return nil }
        return ClusterIdentity(name: name, uuid: uuid, base: base, seed: seed)
    }
}

/// Runs blocking work on a thread of its own, so that it holds no thread of Swift's concurrency pool.
func offThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}
