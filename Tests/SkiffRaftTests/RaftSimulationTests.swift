import Foundation
import SkiffRaft
import SkiffSimulation
import Testing

/// Seeded simulations of whole clusters under faults, checking Raft's safety after every step and liveness
/// after healing. `SKIFF_SEED=0x1234 swift test --filter RaftSimulationTests` replays one seed;
/// `SKIFF_SEEDS=N` runs N seeds from `SKIFF_SEED_BASE` (default: a fixed base, plus a few new ones);
/// `SKIFF_TRACE=1` prints every event of the run.
@Suite struct RaftSimulationTests {
    static let environment = ProcessInfo.processInfo.environment

    static func seeds() -> [UInt64] {
        if let one = environment["SKIFF_SEED"].flatMap(parseSeed) { return [one] }
        let count = environment["SKIFF_SEEDS"].flatMap { Int($0) } ?? 2000
        let base = environment["SKIFF_SEED_BASE"].flatMap(parseSeed) ?? 0x5EED_0000
        var seeds = (0..<UInt64(count)).map { base + $0 }
        if environment["SKIFF_SEEDS"] == nil {  // a few new seeds every run, printed so a failure can be replayed
            var fresh = SystemRandomNumberGenerator()
            seeds += (0..<8).map { _ in fresh.next() }
        }
        return seeds
    }

    static func parseSeed(_ text: String) -> UInt64? {
        text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
    }

    @Test func safetyHoldsAndTheClusterRecoversForEverySeed() throws {
        var totals = SimulationSummary()
        let seeds = Self.seeds()
        for seed in seeds {
            let options = SimulationOptions.varied(seed: seed)
            do {
                let simulation = Simulation(seed: seed, options: options)
                if Self.environment["SKIFF_TRACE"] != nil { simulation.trace = { print($0) } }
                let summary = try simulation.run()
                totals.committed += summary.committed
                totals.elections += summary.elections
                totals.crashes += summary.crashes
                totals.partitions += summary.partitions
                totals.membershipChanges += summary.membershipChanges
                totals.transfers += summary.transfers
                totals.snapshotsInstalled += summary.snapshotsInstalled
                totals.readsConfirmed += summary.readsConfirmed
                totals.messagesDelivered += summary.messagesDelivered
                totals.messagesFromRemovedNodes += summary.messagesFromRemovedNodes
                totals.externalBatches += summary.externalBatches
                totals.externalFences += summary.externalFences
                totals.externalAdopted += summary.externalAdopted
                totals.externalTrims += summary.externalTrims
                totals.witnessVotes += summary.witnessVotes
                totals.externalReplacements += summary.externalReplacements
                totals.externalSnapshotRecords += summary.externalSnapshotRecords
            } catch {
                Issue.record("""
                    seed 0x\(String(seed, radix: 16)) (\(options)) failed: \(error)
                    replay: SKIFF_SEED=0x\(String(seed, radix: 16)) swift test --filter RaftSimulationTests
                    """)
                return
            }
        }
        print("simulated \(seeds.count) seeds: \(totals.committed) entries applied, \(totals.messagesDelivered) messages, "
              + "\(totals.crashes) crashes, \(totals.partitions) partitions, \(totals.membershipChanges) membership changes, "
              + "\(totals.transfers) transfers, \(totals.snapshotsInstalled) snapshots installed, \(totals.readsConfirmed) reads, "
              + "\(totals.messagesFromRemovedNodes) messages from removed nodes; "
              + "external log: \(totals.externalBatches) batches, \(totals.externalFences) leaders fenced, "
              + "\(totals.externalAdopted) entries adopted by replays, \(totals.externalTrims) trims, \(totals.witnessVotes) witness votes, "
              + "\(totals.externalReplacements) stores replaced, \(totals.externalSnapshotRecords) snapshot records")
        // The runs must have exercised what they claim to.
        #expect(totals.committed > seeds.count * 20)
        if seeds.count > 50 {
            #expect(totals.crashes > 0 && totals.partitions > 0 && totals.membershipChanges > 0)
            #expect(totals.snapshotsInstalled > 0 && totals.readsConfirmed > 0 && totals.transfers > 0 && totals.messagesFromRemovedNodes > 0)
            #expect(totals.externalBatches > 0 && totals.externalFences > 0 && totals.externalAdopted > 0 && totals.externalTrims > 0)
            #expect(totals.witnessVotes > 0 && totals.externalSnapshotRecords > 0)
        }
    }
}
