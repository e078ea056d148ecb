import Foundation
import Logging
import SkiffClient
import SkiffExternal
import SkiffRaft

extension ClusterIdentity {
    /// The identity a node runs with: the one its data directory records; else, for a node told to join, the
    /// one the cluster hands it when it lets the node in; else its static cluster's (`--initial-cluster`, or
    /// the node alone), under the name and UUID of the store's owner if the directory was rebuilt from the
    /// external store. Recorded before the node starts, so a node never runs in two clusters, and only once
    /// the external store (if any) accepts the cluster as its owner.
    ///
    /// A node that has an identity and is still told to join (a restart with the same command line) asks the
    /// cluster whether it is still a member: if the cluster refuses it (removed, or another cluster), this
    /// throws with the reason; if no member answers, it starts anyway.
    static func establish(for configuration: NodeConfiguration, logger: Logger) async throws -> ClusterIdentity {
        let directory = configuration.dataDirectory
        if let recorded = try load(directory: directory) {
            let pending = InitHandOver.pending(in: directory)
            if !pending.isEmpty {
                // This node coordinated an init and stopped before every voter had the identity.
                logger.notice("handing the cluster's identity to the voters that have not taken it yet",
                              metadata: ["voters": "\(pending.joined(separator: ","))"])
                for problem in await InitHandOver.handOver(recorded, directory: directory, password: configuration.password, logger: logger) ?? [] {
                    logger.warning("a voter has not taken the cluster's identity; repeat the init once it waits again", metadata: ["problem": "\(problem)"])
                }
            }
            if !configuration.join.isEmpty {
                let nodeID = recorded.nodeID ?? configuration.nodeID
                switch try await askToJoin(configuration, nodeID: nodeID, uuid: recorded.uuidString, patience: .seconds(5), logger: logger) {
                case .some: logger.info("the cluster confirms this node is a member", metadata: ["cluster": "\(recorded.tag)"])
                case nil: logger.notice("no member confirmed this node's membership in time; starting from its own data")
                }
            } else if !configuration.initialCluster.isEmpty,
                      derived(name: configuration.clusterName, members: configuration.members).uuid != recorded.uuid {
                logger.notice("--initial-cluster and --cluster-name are used only on a node's first start; this data directory belongs to cluster \(recorded.tag)")
            }
            if let store = configuration.externalLog {
                // A node that joined and has not remembered its store yet takes the one its cluster uses.
                let remembers = try ExternalStoreMarker.load(directory: directory) != nil
                let expected = !remembers && !configuration.join.isEmpty ? try await checkStore(store, against: configuration, logger: logger) : nil
                try await claim(store, for: recorded, in: directory, expecting: expected, logger: logger)
            }
            return recorded
        }
        // A pending list without a cluster file: an init stopped before it recorded anything.
        try? InitHandOver.record(pending: [], in: directory)
        if configuration.awaitInit {
            guard !ExternalRestore.holdsNodeData(directory) else {
                throw ConfigurationError("\(directory) holds a node's data but names no cluster; a node waits to be initialised with an empty data directory")
            }
            let identity = try await WaitingNode(configuration: configuration, logger: logger).waitForIdentity()
            if let store = configuration.externalLog { try await claim(store, for: identity, in: directory, logger: logger) }  // a member now, whatever the store says
            return identity
        }
        guard !configuration.join.isEmpty else {
            var identity = derived(name: configuration.clusterName, members: configuration.members)
            // A node alone needs to agree with nobody: its cluster gets a UUID of its own, so that another
            // one-node cluster of the same name (say, the same node formed again) is never taken for it.
            if configuration.initialCluster.isEmpty, !ExternalRestore.holdsNodeData(directory) { identity.uuid = randomUUID() }
            if ExternalRestore.holdsNodeData(directory), let store = configuration.externalLog {
                // Data without a cluster file was rebuilt from the store: its cluster is the store's owner.
                try await adoptOwner(of: store, into: &identity, logger: logger)
            }
            try identity.save(directory: directory)
            if let store = configuration.externalLog {
                do { try await claim(store, for: identity, in: directory, logger: logger) } catch {
                    // Nobody else knows this identity yet: a refused node leaves none behind. (Saved first, so
                    // that a crash never leaves a claimed store whose owner no data directory records.) A
                    // claim a signal abandoned may still land, as after a crash: the identity stays.
                    if !(error is CancellationError) { try? FileManager.default.removeItem(atPath: path(in: directory)) }
                    throw error
                }
            }
            return identity
        }
        guard !ExternalRestore.holdsNodeData(directory) else {
            throw ConfigurationError("\(directory) holds a node's data but names no cluster; a node joins with an empty data directory")
        }
        var clusterStore: String?
        if let store = configuration.externalLog { clusterStore = try await checkStore(store, against: configuration, logger: logger) }
        guard let answer = try await askToJoin(configuration, nodeID: drawNodeID(), uuid: nil, patience: configuration.joinTimeout, logger: logger) else {
            throw ConfigurationError("no member of \(configuration.join.map(\.description).joined(separator: ", ")) let this node in within \(configuration.joinTimeout); is the cluster running?")
        }
        try answer.save(directory: directory)  // a member now, even if the claim below refuses the store
        if let store = configuration.externalLog {
            // Asked again if no member answered before the join: the one that let this node in is up.
            if clusterStore == nil { clusterStore = try await checkStore(store, against: configuration, logger: logger) }
            // The cluster's store, remembered before this node claims anything: a later start uses no other.
            if let clusterStore { try ExternalStoreMarker.remember(clusterStore, of: store, in: directory) }
            try await claim(store, for: answer, in: directory, logger: logger)
        }
        logger.notice("joined the cluster", metadata: ["cluster": "\(answer.tag)", "role": "learner"])
        return answer
    }

