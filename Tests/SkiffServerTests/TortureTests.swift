import Foundation
import Testing

/// The short campaigns of `skiff-torture` that CI runs (the long one is `Tools/dev torture`): real nodes in
/// network namespaces under kills, pauses, partitions and lossy links for 40 seconds, concurrent clients,
/// then the linearizability check, the final reads and the replica comparison: three nodes mirroring to an
/// external store (which faults also take away), and two in witness mode; and power cuts, with and without
/// fsync before acknowledging. A new seed each run; a failure prints how to run it again.
@Suite struct TortureTests {
    @Test(arguments: [["--nodes", "3", "--external-log"], ["--nodes", "2", "--witness"]])
    func aShortCampaignUnderFaultsIsLinearizable(cluster: [String]) throws {
        let seed = "0x" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let arguments = ["--seconds", "40", "--seed", seed, "--network", "namespaces"] + cluster
        let (status, output) = try run("skiff-torture", arguments, seconds: 300)
        #expect(status == 0, "skiff-torture \(arguments.joined(separator: " ")) failed:\n\(output)")
        #expect(output.contains("PASS: linearizable, replicas agree"))
        // It really ran faults and writes: the tool fails a run with too few, but a test must not trust that alone.
        let summary = output.split(separator: "\n").first { $0.hasPrefix("operations:") }.map(String.init) ?? ""
        let faults = summary.firstMatch(of: /faults: (\d+)/).flatMap { Int($0.1) } ?? 0
        let writes = summary.firstMatch(of: /\((\d+) acknowledged writes\)/).flatMap { Int($0.1) } ?? 0
        #expect(faults >= 5 && writes >= 120, "\(summary)")
        print("skiff-torture \(arguments.joined(separator: " ")): \(summary)")
    }

    /// Without namespaces a proxy in front of each node's peer port cuts links: isolating the leader makes
    /// another node lead, so the leaders isolated over a run are not all the same node.
    @Test func partitionsWorkThroughTheLoopbackProxies() throws {
        let seed = "0x" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let arguments = ["--seconds", "20", "--seed", seed, "--network", "loopback", "--faults", "isolate-leader"]
        let (status, output) = try run("skiff-torture", arguments, seconds: 300)
        #expect(status == 0, "skiff-torture \(arguments.joined(separator: " ")) failed:\n\(output)")
        #expect(output.contains("loopback, a proxy per link"))
        let isolated = Set(output.split(separator: "\n").compactMap { $0.firstMatch(of: /isolate the leader: cut (n\d)/).map { String($0.1) } })
        #expect(isolated.count >= 2, "the leader never changed: did the proxies cut nothing?\n\(output)")
    }

    /// Power cuts of every node at once (each loses every write it had not fsynced) lose no acknowledged
    /// write; with the nodes acknowledging before fsync (`--fsync never`), the same faults are caught: as
    /// reads that miss acknowledged writes, or as nodes that stop on a log contradicting the leader's.
    @Test(arguments: [false, true])
    func powerCutsLoseNothingUnlessWritesAreAcknowledgedBeforeFsync(unsafe: Bool) throws {
        let seed = "0x" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let arguments = ["--seconds", "20", "--seed", seed, "--network", "loopback", "--faults", "power-cut-all"]
            + (unsafe ? ["--unsafe-no-fsync"] : [])
        let (status, output) = try run("skiff-torture", arguments, seconds: 300)
        #expect(output.contains("disk faults on"), "the power-loss library was not found:\n\(output)")
        let cuts = output.split(separator: "\n").filter { $0.hasPrefix("[+") && $0.contains("cut the power") && $0.contains("kill -9") }.count
        // An unsafe run may stop drawing faults early: nodes that found their logs contradicting stay down.
        #expect(cuts >= (unsafe ? 1 : 3), "\(output)")
        if unsafe {
            // Caught either way: reads that miss acknowledged writes, or a node that stops on finding its log
            // contradicting the leader's (Raft's invariants assume what was acknowledged is on disk).
            #expect(status != 0)
            #expect(output.contains("is not linearizable") || output.contains("exited by itself"), "acknowledging before fsync went unnoticed:\n\(output)")
        } else {
            #expect(status == 0, "skiff-torture \(arguments.joined(separator: " ")) failed:\n\(output)")
        }
    }
}
