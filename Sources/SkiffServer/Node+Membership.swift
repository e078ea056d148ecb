import NIOCore
import SkiffRaft
import SkiffRESP
import SkiffTransport

/// Why a membership command did not run, as a Redis error line (`ERR ...`, `TRYAGAIN ...`).
public struct MembershipFailure: Error, Sendable {
    public var message: String
    init(_ message: String) { self.message = message }
}

/// The protocol version a joining node must speak.
let joinProtocolVersion = 1

extension Node {
    // MARK: Who the members are

    /// A member's name and addresses: from the configuration in force, else from those this node started from.
    func details(of node: NodeID) -> MemberDetails? {
        for configuration in [core.clusterConfiguration, identity.seed, identity.base] {
            if let bytes = configuration.details[node], let details = MemberDetails(decoding: bytes) { return details }
        }
        return nil
    }

    /// Points the transport at the members of the configuration in force, and, while that configuration does
    /// not name this node yet (it joined and has not caught up), at the members it knew when it joined.
    func syncPeers() {
        let configuration = core.clusterConfiguration
        let seeding = !configuration.contains(id) && identity.seed != .empty
        guard configuration != peersConfiguration || seeding != peersSeeded else { return }
        peersConfiguration = configuration
        peersSeeded = seeding
        var peers: [NodeID: SocketAddress] = [:]
        for member in configuration.members.union(seeding ? identity.seed.members : []) where member != id {
            guard let details = details(of: member) else { continue }  // the witness: the node answers for it
            knownNames[member] = details.name
            do {
                peers[member] = try SocketAddress.makeAddressResolvingHost(details.peerAddress.host, port: details.peerAddress.port)
            } catch {
                logger.warning("cannot resolve a member's peer address", metadata: ["peer": "\(details.name)", "address": "\(details.peerAddress)"])
            }
        }
        transport.updatePeers(peers, names: knownNames)
    }

    // MARK: Membership commands

    /// Runs `command` on the leader (handing it over if this node does not lead); `completion` runs on the
    /// loop with the reply's words (none for a plain OK) once the change is committed.
    public func runMembership(_ command: MembershipCommand, completion: @escaping (Result<[[UInt8]], MembershipFailure>) -> Void) {
        guard !stopped else { return completion(.failure(MembershipFailure("ERR the server is shutting down"))) }
        if answerInitialised(command, completion: completion) { return }
        guard witness == nil else {
            return completion(.failure(MembershipFailure("ERR a witness-mode cluster has exactly two nodes; its membership cannot change")))
        }
        if core.isLeader { return lead(command, completion: completion) }
        guard core.leader != .none, transport.isConnected(to: core.leader) else {
            return completion(.failure(MembershipFailure("TRYAGAIN no leader is available; nothing was changed, retry")))
        }
        let request = membership.forward(completion, deadline: .now() + timeAmount(configuration.requestTimeout))
        transport.send(.adminRequest(id: request, words: command.words), to: core.leader)
    }

    /// The init that formed this cluster, asked again: the coordinator (the first voter by name) hands the
    /// identity to any voter that has not taken it yet; another member passes the init on to it.
    private func repeatInit(completion: @escaping (Result<[[UInt8]], MembershipFailure>) -> Void) {
        let (identity, directory, password, logger, loop) = (identity, configuration.dataDirectory, configuration.password, logger, loop)
        let coordinator = identity.voterNames.min()!
        let coordinatorAddress = identity.base.details.values.compactMap(MemberDetails.init(decoding:)).first { $0.name == coordinator }?.clientAddress
        let name = configuration.name
        let answer = NIOLoopBound(completion, eventLoop: loop)
        Task {
            let reply: RESPValue
            if coordinator == name {
                let problems = await InitHandOver.handOver(identity, directory: directory, password: password, logger: logger)
                reply = problems.map { InitHandOver.answer(identity, problems: $0, formedNow: false) }
                    ?? .error("TRYAGAIN this node is handing the cluster's identity over already; retry in a few seconds")
            } else if let coordinatorAddress {
                reply = await InitHandOver.handOn(["SKIFF.INIT", identity.name] + identity.voterNames, to: coordinator, at: coordinatorAddress,
                                                  password: password,
                                                  noAnswer: "ERR NO-ANSWER the coordinating node \(coordinator) at \(coordinatorAddress) did not answer; it knows whether every voter took the cluster's identity")
            } else {
                reply = InitHandOver.answer(identity, problems: [], formedNow: false)  // a static cluster: nothing to hand over
            }
            loop.execute {
                switch reply {
                case .error(let message): answer.value(.failure(MembershipFailure(message)))
                case .array(let items): answer.value(.success(items.compactMap { if case .bulk(let bytes) = $0 { bytes } else { nil } }))
                default: answer.value(.success([]))
                }
            }
        }
    }

