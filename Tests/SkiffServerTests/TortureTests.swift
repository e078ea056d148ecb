import Foundation
import Testing

/// The short campaign of `skiff-torture` that CI runs (the long one is `Tools/dev torture`): three real
/// nodes under kills, pauses and partitions for 40 seconds, concurrent clients, then the linearizability
/// check, the final reads and the replica comparison. A new seed each run; a failure prints how to rerun it.
@Suite struct TortureTests {
    @Test func aShortCampaignUnderFaultsIsLinearizable() throws {
        let seed = "0x" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let (status, output) = try run("skiff-torture", ["--seconds", "40", "--seed", seed, "--network", "namespaces"], seconds: 300)
        #expect(status == 0, "skiff-torture --seed \(seed) failed:\n\(output)")
        #expect(output.contains("PASS: linearizable, replicas agree"))
        // It really ran faults and writes: the tool fails a run with too few, but a test must not trust that alone.
        let summary = output.split(separator: "\n").first { $0.hasPrefix("operations:") }.map(String.init) ?? ""
        let faults = summary.firstMatch(of: /faults: (\d+)/).flatMap { Int($0.1) } ?? 0
        let writes = summary.firstMatch(of: /\((\d+) acknowledged writes\)/).flatMap { Int($0.1) } ?? 0
        #expect(faults >= 5 && writes >= 120, "\(summary)")
        #expect(output.contains("isolate the leader") || output.contains("split off a minority") || output.contains("cut "))
        print("skiff-torture --seed \(seed): \(summary)")
    }
}
