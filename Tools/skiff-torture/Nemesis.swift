import Foundation
import SkiffRaft

/// The faults of a run, drawn from its seed: one at a time, each held for a while (longer than an election
/// timeout) and then undone, with quiet gaps between. Every step is logged with its time since the start.
final class Nemesis {
    /// Each fault's raw value is its name for `--faults`.
    enum Fault: String, CaseIterable {
        case killOne = "kill", killLeader = "kill-leader", killMinority = "kill-minority"
        case pauseOne = "pause", pauseLeader = "pause-leader"
        case isolateLeader = "isolate-leader", splitMinority = "split-minority", oneWay = "one-way", bridge = "bridge", lossy = "lossy"
        case slowLinks = "slow-links", isolateFollower = "isolate-follower"
        case storeOutage = "store-outage", slowStore = "slow-store"
        case removeVoter = "remove-voter", replaceNode = "replace-node"
        case powerCut = "power-cut", powerCutMajority = "power-cut-majority", powerCutAll = "power-cut-all", fsyncFailure = "fsync-eio", diskFull = "disk-full"

        var text: String {
            switch self {
            case .killOne: "kill a node"
            case .killLeader: "kill the leader"
            case .killMinority: "kill a minority at once"
            case .pauseOne: "pause a node"
            case .pauseLeader: "pause the leader"
            case .isolateLeader: "isolate the leader"
            case .splitMinority: "split off a minority"
            case .oneWay: "cut one direction of a link"
            case .bridge: "cut all but a bridge node"
            case .lossy: "make a node's links lossy"
            case .slowLinks: "throttle what a node sends"
            case .isolateFollower: "isolate a follower, then see that its return leaves the leader alone"
            case .slowStore: "make the external store slow"
            case .storeOutage: "take the external store away"
            case .removeVoter: "remove a voter, then promote it back"
            case .replaceNode: "replace a node by an empty one that joins"
            case .powerCut: "cut the power to a node"
            case .powerCutMajority: "cut the power to a majority at once"
            case .powerCutAll: "cut the power to every node at once"
            case .fsyncFailure: "make a node's fsync fail"
            case .diskFull: "fill a node's disk"
            }
        }

        var partitions: Bool { [.isolateLeader, .splitMinority, .oneWay, .bridge, .lossy, .slowLinks, .isolateFollower].contains(self) }
        var store: Bool { [.storeOutage, .slowStore].contains(self) }
        var membership: Bool { [.removeVoter, .replaceNode].contains(self) }
        /// Needs the power-loss library loaded into the nodes.
        var disk: Bool { [.powerCut, .powerCutMajority, .powerCutAll, .fsyncFailure, .diskFull, .slowStore].contains(self) }
    }

    private let cluster: Cluster
    /// The external store's directory, if the cluster has one.
    private let store: String?
    /// The faults to draw from.
    let faults: [Fault]
    private var random: SplitMix64
    private let start: UInt64
    private(set) var log: [String] = []
    private(set) var injected: [Fault: Int] = [:]
    /// Times two faults were in place at once.
    private(set) var together = 0
    /// How much slower a node's disk is made, and for how long, before half of the power cuts.
    static let slowDisk = (sync: 20, write: 1)
    static let slowDiskSeconds = 0.5
    /// Nodes whose power was cut while a WAL segment had several unsynced writes.
    private(set) var nodesCutWithSeveralUnsyncedWrites = 0
    /// Followers that came back from isolation to a leader that had kept leading, and how many of those
    /// returns deposed it (raised the term): with pre-vote, none should.
    private(set) var returns = 0
    private(set) var disruptiveReturns = 0

    /// Draws from `allowed` those this cluster can take: partitions need namespaces, a bridge three nodes,
    /// a store outage a store, membership changes a cluster not in witness mode, disk faults the library.
    init(cluster: Cluster, store: String?, allowed: [Fault], membershipChanges: Bool, seed: UInt64, start: UInt64) {
        self.cluster = cluster
        self.store = store
        faults = allowed.filter { fault in
            (cluster.network.canPartition || !fault.partitions) && (fault != .bridge || cluster.nodes >= 3) && (!fault.store || store != nil)
                && (membershipChanges || !fault.membership) && (cluster.canFailDisks || !fault.disk)
        }
        random = SplitMix64(seed: seed ^ 0x6E65_6D65_7369_7321)
        self.start = start
    }