    /// SKIFF.INIT and SKIFF.ADOPT reaching a node that has a cluster, answered here (false for any other
    /// command): they succeed only if they name the cluster it is in, so that an init repeated (its answer
    /// lost, or some voters missed it) is harmless and no node changes cluster.
    private func answerInitialised(_ command: MembershipCommand, completion: @escaping (Result<[[UInt8]], MembershipFailure>) -> Void) -> Bool {
        let refusal = MembershipFailure("ERR ALREADY-INITIALISED this node belongs to cluster \(identity.tag), whose first voters are \(identity.voterNames.sorted().joined(separator: ", "))")
        switch command {
        case .initialise(let name, let voters):
            if let problem = WaitingNode.checkInit(clusterName: name, voters: voters) {
                completion(.failure(MembershipFailure(problem)))
            } else if name == identity.name, Set(voters) == Set(identity.voterNames) {
                repeatInit(completion: completion)
            } else {
                completion(.failure(refusal))
            }
        case .adopt(let fields):
            completion(fields["uuid"] == identity.uuidString ? .success([]) : .failure(refusal))
        default:
            return false
        }
        return true
    }

    /// A follower handed over a membership command: run it if this node leads.
    func answerAdminRequest(id request: UInt64, words: [[UInt8]], from peer: NodeID) {
        let reply: (Result<[[UInt8]], MembershipFailure>) -> Void = { [self] result in
            switch result {
            case .success(let words): transport.send(.adminReply(id: request, isError: false, words: words), to: peer)
            case .failure(let failure): transport.send(.adminReply(id: request, isError: true, words: [Array(failure.message.utf8)]), to: peer)
            }
        }
        guard case .success(.membership(let command)) = ClientCommand.parse(words) else {
            return reply(.failure(MembershipFailure("ERR the forwarded membership command does not parse")))
        }
        guard core.isLeader else { return reply(.failure(MembershipFailure("TRYAGAIN the node asked no longer leads; retry"))) }
        guard witness == nil else {
            return reply(.failure(MembershipFailure("ERR a witness-mode cluster has exactly two nodes; its membership cannot change")))
        }
        lead(command, completion: reply)
    }

    /// The member called `name`: by the name in its details, or, for a member without details (a static
    /// member of a cluster older than details), by the id its name hashes to.
    func member(named name: String, in configuration: ClusterConfiguration) -> NodeID? {
        if let found = configuration.members.first(where: { details(of: $0)?.name == name }) { return found }
        let hashed = ClusterMember.id(of: name)
        return configuration.contains(hashed) && details(of: hashed) == nil ? hashed : nil
    }

