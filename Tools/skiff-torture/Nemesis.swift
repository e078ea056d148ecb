import Foundation
import SkiffRaft

/// The faults of a run, drawn from its seed: one at a time, each held for a while (longer than an election
/// timeout) and then undone, with quiet gaps between. Every step is logged with its time since the start.
final class Nemesis {
    enum Fault: String, CaseIterable {
        case killOne = "kill a node", killLeader = "kill the leader", killMinority = "kill a minority at once"
        case pauseOne = "pause a node", pauseLeader = "pause the leader"
        case isolateLeader = "isolate the leader", splitMinority = "split off a minority"
        case oneWay = "cut one direction of a link", bridge = "cut all but a bridge node", lossy = "make a node's links lossy"
        case storeOutage = "take the external store away"
        case removeVoter = "remove a voter, then promote it back", replaceNode = "replace a node by an empty one that joins"

        var partitions: Bool { [.isolateLeader, .splitMinority, .oneWay, .bridge, .lossy].contains(self) }
        var membership: Bool { [.removeVoter, .replaceNode].contains(self) }
    }

    private let cluster: Cluster
    /// The external store's directory, if the cluster has one.
    private let store: String?
    /// Whether membership may change (not in witness mode, whose two nodes and store are fixed).
    private let membershipChanges: Bool
    private var random: SplitMix64
    private let start: UInt64
    private(set) var log: [String] = []
    private(set) var injected: [Fault: Int] = [:]

    init(cluster: Cluster, store: String?, membershipChanges: Bool, seed: UInt64, start: UInt64) {
        self.cluster = cluster
        self.store = store
        self.membershipChanges = membershipChanges
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
        let faults = Fault.allCases.filter { fault in
            (cluster.network.canPartition || !fault.partitions) && (fault != .bridge || cluster.nodes >= 3) && (fault != .storeOutage || store != nil)
                && (membershipChanges || !fault.membership)
        }
        while monotonicNow() < deadline {
            sleep(upTo: deadline, seconds: 0.5 + Double(random.below(1500)) / 1000)
            guard monotonicNow() < deadline else { break }
            let fault = faults[Int(random.below(UInt64(faults.count)))]
            let undo = try inject(fault)
            injected[fault, default: 0] += 1
            sleep(upTo: deadline, seconds: 1 + Double(random.below(2500)) / 1000)
            try undo()
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
            note("\(fault.rawValue): kill -9 \(names(victims))\(leader.map { " (leader n\($0))" } ?? "")")
            for node in victims { cluster.kill(node) }
            return { [self] in
                note("restart \(names(victims))")
                for node in victims { try cluster.start(node) }
            }
        case .pauseOne, .pauseLeader:
            let victim = fault == .pauseLeader ? leader ?? any : any
            note("\(fault.rawValue): SIGSTOP n\(victim)")
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
            note("\(fault.rawValue): cut \(names(minority)) from \(names(majority.filter { $0 != kept }))\(kept.map { ", n\($0) reaches both" } ?? "")")
            for a in minority { for b in majority where b != kept { try cutBothWays(a, b) } }
            return heal
        case .oneWay:
            let pair = pick(2, of: nodes)
            note("\(fault.rawValue): drop n\(pair[0]) -> n\(pair[1])")
            try cluster.network.cut(from: pair[0], to: pair[1], percent: 100)
            return heal
        case .lossy:
            let percent = 10 + Int(random.below(30))
            note("\(fault.rawValue): n\(any) loses \(percent)% of what it sends to and receives from the other nodes")
            for other in nodes where other != any {
                try cluster.network.cut(from: any, to: other, percent: percent)
                try cluster.network.cut(from: other, to: any, percent: percent)
            }
            return heal
        case .removeVoter:
            // One membership fault at a time: a learner left by an earlier one (its promotion did not go
            // through in time) is promoted first, so the voters never dwindle.
            if let learner = cluster.learners().first {
                note("\(fault.rawValue): first promote n\(learner), still a learner: \(cluster.admin(["SKIFF.PROMOTE", "n\(learner)"], seconds: 10))")
                return {}
            }
            let victim = random.below(2) == 0 ? leader ?? any : any
            note("\(fault.rawValue): remove n\(victim)\(victim == leader ? " (the leader)" : ""): \(cluster.admin(["SKIFF.REMOVE", "n\(victim)"], seconds: 10))")
            return { [self] in
                // It stands by (--on-removal standby): it asks to be a learner again, then is promoted.
                note("promote n\(victim) back: \(cluster.admin(["SKIFF.PROMOTE", "n\(victim)"], seconds: 20))")
            }
        case .replaceNode:
            let victim = any
            note("\(fault.rawValue): kill -9 n\(victim)")
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
        case .storeOutage:
            // As a lost mount: the directory is gone, which the store reports as unreachable, never as empty.
            let store = store!
            note("\(fault.rawValue): move \(store) aside")
            try FileManager.default.moveItem(atPath: store, toPath: store + ".away")
            return { [self] in
                note("bring the external store back")
                try FileManager.default.moveItem(atPath: store + ".away", toPath: store)
            }
        }
    }

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