    func note(_ line: String) {
        let entry = String(format: "[+%7.3fs] ", Double(monotonicNow() - start) / 1e9) + line
        log.append(entry)
        say(entry)
    }

    /// Injects faults until `deadline` (monotonic nanoseconds); leaves none in place.
    func run(until deadline: UInt64) throws {
        guard !faults.isEmpty else { return note("no fault this cluster can take was asked for") }
        while monotonicNow() < deadline {
            sleep(upTo: deadline, seconds: 0.5 + Double(random.below(1500)) / 1000)
            guard monotonicNow() < deadline else { break }
            let fault = faults[Int(random.below(UInt64(faults.count)))]
            var undos = [try inject(fault)]
            injected[fault, default: 0] += 1
            // A quarter of the time a second fault of another kind joins it (the network, the store, a node).
            // Not with an isolated follower, whose return is judged alone.
            let companions = faults.filter { kind(of: $0) != kind(of: fault) && $0 != .isolateFollower }
            if random.below(4) == 0, !companions.isEmpty, fault != .isolateFollower {
                let second = companions[Int(random.below(UInt64(companions.count)))]
                note("and at the same time:")
                undos.append(try inject(second))
                injected[second, default: 0] += 1
                together += 1
            }
            sleep(upTo: deadline, seconds: 1 + Double(random.below(2500)) / 1000)
            for undo in undos.reversed() { try undo() }
            // The next fault meets a cluster that is up again (a debug build restores slowly under load).
            if cluster.waitForLeader(seconds: 10) == nil { note("no leader 10 s after undoing it") }
        }
    }