    /// The leader's side of each command: checks, then a configuration entry, answered once applied.
    private func lead(_ command: MembershipCommand, completion: @escaping (Result<[[UInt8]], MembershipFailure>) -> Void) {
        let configuration = core.clusterConfiguration
        func fail(_ message: String) { completion(.failure(MembershipFailure(message))) }
        func propose(_ change: ConfigurationChange, details: MemberDetails?, answer: (UInt64) -> [[UInt8]] = { _ in [] }) {
            switch core.proposeConfigurationChange(change, details: details?.encoded()) {
            case .success(let index):
                membership.awaitCommit(index: index.rawValue, term: core.term, answer: answer(index.rawValue), completion: completion,
                                       deadline: .now() + timeAmount(self.configuration.requestTimeout))
                scheduleReady()
            case .failure(.configurationChangeInProgress):
                fail("TRYAGAIN an earlier membership change, or this leader's first entry, is not committed yet; retry")
            case .failure(.leadershipTransferInProgress):
                fail("TRYAGAIN leadership is being handed over; retry")
            case .failure(let refusal):
                fail("ERR \(refusal)")
            }
        }
        switch command {
        case .join(let name, let requestedID, let peer, let client, let version, let uuid):
            guard version == joinProtocolVersion else {
                return fail("ERR JOIN-REFUSED the joining node speaks protocol \(version); this cluster speaks \(joinProtocolVersion)")
            }
            if let uuid, uuid != identity.uuidString {
                return fail("ERR JOIN-REFUSED the node's data belongs to cluster \(uuid), not to this cluster \(identity.tag)")
            }
            let details: MemberDetails
            switch memberDetails(name: name, peer: peer, client: client) {
            case .failure(let failure): return fail("ERR JOIN-REFUSED \(failure.message)")
            case .success(let parsed): details = parsed
            }
            let committed = core.clusterConfiguration(at: core.commitIndex)
            if let existing = member(named: name, in: configuration) {
                guard self.details(of: existing)?.peerAddress == details.peerAddress else {
                    return fail("ERR JOIN-REFUSED the name \(name) is taken by a member at \(self.details(of: existing)?.peerAddress.description ?? "?"); choose another name or remove that member first")
                }
                // The same node asking again; or a learner (added by SKIFF.ADDLEARNER, or by a join whose answer
                // was lost), which a fresh node that joins with its name and address takes over: a learner has
                // no vote to reuse. Only one that never acknowledged an entry here, though: otherwise this
                // leader would credit the newcomer with entries only the old one held.
                let sameNode = existing == NodeID(requestedID)
                let learnerSlot = uuid == nil && configuration.learners.contains(existing) && (core.followers[existing]?.match.rawValue ?? 0) == 0
                guard sameNode || learnerSlot else {
                    return fail("ERR JOIN-REFUSED \(name) is already a member under another id: a node that lost its data must be removed (skiff remove \(name)) and join again")
                }
                guard committed.contains(existing) else { return fail("TRYAGAIN the join of \(name) is not committed yet; retry") }
                return completion(.success(joinAnswer(for: existing, joinedAt: core.commitIndex.rawValue)))
            }
            guard uuid == nil else {
                return fail("ERR JOIN-REFUSED REMOVED \(name) is no longer a member of \(identity.tag); empty its data directory to join again")
            }
            let node = NodeID(requestedID)
            guard node != ClusterMember.witnessID, !configuration.contains(node) else {
                return fail("TRYAGAIN the node id \(requestedID) is taken; retry with another")
            }
            propose(.addLearner(node), details: details) { [self] index in joinAnswer(for: node, joinedAt: index) }
        case .addLearner(let name, let peer, let client):
            switch memberDetails(name: name, peer: peer, client: client) {
            case .failure(let failure): return fail("ERR \(failure.message)")
            case .success(let details):
                let node = ClusterMember.id(of: name)
                guard member(named: name, in: configuration) == nil else { return fail("ERR \(name) is already a member") }
                guard node != ClusterMember.witnessID, !configuration.contains(node) else {
                    return fail("ERR the id that \(name) hashes to is taken; choose another name")
                }
                propose(.addLearner(node), details: details)
            }
        case .promote(let name):
            guard let node = member(named: name, in: configuration), configuration.learners.contains(node) else {
                return fail("ERR \(name) is not a learner of this cluster")
            }
            // Caught up: within a moment's writes of the commit index, so that its promotion costs no availability.
            let match = core.followers[node]?.match.rawValue ?? 0
            guard match + 1_000 >= core.commitIndex.rawValue else {
                return fail("TRYAGAIN \(name) has not caught up yet (it holds up to \(match), the cluster has committed \(core.commitIndex)); retry")
            }
            propose(.addVoter(node), details: nil)
        case .remove(let name):
            guard let node = member(named: name, in: configuration) else { return fail("ERR \(name) is not a member of this cluster") }
            propose(.remove(node), details: nil)
        case .standby(let name, let requestedID, let peer, let client):
            let details: MemberDetails
            switch memberDetails(name: name, peer: peer, client: client) {
            case .failure(let failure): return fail("ERR \(failure.message)")
            case .success(let parsed): details = parsed
            }
            let node = NodeID(requestedID)
            if let existing = member(named: name, in: configuration) {
                guard existing == node else { return fail("ERR \(name) is a member under another id; this node cannot stand by under that name") }
                guard core.clusterConfiguration(at: core.commitIndex).contains(node) else { return fail("TRYAGAIN the standby of \(name) is not committed yet; retry") }
                return completion(.success([]))
            }
            guard node != ClusterMember.witnessID, !configuration.contains(node) else { return fail("ERR the node id \(requestedID) is taken") }
            propose(.addLearner(node), details: details)
        case .initialise, .adopt:
            fail("ERR SKIFF.INIT and SKIFF.ADOPT are answered by the node they are sent to")
        case .transferLeadership(let name):
            guard let node = member(named: name, in: configuration) else { return fail("ERR \(name) is not a member of this cluster") }
            if node == id { return completion(.success([])) }
            if let refusal = core.transferLeadership(to: node) { return fail("ERR \(name) cannot take over: \(refusal)") }
            scheduleReady()
            completion(.success([]))
        }
    }

