import ArgumentParser
import SkiffRaft

struct RaftBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft",
        abstract: "Raft core throughput: a 3-node cluster in memory on one thread, no I/O.",
        discussion: """
            The leader proposes batches of entries; every Ready is 'persisted' at once and its messages are \
            delivered directly, until the batch is committed and applied on the leader. This measures the core \
            alone, so that it is never the server's bottleneck.
            """)

    @Option(help: "Entries per proposal batch.") var batch = 64
    @Option(help: "Payload bytes per entry.") var payloadBytes = 100
    @Option(help: "Seconds to run.") var seconds = 3.0

    func run() throws {
        guard batch > 0, payloadBytes >= 0, seconds > 0 else { throw ValidationError("batch, payload and seconds must be positive") }
        let voters: Set<NodeID> = [NodeID(1), NodeID(2), NodeID(3)]
        var cores = (1...3).map { id -> RaftCore in
            RaftCore(configuration: RaftConfiguration(id: NodeID(UInt64(id))),
                     recovered: RecoveredState(initialConfiguration: ClusterConfiguration(voters: voters)),
                     random: SplitMix64(seed: UInt64(id)))
        }
        var messagesDelivered = 0
        var applied = 0
        func pump() {
            var moved = true
            while moved {
                moved = false
                for position in cores.indices {
                    guard let ready = cores[position].ready() else { continue }
                    moved = true
                    if position == 0 { applied += ready.committedEntries.count }
                    cores[position].advance(ready)
                    for message in ready.messages + ready.messagesAfterPersist {
                        try! cores[Int(message.to.rawValue) - 1].step(message)
                        messagesDelivered += 1
                    }
                }
            }
        }
        cores[0].campaign()
        pump()
        precondition(cores[0].isLeader, "node 1 should lead")
        let payload = [UInt8](repeating: 0x61, count: payloadBytes)
        applied = 0
        messagesDelivered = 0
        let start = now()
        var rounds = 0
        while now() - start < seconds && rounds < 10_000_000 {
            _ = cores[0].propose(batch: Array(repeating: payload, count: batch))
            pump()
            rounds += 1
            if rounds % 256 == 0 {  // keep memory flat: forget what every node has applied
                for position in cores.indices { cores[position].compact(through: cores[position].appliedIndex) }
            }
        }
        let elapsed = now() - start
        print("raft core, 3 nodes in memory, one thread, batches of \(batch) x \(payloadBytes) B:")
        print("  \(formatRate(Double(applied) / elapsed)) committed entries/s, \(formatRate(Double(messagesDelivered) / elapsed)) messages/s")
        print("  peak resident memory: \(megabytes(Double(peakResidentBytes()))) MB")
    }
}
