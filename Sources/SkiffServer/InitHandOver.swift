import Foundation
import Logging
import SkiffClient
import SkiffRESP
import Synchronization

/// How the node that coordinated `skiff init` hands the new cluster's identity to the other voters
/// (`SKIFF.ADOPT`), and how it remembers, in `DIR/init-pending`, the voters that have not taken it yet.
///
/// Guarantees: the pending list is on disk before the cluster file, so a coordinator that dies in the
/// middle of an init resumes handing over when it starts again, and the identity is only ever handed to a
/// voter that has never confirmed it (one that never ran in the cluster, so it has no vote to lose).
enum InitHandOver {
    /// How long one hand-over keeps retrying the voters that have not answered.
    static let patience: Duration = .seconds(20)
    /// One hand-over at a time per process: each rewrites the pending list.
    private static let busy = Mutex(false)
    /// An init is being handed on to its coordinator from this process. One at a time: an init that comes back
    /// meanwhile (the address known for the coordinator leads to a node that hands it on again, even this
    /// one) is refused, so that such a loop ends at once instead of opening connections without end.
    private static let handingOn = Mutex(false)

    static func pendingPath(in directory: String) -> String { directory + "/init-pending" }

    /// The voters still to take the identity, by name: none if there is no file.
    static func pending(in directory: String) -> [String] {
        guard let text = try? String(contentsOfFile: pendingPath(in: directory), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    /// Records the voters still to take the identity, durably; an empty list removes the file.
    static func record(pending names: [String], in directory: String) throws {
        if names.isEmpty { return try DurableFile.remove(pendingPath(in: directory), in: directory) }
        try DurableFile.write(names.sorted().joined(separator: "\n") + "\n", to: pendingPath(in: directory), in: directory)
    }

    /// Hands `identity` to each pending voter at the client address its base details give, in parallel,
    /// until each has taken it or refused, for up to `patience`; records who is still pending. Returns what
    /// went wrong, one line per voter (none if every voter took it); nil if a hand-over is running already.
    static func handOver(_ identity: ClusterIdentity, directory: String, password: String?, logger: Logger) async -> [String]? {
        guard busy.withLock({ busy in defer { busy = true }; return !busy }) else { return nil }
        defer { busy.withLock { $0 = false } }
        let pending = pending(in: directory)
        guard !pending.isEmpty else { return [] }
        let addresses = Dictionary(identity.base.details.values.compactMap(MemberDetails.init(decoding:)).map { ($0.name, $0.clientAddress) },
                                   uniquingKeysWith: { first, _ in first })
        let request = MembershipCommand.adopt(fields: identity.adoptFields).words.map { String(decoding: $0, as: UTF8.self) }
        let outcomes = await withTaskGroup(of: (String, String?).self) { group in
            for name in pending {
                group.addTask {
                    guard let address = addresses[name] ?? nil else { return (name, "\(name) has no client address in the cluster's base") }
                    let deadline = ContinuousClock.now + patience
                    while ContinuousClock.now < deadline {
                        switch await call(address, request, password: password, timeoutSeconds: 5) {
                        case .simple?, .bulk?: return (name, nil)
                        case .error(let message)? where !message.hasPrefix("TRYAGAIN"): return (name, "\(name) refused: \(message)")
                        default: try? await Task.sleep(for: .milliseconds(300))
                        }
                    }
                    return (name, "\(name) at \(address) did not answer within \(patience)")
                }
            }
            var outcomes: [String: String?] = [:]
            for await (name, problem) in group { outcomes[name] = problem }
            return outcomes
        }
        let still = outcomes.filter { $0.value != nil }
        do { try record(pending: Array(still.keys), in: directory) } catch {
            logger.warning("cannot record which voters have not taken the cluster's identity yet", metadata: ["error": "\(error)"])
        }
        return still.values.compactMap { $0 }.sorted()
    }

    /// Hands the init `words` on to `coordinator` at `address` and returns its answer, or `noAnswer` if it
    /// cannot be reached; refuses (TRYAGAIN) while another init is being handed on from this process.
    static func handOn(_ words: [String], to coordinator: String, at address: HostAndPort, password: String?, noAnswer: String) async -> RESPValue {
        guard handingOn.withLock({ busy in defer { busy = true }; return !busy }) else {
            return .error("TRYAGAIN this node is handing an init on to \(coordinator) at \(address) already; retry once that is answered. "
                          + "If this repeats, the address known here for \(coordinator) does not lead to \(coordinator) (check its --client-addr)")
        }
        defer { handingOn.withLock { $0 = false } }
        return await call(address, words, password: password, timeoutSeconds: Double(patience.components.seconds) + 10).map(RESPValue.init)
            ?? .error(noAnswer)
    }

    /// One request to another node; nil if it cannot be reached.
    static func call(_ address: HostAndPort, _ words: [String], password: String?, timeoutSeconds: Double) async -> RESPClient.Reply? {
        try? await offThread {
            let client = try RESPClient(host: address.host, port: address.port, timeoutSeconds: timeoutSeconds)
            if let password, case .error(let message) = try client.call("AUTH", password) { return .error(message) }
            return try client.call(words)
        }
    }

    /// The answer to an init, from the hand-over's problems.
    static func answer(_ identity: ClusterIdentity, problems: [String], formedNow: Bool) -> RESPValue {
        let voters = identity.voterNames.sorted().joined(separator: ", ")
        guard problems.isEmpty else {
            return .error("ERR INCOMPLETE cluster \(identity.tag) was formed, but " + problems.joined(separator: "; ")
                          + ". Start those voters with --await-init and repeat the same init to hand it to them again")
        }
        return .array([.bulk(formedNow ? "initialised cluster \(identity.tag), with voters \(voters)"
                                       : "cluster \(identity.tag) is initialised, with voters \(voters)")])
    }
}
