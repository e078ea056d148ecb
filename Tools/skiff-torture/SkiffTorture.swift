import ArgumentParser
import Foundation
import SkiffCheck
import SkiffServer

/// Writes a line to standard output at once (unbuffered), so that nothing is lost if the tool is killed.
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

@main
struct SkiffTorture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skiff-torture",
        abstract: "Run a real Skiff cluster under faults with concurrent clients, then check that what they saw is linearizable.",
        discussion: """
            Starts NODES `skiff serve` processes, each in a network namespace of its own on a private bridge \
            (needs root, iproute2 and nftables; without them, on 127.0.0.1 with process faults only). Clients \
            send GET, SET, SET..GET and DEL to any node while faults are injected: kill -9 (a node, the leader, a \
            minority at once), SIGSTOP longer than an election timeout, partitions (the leader isolated, a \
            minority split off, one direction of a link, all but a bridge node), lossy links, membership \
            changes (a voter removed and promoted back; a node killed, removed, emptied and joined afresh), \
            power cuts that undo writes no fsync covered (all, or any of them in any order), a failing fsync and a full disk (through \
            libSkiffPowerLossShim.so beside this tool, loaded into each node), and with an external log, \
            the store taken away. Then everything heals, every key is read through every node, \
            the replicas are compared, and the history is checked.

            Exits 0 if the history is linearizable, the replicas agree and enough operations succeeded; else 1, \
            keeping the history, the faults, every node's log and data, and printing how to run the same seed again.
            """)

    @Option(help: "Nodes in the cluster.") var nodes = 3
    @Option(help: "Seconds of faults and load.") var seconds = 60
    @Option(help: "Concurrent clients.") var clients = 6
    @Option(help: "Keys in use at a time (they are renamed every few seconds).") var keys = 4
    @Option(help: "Of every 100 writes, how many carry a 96 KiB value, so that a node's WAL writes while it syncs (power cuts then find several unsynced writes in one file).") var largeWrites = 5
    @Option(help: "The run's seed (decimal or 0x hex); random if not given.") var seed: String?
    @Option(help: "namespaces, loopback, or auto (namespaces when possible).") var network = "auto"
    @Option(help: "The skiff executable (default: the one beside this tool).") var skiff: String?
    @Option(help: "Where to keep the run's files (default: a new directory under the temporary directory).") var out: String?
    @Flag(help: "Keep the run's files even when it passes.") var keep = false
    @Flag(help: "Give the cluster an external log (a directory in the run's files); faults then also take it away.") var externalLog = false
    @Flag(help: "Witness mode: two nodes, with the external log as the third voter (implies --external-log; needs --nodes 2).") var witness = false
    @Option(help: "The faults to draw from, comma-separated (default: all that the cluster can take): \(Nemesis.Fault.allCases.map(\.rawValue).joined(separator: ", ")).") var faults: String?
    @Flag(help: "UNSAFE: run the nodes with --fsync never, to show that power cuts then lose acknowledged writes and the check catches it.") var unsafeNoFsync = false

    func validate() throws {
        if witness {
            guard nodes == 2 else { throw ValidationError("--witness needs --nodes 2: witness mode is for exactly two nodes") }
        } else {
            guard nodes >= 3 else { throw ValidationError("--nodes must be at least 3 (or 2 with --witness): the faults need a minority and a majority") }
        }
        guard seconds > 0, clients > 0, keys > 0 else { throw ValidationError("--seconds, --clients and --keys must be positive") }
        guard (0...100).contains(largeWrites) else { throw ValidationError("--large-writes is a percentage: 0 to 100") }
        _ = try allowedFaults()
    }

    func run() throws {
        let seed = try parsedSeed()
        let directory = out ?? NSTemporaryDirectory() + "skiff-torture-\(String(seed, radix: 16))-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let skiff = self.skiff ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("skiff").path
        let network = try makeNetwork(directory: directory)
        let store = externalLog || witness ? directory + "/external" : nil
        let shim = URL(fileURLWithPath: skiff).deletingLastPathComponent().appendingPathComponent("libSkiffPowerLossShim.so").path
        let cluster = Cluster(network: network, nodes: nodes, directory: directory, skiff: skiff,
                              shim: FileManager.default.fileExists(atPath: shim) ? shim : nil, store: store,
                              extraArguments: ["--snapshot-entries", "500", "--on-removal", "standby"] + (unsafeNoFsync ? ["--fsync", "never"] : []) + (store.map { ["--external-log", "dir:\($0)"] } ?? [])
                                  + (witness ? ["--external-witness", "on"] : []))
        let cleanup = Cleanup.onExit {
            cluster.stopAll()
            network.tearDown()
        }
        defer { cleanup.run() }
        say("skiff-torture: seed 0x\(String(seed, radix: 16)), \(nodes) nodes, \(seconds) s, \(clients) clients, "
              + "network \(network is NamespaceNetwork ? "namespaces" : "loopback, a proxy per link"), "
              + "external log \(witness ? "as a witness" : store == nil ? "none" : "mirror"), "
              + "disk faults \(cluster.canFailDisks ? "on" : "off (no \(shim))")\(unsafeNoFsync ? ", UNSAFE --fsync never" : ""), files in \(directory)")

        for node in cluster.names { try cluster.start(node) }
        guard cluster.waitForLeader(seconds: 30) != nil else { throw TortureError("no leader within 30 s of starting; see \(directory)") }

        let start = monotonicNow()
        let deadline = start + UInt64(seconds) * 1_000_000_000
        let workload = Workload(cluster: cluster.addresses, options: Workload.Options(clients: clients, keys: keys, largeWritesPercent: largeWrites), seed: seed)
        let clientsDone = DispatchGroup()
        clientsDone.enter()
        Thread.detachNewThread {
            workload.run(until: deadline)
            clientsDone.leave()
        }
        let nemesis = Nemesis(cluster: cluster, store: store, allowed: try allowedFaults(), membershipChanges: !witness, seed: seed, start: start)
        var problems: [String] = []
        do { try nemesis.run(until: deadline) } catch { problems.append("a fault could not be injected or undone: \(error)") }
        clientsDone.wait()

        nemesis.note("faults over: healing, restarting, reading every key through every node")
        problems += cluster.unexpectedExits()
        var final = Settlement.Outcome()
        do { final = try Settlement(cluster: cluster, store: store, keys: Set(workload.operations.map(\.key)).sorted()).run() } catch {
            problems.append("the cluster could not be healed: \(error)")
        }
        problems += final.problems + cluster.unexpectedExits()
        let history = workload.operations + final.reads
        let report = LinearizabilityChecker.check(history)
        let tally = workload.tally
        let faults = nemesis.injected.values.reduce(0, +)
        problems += report.violations.map { "key \($0.key) is not linearizable (\($0.operations.count) operations; the search linearized at most \($0.longestLinearization.count))" }
        problems += report.undecided.map { "key \($0) could not be decided within the search budget" }
        // A run in which little succeeded proves nothing; nor does one in which only reads did.
        // Pre-vote keeps a node that comes back from a partition from deposing a leader that kept leading;
        // a leader can still lose a term to a stall of this machine now and then, so only a pattern fails.
        if nemesis.returns >= 3, nemesis.disruptiveReturns * 2 > nemesis.returns {
            problems.append("\(nemesis.disruptiveReturns) of \(nemesis.returns) followers that came back from isolation deposed a leader that had kept leading")
        }
        let (operationsNeeded, writesNeeded) = (max(100, seconds * 10), max(50, seconds * 3))
        if tally.ok < operationsNeeded { problems.append("only \(tally.ok) operations succeeded (a run needs \(operationsNeeded) to mean anything)") }
        if tally.writesAcknowledged < writesNeeded {
            problems.append("only \(tally.writesAcknowledged) writes were acknowledged (a run needs \(writesNeeded) to mean anything)")
        }

        say("operations: \(tally.ok) ok (\(tally.writesAcknowledged) acknowledged writes), \(tally.unknown) unknown, \(tally.failed) failed; "
              + "\(final.reads.count) final reads; \(report.keys) keys checked; faults: \(faults) "
              + "(\(nemesis.injected.map { "\($0.value) × \($0.key.text)" }.sorted().joined(separator: ", ")); \(nemesis.together) times two at once)"
              + (nemesis.returns > 0 ? "; \(nemesis.returns) followers back from isolation, \(nemesis.disruptiveReturns) of them deposed the leader" : "")
              + "; nodes power-cut with several unsynced writes in one WAL segment (frames written during a sync, or a zero fill): "
              + "\(nemesis.nodesCutWithSeveralUnsyncedWrites); restarts that cut a torn frame off with frames written behind it: \(cluster.recoveriesCuttingFramesAfterATornOne())")
        try Artifacts(directory: directory).save(history: history, faults: nemesis.log, report: report, problems: problems)
        guard problems.isEmpty else {
            for problem in problems { say("FAIL: \(problem)") }
            for violation in report.violations.prefix(3) {
                say("operations on \(violation.key), in the order invoked:")
                for operation in violation.operations.prefix(60) { say("  \(operation)") }
            }
            say("kept in \(directory): history.jsonl, faults.txt, report.txt, each node's log and data")
            say("run it again: \(rerunCommand(seed: seed))")
            throw ExitCode(1)
        }
        say("PASS: linearizable, replicas agree")
        cleanup.run()
        if !keep && out == nil { try? FileManager.default.removeItem(atPath: directory) }
    }

    private func allowedFaults() throws -> [Nemesis.Fault] {
        guard let faults else { return Nemesis.Fault.allCases }
        return try faults.split(separator: ",").map { name in
            guard let fault = Nemesis.Fault(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--faults: no fault called '\(name)'; the faults are \(Nemesis.Fault.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return fault
        }
    }

    private func parsedSeed() throws -> UInt64 {
        guard let seed else { return UInt64.random(in: 0...UInt64.max) }
        let parsed = seed.hasPrefix("0x") ? UInt64(seed.dropFirst(2), radix: 16) : UInt64(seed)
        guard let parsed else { throw ValidationError("--seed must be a number, in decimal or 0x hex") }
        return parsed
    }

    private func makeNetwork(directory: String) throws -> any Network {
        let nodes = self.nodes
        // A hello names its sender by Raft id: a first member's is its name's; a node that joined drew one.
        let loopback = {
            try LoopbackNetwork(nodes: nodes) { id in
                (1...nodes).first { node in
                    ClusterMember.id(of: "n\(node)").rawValue == id
                        || (try? ClusterIdentity.load(directory: "\(directory)/n\(node)"))?.nodeID?.rawValue == id
                }
            }
        }
        switch network {
        case "loopback": return try loopback()
        case "namespaces", "auto":
            guard NamespaceNetwork.isAvailable() else {
                if network == "namespaces" { throw TortureError("network namespaces need root, iproute2 and nftables") }
                say("skiff-torture: no network namespaces here (needs root, iproute2, nftables); using 127.0.0.1 with a proxy per link")
                return try loopback()
            }
            NamespaceNetwork.removeLeftovers()
            let namespaces = try NamespaceNetwork(prefix: "skt\(getpid())", nodes: nodes)
            do { try namespaces.enterClientNamespace() } catch {
                namespaces.tearDown()
                throw error
            }
            return namespaces
        default:
            throw ValidationError("--network must be namespaces, loopback or auto")
        }
    }

    private func rerunCommand(seed: UInt64) -> String {
        "\(CommandLine.arguments[0]) --seed 0x\(String(seed, radix: 16)) --nodes \(nodes) --seconds \(seconds) --clients \(clients) "
            + "--keys \(keys) --large-writes \(largeWrites) --network \(network)" + (witness ? " --witness" : externalLog ? " --external-log" : "")
            + (faults.map { " --faults \($0)" } ?? "") + (unsafeNoFsync ? " --unsafe-no-fsync" : "")
    }
}
