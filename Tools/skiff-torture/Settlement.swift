import Foundation
import SkiffCheck
import SkiffClient

/// The end of a run: the network healed, every node resumed and running, every key read through every node
/// (linearizable reads, which join the history), and, once every node has applied the same log, each node's
/// own copy of every key compared with the others'.
struct Settlement {
    let cluster: Cluster
    /// The external store's directory, if any: put back if a fault left it away.
    let store: String?
    let keys: [String]

    struct Outcome {
        var reads: [ClientOperation] = []
        var problems: [String] = []
    }

    func run() throws -> Outcome {
        var outcome = Outcome()
        try cluster.network.heal()
        if let store, FileManager.default.fileExists(atPath: store + ".away") { try Nemesis.bringStoreBack(store) }
        for node in cluster.names {
            cluster.resume(node)
            if !cluster.isRunning(node) { try cluster.start(node) }
        }
        guard cluster.waitForLeader(seconds: 30) != nil else {
            outcome.problems.append("no leader within 30 s of healing")
            return outcome
        }
        for node in cluster.names {
            guard let reads = readEveryKey(through: node) else {
                outcome.problems.append("n\(node) did not answer every final read within 20 s")
                continue
            }
            outcome.reads += reads
        }
        outcome.problems += compareReplicas()
        return outcome
    }

    /// Linearizable GETs of every key through `node`, retried while there is no leader; nil if they do not
    /// all succeed within 20 s.
    private func readEveryKey(through node: Int) -> [ClientOperation]? {
        let deadline = monotonicNow() + 20_000_000_000
        var reads: [ClientOperation] = []
        var client: RESPClient?
        for key in keys {
            while true {
                guard monotonicNow() < deadline else { return nil }
                guard let connection = client ?? cluster.client(node, timeoutSeconds: 5) else {
                    Thread.sleep(forTimeInterval: 0.1)
                    continue
                }
                client = connection
                let invoked = monotonicNow()
                if case .bulk(let bytes)? = try? connection.call("GET", key) {
                    reads.append(ClientOperation(client: 1000 + node, key: key, action: .read, result: .value(bytes.map(Workload.recorded)),
                                           invokedAt: invoked, completedAt: monotonicNow()))
                    break
                }
                client = nil
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        return reads
    }

    /// Reads every key from each node's own state (READONLY) once every node has applied the same index,
    /// and returns the keys on which nodes differ. A write that lands meanwhile (a client gave up on it, the
    /// server had not) moves the applied index: then the copies are read again.
    private func compareReplicas() -> [String] {
        let deadline = Date().addingTimeInterval(30)
        var last: [String] = []
        while Date() < deadline {
            guard let before = commonAppliedIndex() else {
                last = ["the nodes did not reach the same applied index"]
                Thread.sleep(forTimeInterval: 0.2)
                continue
            }
            var copies: [Int: [RESPClient.Reply]] = [:]
            for node in cluster.names {
                if let client = cluster.client(node, timeoutSeconds: 5), (try? client.call("READONLY")) == .simple("OK"),
                   let values = try? keys.map({ try client.call("GET", $0) }) {
                    copies[node] = values
                }
            }
            guard copies.count == cluster.nodes else {
                last = ["nodes \(cluster.names.filter { copies[$0] == nil }) did not answer their local reads"]
                Thread.sleep(forTimeInterval: 0.2)
                continue
            }
            guard commonAppliedIndex() == before else { continue }
            return keys.indices.compactMap { position in
                let values = cluster.names.map { copies[$0]![position] }
                guard Set(values.map { "\($0)" }).count > 1 else { return nil }
                return "replicas differ on \(keys[position]) at applied index \(before): "
                    + zip(cluster.names, values).map { "n\($0.0)=\(Self.shortText($0.1))" }.joined(separator: " ")
            }
        }
        return last.map { $0 + " within 30 s" }
    }

    /// A reply as a problem report prints it: a large value by its name.
    private static func shortText(_ reply: RESPClient.Reply) -> String {
        if case .bulk(let bytes?) = reply { return "\"\(Workload.recorded(bytes))\"" }
        return "\(reply)"
    }

    /// The applied index, if every node reports the same one.
    private func commonAppliedIndex() -> String? {
        let applied = Set(cluster.names.map { cluster.info($0)?["raft_applied_index"] })
        guard applied.count == 1, let index = applied.first ?? nil else { return nil }
        return index
    }
}

/// The files a run leaves: the history (one JSON object per line), the faults with their times, and the report.
struct Artifacts {
    let directory: String

    private struct Line: Encodable {
        var client: Int, key: String, action: String, value: String?, result: String, invoked: UInt64, completed: UInt64?
    }

    func save(history: [ClientOperation], faults: [String], report: LinearizabilityChecker.Report, problems: [String]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var lines = ""
        for operation in history.sorted(by: { $0.invokedAt < $1.invokedAt }) {
            let (action, value): (String, String?) = switch operation.action {
            case .read: ("GET", nil)
            case .write(let value): ("SET", value)
            case .swap(let value): ("SET-GET", value)
            case .delete: ("DEL", nil)
            }
            let result = switch operation.result {
            case .ok: "OK"
            case .value(let value): value.map { "value:\($0)" } ?? "nil"
            case .existed(let existed): existed ? "1" : "0"
            case .unknown: "unknown"
            }
            let line = Line(client: operation.client, key: operation.key, action: action, value: value, result: result,
                            invoked: operation.invokedAt, completed: operation.completedAt)
            lines += String(decoding: try encoder.encode(line), as: UTF8.self) + "\n"
        }
        try lines.write(toFile: directory + "/history.jsonl", atomically: true, encoding: .utf8)
        try (faults.joined(separator: "\n") + "\n").write(toFile: directory + "/faults.txt", atomically: true, encoding: .utf8)
        let summary = ["keys: \(report.keys)", "operations checked: \(report.operations)",
                       "violations: \(report.violations.map(\.key))", "undecided: \(report.undecided)"] + problems.map { "problem: \($0)" }
        try (summary.joined(separator: "\n") + "\n").write(toFile: directory + "/report.txt", atomically: true, encoding: .utf8)
    }
}