    /// Takes the UUID of the cluster that owns `store`, if one is recorded there (a store written before
    /// owners were recorded has none, and the identity stays as derived). Refuses an owner of another name
    /// than this node's cluster: the data came from another cluster's store.
    private static func adoptOwner(of store: any ExternalStore, into identity: inout ClusterIdentity, logger: Logger) async throws {
        guard let owner = try await owner(of: store, namedFor: identity.name) else { return }
        let uuid = parseUUID(owner.uuid)!  // an ExternalStoreOwner's UUID is well formed
        if uuid != identity.uuid {
            logger.notice("this data directory was rebuilt from the external store: it takes the cluster the store belongs to",
                          metadata: ["cluster": "\(owner)", "instead-of": "\(identity.tag)"])
        }
        identity.uuid = uuid
    }

    /// The owner `store` records, if any.
    private static func recordedOwner(of store: any ExternalStore) async throws -> ExternalStoreOwner? {
        do { return try await ExternalStoreOwner.recorded(in: store) } catch { throw ConfigurationError("--external-log: \(error)") }
    }

    /// The owner `store` records, if any; throws if it is a cluster of another name than `cluster`.
    static func owner(of store: any ExternalStore, namedFor cluster: String) async throws -> ExternalStoreOwner? {
        let recorded = try await recordedOwner(of: store)
        if let recorded, recorded.cluster != cluster {
            throw ConfigurationError("--external-log: \(store) belongs to cluster \(recorded), and this node is configured for cluster "
                                     + "\(cluster) (--cluster-name): it will not be rebuilt from another cluster's store")
        }
        return recorded
    }

