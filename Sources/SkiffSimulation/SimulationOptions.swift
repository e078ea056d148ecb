import SkiffRaft

/// What a simulated run may do. Every choice inside a run comes from its seed.
public struct SimulationOptions: Sendable, CustomStringConvertible {
    /// Voters at the start (1 to 7); spare nodes up to `nodesMax` can be added by membership changes.
    public var voters = 3
    public var nodesMax = 5
    /// Steps of the faulty phase, then the network heals and the liveness phase begins.
    public var steps = 3000
    /// Chances, in percent, that a delivered message is lost, and that it is also delivered a second time.
    public var dropPercent: UInt64 = 5
    public var duplicatePercent: UInt64 = 3
    public var crashes = true
    /// Processes stop now and then (their clocks stand still) and later resume.
    public var pauses = true
    public var partitions = true
    public var membershipChanges = true
    public var leadershipTransfers = true
    public var snapshots = true
    public var electionTicks = 10
    /// Crash and isolate leaders far more often.
    public var leaderChurn = false
    /// Payload bytes per append message; 8 sends one command per message.
    public var appendBytesMax = 64
    /// Leaders mirror to a simulated external log and commit only what it holds; nodes replay its tail
    /// before campaigning; with snapshots, the leader trims the external log behind them.
    public var externalLog = false
    /// Witness mode (with `externalLog`): the external log is a third voter, answering votes and heartbeats
    /// by the records in it, so two nodes keep going with one down.
    public var witness = false
    /// Ticks after healing within which a leader must be elected and a proposal committed everywhere.
    public var livenessTicksMax = 400

    public init() {}

    /// A different mix of sizes and faults for each seed, so a sweep covers them all.
    public static func varied(seed: UInt64) -> SimulationOptions {
        var random = SplitMix64(seed: seed ^ 0xA5A5_5A5A_C3C3_3C3C)
        var options = SimulationOptions()
        options.voters = Int(1 + random.below(7))
        options.nodesMax = min(7, options.voters + Int(random.below(3)))
        options.dropPercent = random.below(15)
        options.duplicatePercent = random.below(8)
        options.crashes = random.below(4) != 0
        options.pauses = random.below(3) != 0
        options.partitions = random.below(4) != 0
        options.membershipChanges = random.below(3) != 0
        options.leadershipTransfers = random.below(2) == 0
        options.snapshots = random.below(3) != 0
        options.appendBytesMax = [8, 64, 1024][Int(random.below(3))]
        if random.below(4) == 0 {
            // Leader churn: five voters, one entry per append, many leader crashes and isolations. This is
            // where a new leader can find a majority holding an old term's entry but not its own (Figure 8).
            options.voters = 5
            options.nodesMax = 5
            options.appendBytesMax = 8
            options.membershipChanges = false
            options.snapshots = false
            options.leaderChurn = true
            options.crashes = true
            options.partitions = true
        }
        // Drawn last, so that every other option of a seed stays what it was before this one existed.
        if random.below(3) == 0 { options.externalLog = true }
        if options.externalLog, random.below(2) == 0 {
            options.witness = true
            options.voters = 2
            options.nodesMax = 2
            options.membershipChanges = false
        }
        return options
    }

    public var description: String {
        "voters=\(voters) nodes-max=\(nodesMax) steps=\(steps) drop=\(dropPercent)% dup=\(duplicatePercent)% "
            + "crashes=\(crashes) pauses=\(pauses) partitions=\(partitions) membership=\(membershipChanges) "
            + "transfers=\(leadershipTransfers) snapshots=\(snapshots) append-bytes=\(appendBytesMax) churn=\(leaderChurn) "
            + "external=\(externalLog) witness=\(witness)"
    }
}

/// A broken Raft guarantee, with the step at which it was seen.
public struct SafetyViolation: Error, CustomStringConvertible {
    public var step: Int
    public var invariant: String
    public var detail: String
    public var description: String { "step \(step): \(invariant): \(detail)" }
}

/// What a run did, for reporting and for tests that check the run was not trivial.
public struct SimulationSummary: Sendable {
    public var steps = 0
    public var ticks = 0
    public var elections = 0
    public var committed = 0
    public var crashes = 0
    public var partitions = 0
    public var membershipChanges = 0
    public var transfers = 0
    public var snapshotsInstalled = 0
    public var readsConfirmed = 0
    public var messagesDelivered = 0
    /// Messages that a node which knew it was removed sent to a member whose configuration leaves it out, and that arrived.
    public var messagesFromRemovedNodes = 0
    /// External log: batches that landed, leaders fenced off by it, and entries adopted from it by replays.
    public var externalBatches = 0
    public var externalFences = 0
    public var externalAdopted = 0
    public var externalTrims = 0
    /// Votes the witness granted (witness mode).
    public var witnessVotes = 0
    /// Times the store was replaced by an empty one, and snapshot records that landed (a leader continuing
    /// an external log that ended before its snapshot).
    public var externalReplacements = 0
    public var externalSnapshotRecords = 0

    public init() {}
}