    /// Puts `fault` in place and returns what undoes it.
    private func inject(_ fault: Fault) throws -> () throws -> Void {
        let nodes = cluster.names
        let leader = cluster.leader()
        let any = nodes[Int(random.below(UInt64(nodes.count)))]
        switch fault {
        case .killOne, .killLeader, .killMinority:
            let victims = fault == .killMinority ? pick((nodes.count - 1) / 2, of: nodes) : [fault == .killLeader ? leader ?? any : any]
            note("\(fault.text): kill -9 \(names(victims))\(leader.map { " (leader n\($0))" } ?? "")")
            for node in victims { cluster.kill(node) }
            return { [self] in
                note("restart \(names(victims))")
                for node in victims { try cluster.start(node) }
            }
        case .pauseOne, .pauseLeader:
            let victim = fault == .pauseLeader ? leader ?? any : any
            note("\(fault.text): SIGSTOP n\(victim)")
            cluster.pause(victim)
            return { [self] in
                note("SIGCONT n\(victim)")
                cluster.resume(victim)
            }
        case .isolateLeader, .splitMinority, .bridge:
            let minority = fault == .isolateLeader ? [leader ?? any] : pick(max(1, (nodes.count - 1) / 2), of: nodes)
            let majority = nodes.filter { !minority.contains($0) }
            // A bridge node stays linked to both sides; only the others are cut.
            let kept = fault == .bridge ? majority.first : nil
            note("\(fault.text): cut \(names(minority)) from \(names(majority.filter { $0 != kept }))\(kept.map { ", n\($0) reaches both" } ?? "")")
            for a in minority { for b in majority where b != kept { try cutBothWays(a, b) } }
            return heal
        case .isolateFollower:
            let follower = nodes.filter { $0 != leader }[Int(random.below(UInt64(nodes.count - 1)))]
            note("\(fault.text): cut n\(follower) from \(names(nodes.filter { $0 != follower }))")
            for other in nodes where other != follower { try cutBothWays(follower, other) }
            return { [self] in
                let before = leader.flatMap { cluster.info($0) }
                try heal()
                guard let leader, let before, before["raft_role"] == "leader", let term = before["raft_term"] else {
                    return note("  the leader changed while n\(follower) was away: its return is not judged")
                }
                Thread.sleep(forTimeInterval: 1.5)
                guard let after = cluster.info(leader) else { return note("  n\(leader) did not answer: the return is not judged") }
                returns += 1
                if after["raft_role"] == "leader" && after["raft_term"] == term {
                    note("  n\(follower) is back; n\(leader) still leads in term \(term)")
                } else {
                    disruptiveReturns += 1
                    note("  n\(follower)'s return deposed n\(leader): it was leader in term \(term), now \(after["raft_role"] ?? "?") in term \(after["raft_term"] ?? "?")")
                }
            }
        case .oneWay:
            let pair = pick(2, of: nodes)
            note("\(fault.text): drop n\(pair[0]) -> n\(pair[1])")
            try cluster.network.cut(from: pair[0], to: pair[1], percent: 100)
            return heal
        case .lossy:
            let percent = 10 + Int(random.below(30))
            note("\(fault.text): n\(any) loses \(percent)% of what it sends to and receives from the other nodes")
            for other in nodes where other != any {
                try cluster.network.cut(from: any, to: other, percent: percent)
                try cluster.network.cut(from: other, to: any, percent: percent)
            }
            return heal
        case .removeVoter:
            // One membership fault at a time: a learner left by an earlier one (its promotion did not go
            // through in time) is promoted first, so the voters never dwindle.
            let members = cluster.members()
            guard let members, members.count == cluster.nodes, members.values.allSatisfy({ $0 == "leader" || $0 == "follower" }) else {
                let learners = members?.filter { $0.value == "learner" }.keys.sorted() ?? []
                for learner in learners { note("\(fault.text): first promote n\(learner), still a learner: \(promote(learner))") }
                if learners.isEmpty { note("\(fault.text): skipped, no leader lists every node as a voter") }
                return {}
            }
            let victim = random.below(2) == 0 ? leader ?? any : any
            note("\(fault.text): remove n\(victim)\(victim == leader ? " (the leader)" : ""): \(cluster.admin(["SKIFF.REMOVE", "n\(victim)"], seconds: 10))")
            return { [self] in
                // It stands by (--on-removal standby): it asks to be a learner again, then is promoted.
                note("promote n\(victim) back: \(promote(victim))")
            }
        case .replaceNode:
            let victim = any
            note("\(fault.text): kill -9 n\(victim)")
            cluster.kill(victim)
            let removed = cluster.admin(["SKIFF.REMOVE", "n\(victim)"], seconds: 10)
            guard removed == "OK" else {
                note("  n\(victim) was not removed (\(removed)); it keeps its data")
                return { [self] in
                    note("restart n\(victim)")
                    try cluster.start(victim)
                }
            }
            try cluster.emptyDataDirectory(victim)
            note("  removed n\(victim) and emptied its data directory")
            return { [self] in
                note("start n\(victim) empty, joining through the others as a voter")
                try cluster.start(victim)
            }
        case .powerCut, .powerCutMajority, .powerCutAll:
            let victims = switch fault {
            case .powerCut: [random.below(2) == 0 ? leader ?? any : any]
            case .powerCutMajority: pick(nodes.count / 2 + 1, of: nodes)
            default: nodes
            }
            let loss = PowerLoss.Loss.allCases[Int(random.below(UInt64(PowerLoss.Loss.allCases.count)))]
            // Half the time the disk is slow first: a WAL then writes frames while earlier ones are syncing
            // (a large value's group goes to the sync stage if more came meanwhile; later groups follow it).
            let slowFirst = cluster.canFailDisks && random.below(2) == 0
            if slowFirst {
                note("\(fault.text): slow the disk of \(names(victims)) (syncs +\(Self.slowDisk.sync) ms, writes +\(Self.slowDisk.write) ms) "
                     + "for \(Self.slowDiskSeconds) s")
                for node in victims { try cluster.slowDisk(node, milliseconds: Self.slowDisk) }
                Thread.sleep(forTimeInterval: Self.slowDiskSeconds)
            }
            note("\(fault.text): kill -9 \(names(victims)), then \(loss.text)")
            for node in victims { cluster.kill(node) }
            if slowFirst { for node in victims { try cluster.slowDisk(node, milliseconds: nil) } }
            for node in victims {
                let cut = try cluster.cutPower(node, loss: loss, random: &random)
                note("  n\(node): \(cut.writesUndone) writes undone in \(cut.filesTouched) files, \(cut.torn) torn, \(cut.writesKept) kept, "
                     + "at most \(cut.mostUnsyncedInASegment) unsynced in one WAL segment")
                if cut.mostUnsyncedInASegment > 1 { nodesCutWithSeveralUnsyncedWrites += 1 }
            }
            return { [self] in
                note("restart \(names(victims))")
                for node in victims { try cluster.start(node) }
            }
        case .fsyncFailure, .diskFull:
            let switchName = fault == .fsyncFailure ? "fsync-eio" : "write-enospc"
            note("\(fault.text): \(switchName) on n\(any)")
            try cluster.setDiskFault(switchName, on: true, node: any)
            return { [self] in
                try cluster.setDiskFault(switchName, on: false, node: any)
                let stopped = cluster.acceptExit(any)
                // After a failed fsync the kernel may have dropped the dirty pages: as good as a power cut.
                if fault == .fsyncFailure {
                    cluster.kill(any)
                    let cut = try cluster.cutPower(any, loss: .all, random: &random)
                    note("\(switchName) off; n\(any) \(stopped.map { "had stopped by itself (\($0))" } ?? "still ran: killed"), \(cut.writesUndone) unsynced writes undone; restart")
                } else {
                    // A node that hit ENOSPC may still be on its way out: end it either way.
                    cluster.kill(any)
                    note("\(switchName) off; n\(any) \(stopped.map { "had stopped by itself (\($0))" } ?? "still ran: killed"); restart")
                }
                try cluster.start(any)
            }
        case .slowLinks:
            let kbit = 64 << Int(random.below(4)), latency = 100 + Int(random.below(400))
            note("\(fault.text): n\(any) sends at most \(kbit) kbit/s, queueing up to \(latency) ms")
            try cluster.network.throttle(any, kbit: kbit, latency: latency)
            return heal
        case .slowStore:
            let delay = 50 + Int(random.below(450))
            note("\(fault.text): every sync of it takes \(delay) ms longer")
            try cluster.slowStore(milliseconds: delay)
            return { [self] in
                note("the external store is fast again")
                try cluster.slowStore(milliseconds: nil)
            }
        case .storeOutage:
            // As a lost mount: the directory is gone, which the store reports as unreachable, never as empty.
            let store = store!
            note("\(fault.text): move \(store) aside")
            try FileManager.default.moveItem(atPath: store, toPath: store + ".away")
            return { [self] in
                note("bring the external store back")
                try Self.bringStoreBack(store)
            }
        }
    }