    /// A new member's details, or why they are not valid (a message without an error code).
    private func memberDetails(name: String, peer: String, client: String?) -> Result<MemberDetails, MembershipFailure> {
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: "=") && $0 != UInt8(ascii: ",") }) else {
            return .failure(MembershipFailure("'\(name)' is not a node name (no spaces, '=' or ',')"))
        }
        do {
            return .success(MemberDetails(name: name, peerAddress: try HostAndPort(parsing: peer), clientAddress: try client.map { try HostAndPort(parsing: $0) }))
        } catch {
            return .failure(MembershipFailure("\(error)"))
        }
    }

    /// What a joining node needs: the cluster tag, its id, the configuration its log starts from, and the
    /// current one with every member's details this leader knows (whose members it dials until its log
    /// catches up).
    private func joinAnswer(for node: NodeID, joinedAt: UInt64) -> [[UInt8]] {
        let base = core.clusterConfiguration(at: LogIndex(core.firstIndex.rawValue - 1))
        let current = core.clusterConfiguration
        var known: [NodeID: [UInt8]] = [:]
        for member in current.members { known[member] = details(of: member)?.encoded() }
        let seed = ClusterConfiguration(voters: current.voters, learners: current.learners, details: known)
        return [("cluster", identity.name), ("uuid", identity.uuidString), ("node", String(node.rawValue)), ("joined", String(joinedAt)),
                ("base", ClusterIdentity.hex(base.encoded())), ("seed", ClusterIdentity.hex(seed.encoded()))]
            .flatMap { [Array($0.0.utf8), Array($0.1.utf8)] }
    }

    // MARK: Upkeep, each tick

    /// This node was removed: stop, or (`--on-removal standby`) ask every member it reaches to add it back
    /// as a learner, every 20 ticks until it is one. It keeps its id: it kept its data, its vote included.
    private func noticeRemoval() {
        switch configuration.onRemoval {
        case .shutdown:
            guard !removalReported else { return }
            removalReported = true
            logger.error("this node was removed from the cluster; shutting down (empty its data directory and join again to come back)",
                         metadata: ["cluster": "\(identity.tag)"])
            onRemoved()
        case .standby:
            if !removalReported {
                removalReported = true
                logger.warning("this node was removed from the cluster; asking to stand by as a learner (--on-removal standby)",
                               metadata: ["cluster": "\(identity.tag)"])
            }
            guard ticks % 20 == 0 else { return }
            let command = MembershipCommand.standby(name: configuration.name, nodeID: id.rawValue, peerAddress: configuration.advertisedPeerAddress.description,
                                                    clientAddress: configuration.clientAddress.description)
            // Whoever leads answers; the others say TRYAGAIN. The node knows no leader: it stopped following.
            for peer in core.clusterConfiguration.members where peer != id && transport.isConnected(to: peer) {
                let request = membership.forward({ [self] result in
                    if case .failure(let failure) = result, !failure.message.hasPrefix("TRYAGAIN") {
                        logger.warning("the cluster did not take this node back as a learner", metadata: ["reason": "\(failure.message)"])
                    }
                }, deadline: .now() + timeAmount(configuration.requestTimeout))
                transport.send(.adminRequest(id: request, words: command.words), to: peer)
            }
        }
    }

    /// Expires waits, notices this node's removal, and asks for a learner's promotion once it caught up.
    func membershipTick() {
        membership.expire(now: .now())
        if !core.isRemoved, removalReported, configuration.onRemoval == .standby {
            removalReported = false
            logger.notice("standing by as a learner of the cluster again", metadata: ["cluster": "\(identity.tag)"])
        }
        if core.isRemoved, storeIndex >= identity.joinedAt {
            noticeRemoval()
        }
        let caughtUp = core.commitIndex.rawValue > 0 && storeIndex >= core.commitIndex.rawValue
        if configuration.joinAsVoter, core.clusterConfiguration.learners.contains(id), caughtUp, ticks % 20 == 0 {
            runMembership(.promote(name: configuration.name)) { [self] result in
                if case .failure(let failure) = result { logger.debug("promotion not granted yet", metadata: ["reason": "\(failure.message)"]) }
                else { logger.notice("promoted from learner to voter") }
            }
        }
    }
}