    /// Before a join, asks the first `--join` member that answers which cluster it is in and which store it
    /// uses (INFO), and refuses a store that another cluster owns or that is not the cluster's store, so that
    /// the cluster never lets in a node that will not start. Returns the id of the cluster's store: nil if
    /// no member answered, or if the cluster has not recorded one.
    private static func checkStore(_ store: any ExternalStore, against configuration: NodeConfiguration, logger: Logger) async throws -> String? {
        let password = configuration.password
        for member in configuration.join {
            let report = try? await offThread {
                let client = try RESPClient(host: member.host, port: member.port, timeoutSeconds: 2)
                if let password { _ = try client.call("AUTH", password) }
                return try client.call("INFO", "server").text
            }
            let lines = report?.split(whereSeparator: \.isNewline) ?? []
            func field(_ name: String) -> String? {
                lines.first { $0.hasPrefix(name + ":") }.map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces).lowercased() }
            }
            guard let uuid = field("skiff_cluster_uuid") else { continue }
            let clusterStore = field("skiff_external_store").flatMap { $0.isEmpty ? nil : $0 }
            let owner = if let clusterStore {
                try await awaitStore(store, is: clusterStore, usedBy: "the cluster of \(member) (\(uuid))", logger: logger)
            } else {
                try await awaitReadable(store, logger: logger)
            }
            if let owner, owner.uuid != uuid {
                throw ConfigurationError("--external-log: \(store) belongs to cluster \(owner), but \(member) is in cluster \(uuid): "
                                         + "a node joins with its cluster's store")
            }
            return clusterStore
        }
        logger.notice("no member said which external store the cluster uses", metadata: ["members": "\(configuration.join.map(\.description).joined(separator: ","))"])
        return nil
    }

    /// Records this node's cluster as the owner of `store` if it has none, and refuses a store that another
    /// cluster owns. A node that has used a store before (or whose cluster uses one: `expected`) claims
    /// nothing: it waits for that store (`awaitStore`) and checks its owner, so that it never records an
    /// owner in another store, even one that appears at the path between its check and its claim. Then the
    /// node remembers the store in its data directory. Every start claims once, here, before it writes to the
    /// store (a rebuild only reads it first).
    private static func claim(_ store: any ExternalStore, for identity: ClusterIdentity, in directory: String, expecting expected: String? = nil,
                              logger: Logger) async throws {
        guard let claimant = ExternalStoreOwner(cluster: identity.name, uuid: identity.uuidString) else {
            throw ConfigurationError("the cluster name \(identity.name.debugDescription) cannot be recorded in an external store")
        }
        let used = try ExternalStoreMarker.load(directory: directory)
        let owner: ExternalStoreOwner
        do {
            if let used {
                owner = try await awaitStore(store, is: used.store, usedBy: "this node (at \(used.location); \(ExternalStoreMarker.path(in: directory)))",
                                             logger: logger)
            } else if let expected {
                owner = try await awaitStore(store, is: expected, usedBy: "this node's cluster", logger: logger)
            } else {
                owner = try await claimant.claim(store)
            }
            guard owner.uuid == claimant.uuid else {
                throw ExternalLogError.ownedByAnotherCluster(store: store.description, owner: owner.description, claimant: claimant.description)
            }
        } catch ExternalLogError.ownedByAnotherCluster(let store, let owner, let claimant) {
            throw ConfigurationError("--external-log: \(ExternalLogError.ownedByAnotherCluster(store: store, owner: owner, claimant: claimant)). "
                                     + "(A node that lost its data is rebuilt from its cluster's store with --restore-from-external.)")
        } catch let error as ExternalLogError {
            try Task.checkCancellation()  // a signal abandoned a call to the store
            throw ConfigurationError("--external-log: \(error)")
        }
        if used?.store != owner.store { try ExternalStoreMarker.remember(owner.store, of: store, in: directory) }
    }

    /// The owner `store` records (nil if none), waiting while the store cannot be read (an outage, a share
    /// not mounted yet, a permission being fixed), with a warning each time. A signal ends the wait, even
    /// while a read hangs.
    private static func awaitReadable(_ store: any ExternalStore, logger: Logger) async throws -> ExternalStoreOwner? {
        var delay = Duration.milliseconds(200)
        while true {
            do { return try await ExternalStoreOwner.recorded(in: store) } catch .unavailable(let reason) {
                try Task.checkCancellation()  // a signal abandoned the read: no warning, the node stops
                logger.warning("waiting for the external store, which cannot be read", metadata: ["store": "\(store)", "reason": "\(reason)"])
            } catch {
                throw ConfigurationError("--external-log: \(error)")
            }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    /// The owner of `store` once it is the store whose id is `expected`: waits while the store cannot be
    /// read or holds no owner record (the empty directory a share is mounted on, before it is), and refuses
    /// a store with another id. A signal ends the wait.
    private static func awaitStore(_ store: any ExternalStore, is expected: String, usedBy user: String, logger: Logger) async throws -> ExternalStoreOwner {
        let advice = "if that store is lost for good, a new one is started by removing the file \(ExternalStoreMarker.path(in: "DATA-DIR")) "
            + "on every node (see the ExternalLog article: what a new store forgets)"
        var delay = Duration.milliseconds(200)
        while true {
            if let found = try await awaitReadable(store, logger: logger) {
                guard found.store == expected else {
                    throw ConfigurationError("--external-log: \(store) is store \(found.store) of cluster \(found), but \(user) used store \(expected); \(advice)")
                }
                return found
            }
            logger.warning("waiting for the external store: \(store) holds no store record, but \(user) used store \(expected). Is the share mounted and the path right? This node starts once that store is there; \(advice)")
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    /// A Raft id for a node that joins: random, so that a node that lost its disk never reuses an old vote.
    static func drawNodeID() -> NodeID {
        var drawn = NodeID(0)
        while drawn == .none || drawn == ClusterMember.witnessID { drawn = NodeID(UInt64.random(in: 1...(UInt64.max >> 1))) }
        return drawn
    }

    /// Sends SKIFF.JOIN to each member in turn, with backoff, until one answers or `patience` runs out (nil).
    /// Throws the cluster's reason if it refuses (`RemovedFromCluster` if this node was a member and is no
    /// longer). Every other error is retried: a join asked again is answered the same way. A member that
    /// waits to be initialised itself answers `UNINITIALISED`, which is handed to `waiting`.
    static func askToJoin(_ configuration: NodeConfiguration, nodeID: NodeID, uuid: String?, patience: Duration, logger: Logger,
                          waiting: (String) -> Void = { _ in }) async throws -> ClusterIdentity? {
        let request = ["SKIFF.JOIN", configuration.name, String(nodeID.rawValue), configuration.advertisedPeerAddress.description,
                       configuration.clientAddress.description, String(joinProtocolVersion)] + (uuid.map { [$0] } ?? [])
        let password = configuration.password
        let clock = ContinuousClock()
        let deadline = clock.now + patience
        var delay = Duration.milliseconds(100)
        while true {
            for member in configuration.join {
                let reply: RESPClient.Reply
                let seconds = max(1, min(10, Double((deadline - clock.now).components.seconds)))
                do {
                    reply = try await offThread {
                        let client = try RESPClient(host: member.host, port: member.port, timeoutSeconds: seconds)
                        if let password, case .error(let message) = try client.call("AUTH", password) { return .error(message) }
                        return try client.call(request)
                    }
                } catch {
                    logger.debug("cannot reach a member to join through", metadata: ["member": "\(member)", "error": "\(error)"])
                    continue
                }
                switch reply {
                case .error(let message) where message.contains("JOIN-REFUSED REMOVED"):
                    throw RemovedFromCluster(reason: message)
                case .error(let message) where message.contains("JOIN-REFUSED") || message.hasPrefix("NOAUTH") || message.hasPrefix("WRONGPASS"):
                    throw ConfigurationError("the cluster refused this node: \(message)")
                case .error(let message) where message.hasPrefix("UNINITIALISED"):
                    waiting(message)
                case .error(let message):
                    logger.info("the join is to be retried", metadata: ["member": "\(member)", "reason": "\(message)"])
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

    /// `cluster NAME uuid UUID node ID joined INDEX base HEX seed HEX`, as the leader's `joinAnswer` gives it.
    static func decodeJoinAnswer(_ words: [String]) -> ClusterIdentity? {
        guard words.count % 2 == 0 else { return nil }
        var fields: [String: String] = [:]
        for position in stride(from: 0, to: words.count, by: 2) { fields[words[position]] = words[position + 1] }
        guard let name = fields["cluster"], let uuid = fields["uuid"].flatMap(parseUUID),
              let base = fields["base"].flatMap(bytes(fromHex:)).flatMap(ClusterConfiguration.init(decoding:)),
              let seed = fields["seed"].flatMap(bytes(fromHex:)).flatMap(ClusterConfiguration.init(decoding:)),
              let node = fields["node"].flatMap({ UInt64($0) }), node != 0, let joined = fields["joined"].flatMap({ UInt64($0) }) else { return nil }
        var identity = ClusterIdentity(name: name, uuid: uuid, base: base, seed: seed, nodeID: NodeID(node))
        identity.joinedAt = joined
        return identity
    }
}

/// The cluster says this node was a member and is no longer: it must not run with its old data.
public struct RemovedFromCluster: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { "this node was removed from the cluster: \(reason)" }
}

/// Runs blocking work on a thread of its own, so that it holds no thread of Swift's concurrency pool.
func offThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}
