import Foundation
import Testing

/// The short campaigns of `skiff-torture` that CI runs (the long one is `Tools/dev torture`): real nodes in
/// network namespaces under kills, pauses, partitions and lossy links for 40 seconds, concurrent clients,
/// then the linearizability check, the final reads and the replica comparison: three nodes mirroring to an
/// external store (which faults also take away), and two in witness mode. A new seed each run; a failure
/// prints how to run it again.
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
}