/// Membership commands waiting: those handed to the leader (by request id) and those proposed here (by the
/// index of their configuration entry), each with a deadline. A class, for the reason `WriteTracker` gives:
/// a completion may hand the client's next membership command over at once.
final class MembershipWaits {
    typealias Completion = (Result<[[UInt8]], MembershipFailure>) -> Void
    private var forwarded: [UInt64: (completion: Completion, deadline: NIODeadline)] = [:]
    private var proposed: [UInt64: (term: UInt64, answer: [[UInt8]], completion: Completion, deadline: NIODeadline)] = [:]
    private var nextRequest: UInt64 = 1

    func forward(_ completion: @escaping Completion, deadline: NIODeadline) -> UInt64 {
        defer { nextRequest += 1 }
        forwarded[nextRequest] = (completion, deadline)
        return nextRequest
    }

    func replied(_ request: UInt64, isError: Bool, words: [[UInt8]]) {
        guard let waiting = forwarded.removeValue(forKey: request) else { return }
        waiting.completion(isError ? .failure(MembershipFailure(words.first.map { String(decoding: $0, as: UTF8.self) } ?? "ERR")) : .success(words))
    }

    func awaitCommit(index: UInt64, term: UInt64, answer: [[UInt8]], completion: @escaping Completion, deadline: NIODeadline) {
        proposed[index] = (term, answer, completion, deadline)
    }

    /// The entry at `index` was applied, from `term`: the change waited on there took effect if the terms match.
    func applied(index: UInt64, term: UInt64) {
        guard let waiting = proposed.removeValue(forKey: index) else { return }
        waiting.completion(waiting.term == term ? .success(waiting.answer)
                           : .failure(MembershipFailure("TRYAGAIN leadership changed before the membership change was committed; it was not made, retry")))
    }

    func expire(now: NIODeadline) {
        for (request, waiting) in forwarded where waiting.deadline <= now {
            forwarded[request] = nil
            waiting.completion(.failure(MembershipFailure("TRYAGAIN the leader did not answer in time; check SKIFF.MEMBERS before retrying")))
        }
        for (index, waiting) in proposed where waiting.deadline <= now {
            proposed[index] = nil
            waiting.completion(.failure(MembershipFailure("ERR the membership change was not committed in time; check SKIFF.MEMBERS before retrying")))
        }
    }

    func failAll() {
        let waiting = forwarded.values.map(\.completion) + proposed.values.map(\.completion)
        forwarded.removeAll()
        proposed.removeAll()
        for completion in waiting { completion(.failure(MembershipFailure("ERR the server is shutting down; check SKIFF.MEMBERS for whether the change was made"))) }
    }
}