    /// Puts the external store back at its path. Anything at that path means a node made a store there while
    /// the real one was away, which a node must never do (it would fence nobody): the run fails.
    static func bringStoreBack(_ store: String) throws {
        if FileManager.default.fileExists(atPath: store) {
            let contents = (try? FileManager.default.contentsOfDirectory(atPath: store)) ?? []
            throw TortureError("\(store) was made anew while the external store was away (it holds \(contents.sorted())): a node created a store in its place")
        }
        try FileManager.default.moveItem(atPath: store + ".away", toPath: store)
    }

    /// Promotes a learner, retrying while it is not one yet (a removed node standing by asks to be re-added
    /// first) or the cluster has no leader, for up to 20 s.
    private func promote(_ node: Int) -> String {
        let deadline = Date().addingTimeInterval(20)
        var answer = ""
        repeat {
            answer = cluster.admin(["SKIFF.PROMOTE", "n\(node)"], seconds: 5)
            if answer == "OK" || (!answer.contains("not a learner") && !answer.hasPrefix("TRYAGAIN") && answer != "no node answered") { break }
            Thread.sleep(forTimeInterval: 0.5)
        } while Date() < deadline
        return answer
    }

    /// What a fault acts on: faults of different kinds can be in place together without undoing each other.
    private enum Kind { case network, store, node }
    private func kind(of fault: Fault) -> Kind { fault.partitions ? .network : fault.store ? .store : .node }

    private func heal() throws {
        note("heal the network")
        try cluster.network.heal()
    }

    private func cutBothWays(_ a: Int, _ b: Int) throws {
        try cluster.network.cut(from: a, to: b, percent: 100)
        try cluster.network.cut(from: b, to: a, percent: 100)
    }

    private func pick(_ count: Int, of nodes: [Int]) -> [Int] {
        var pool = nodes
        return (0..<max(1, count)).map { _ in pool.remove(at: Int(random.below(UInt64(pool.count)))) }.sorted()
    }

    private func names(_ nodes: [Int]) -> String { nodes.map { "n\($0)" }.joined(separator: ", ") }

    private func sleep(upTo deadline: UInt64, seconds: Double) {
        let now = monotonicNow()
        let left = Double(deadline > now ? deadline - now : 0) / 1e9
        Thread.sleep(forTimeInterval: min(seconds, left))
    }
}
