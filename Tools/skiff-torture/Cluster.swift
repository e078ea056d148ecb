import Foundation
import SkiffClient
import SkiffRaft

/// The `skiff serve` processes of a run, on a `Network`: started, SIGKILLed, SIGSTOPped, resumed and
/// restarted, each with a data directory and a log file under the run's directory. Used from the main
/// thread only, except by a signal's `Cleanup`, which stops it while the tool exits.
final class Cluster: @unchecked Sendable {
    let network: any Network
    let nodes: Int
    let directory: String
    private let skiff: String
    private let extraArguments: [String]
    private var processes: [Int: Process] = [:]
    private(set) var paused = Set<Int>()
    /// Nodes that are down because this run killed them (or whose exit was already reported).
    private var expectedDown = Set<Int>()
    /// Nodes whose data this run threw away: they start with `--join` until they have joined.
    private var replaced = Set<Int>()

    /// The power-loss library (Tools/power-loss-shim), loaded into every node if given.
    private let shim: String?
    /// The external store's directory, whose syncs the library can slow down.
    private let store: String?

    init(network: any Network, nodes: Int, directory: String, skiff: String, shim: String?, store: String?, extraArguments: [String]) {
        self.network = network
        self.nodes = nodes
        // Resolved, as the library sees the paths of open files.
        self.directory = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
        self.skiff = skiff
        self.shim = shim
        self.store = store.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path }
        self.extraArguments = extraArguments
    }

    var canFailDisks: Bool { shim != nil }
    func journalPath(_ node: Int) -> String { "\(directory)/n\(node).journal" }
    func diskFaultsDirectory(_ node: Int) -> String { "\(directory)/n\(node).faults" }

    var names: [Int] { Array(1...nodes) }
    func logPath(_ node: Int) -> String { "\(directory)/n\(node).log" }
    /// How many times a node, opening its WAL, cut off a torn frame together with frames written after it
    /// while it was being synced (its log's `unsyncedFramesAfter` above 0).
    func recoveriesCuttingFramesAfterATornOne() -> Int {
        names.reduce(0) { count, node in
            let text = (try? String(contentsOfFile: logPath(node), encoding: .utf8)) ?? ""
            return count + text.split(separator: "\n").filter { line in
                line.split(separator: " ").contains { $0.hasPrefix("unsyncedFramesAfter=") && $0 != "unsyncedFramesAfter=0" }
            }.count
        }
    }

    func isRunning(_ node: Int) -> Bool { processes[node]?.isRunning ?? false }
    var down: [Int] { names.filter { !isRunning($0) } }

    /// Starts `node`: one of the first members (`--initial-cluster`), or, if its data was thrown away and it
    /// has not joined yet, a new node that joins through the others as a voter.
    func start(_ node: Int) throws {
        let (client, peer) = network.ports(of: node)
        let joining = replaced.contains(node) && !FileManager.default.fileExists(atPath: "\(directory)/n\(node)/cluster")
        let members = joining
            ? ["--join", names.filter { $0 != node }.map { "\(network.host(of: $0)):\(network.ports(of: $0).client)" }.joined(separator: ","),
               "--join-as", "voter", "--join-timeout", "3600"]
            : ["--initial-cluster", names.map { "n\($0)=\(network.host(of: $0)):\(network.ports(of: $0).peer)" }.joined(separator: ",")]
        let listen = network.peerListenPort(of: node)
        let advertise = listen == peer ? [] : ["--advertise-peer-addr", "\(network.host(of: node)):\(peer)"]
        let arguments = [skiff, "serve", "--id", "n\(node)", "--data-dir", "\(directory)/n\(node)",
                         "--client-addr", "\(network.host(of: node)):\(client)", "--peer-addr", "\(network.host(of: node)):\(listen)"] + advertise + [
                         "--election-timeout", "500", "--heartbeat-interval", "50"] + members + extraArguments
        let command = network.command(for: node, arguments)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        // A crash (a failed fsync is one, on purpose) ends the process at once, without a backtrace.
        var environment = ProcessInfo.processInfo.environment.merging(["SWIFT_BACKTRACE": "enable=no"]) { _, new in new }
        if let shim {
            // The journal goes on across restarts: what a killed process wrote without syncing is in the page
            // cache only, and a later power cut loses it unless the restarted node synced it.
            try FileManager.default.createDirectory(atPath: diskFaultsDirectory(node), withIntermediateDirectories: true)
            environment.merge(["LD_PRELOAD": shim, "SKIFF_POWER_LOSS_PATH": "\(directory)/n\(node)/",
                               "SKIFF_POWER_LOSS_JOURNAL": journalPath(node), "SKIFF_DISK_FAULTS": diskFaultsDirectory(node),
                               "SKIFF_SLOW_STORE_PATH": store ?? ""]) { _, new in new }
        }
        process.environment = environment
        if !FileManager.default.fileExists(atPath: logPath(node)) { _ = FileManager.default.createFile(atPath: logPath(node), contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath(node)))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        processes[node] = process
        paused.remove(node)
        expectedDown.remove(node)
    }

    /// SIGKILL: the process dies at once, with whatever it had not written.
    func kill(_ node: Int) {
        guard let process = processes[node], process.isRunning else { return }
        expectedDown.insert(node)
        signal(process, SIGKILL)
        process.waitUntilExit()
        paused.remove(node)
    }

    /// The nodes whose process ended without this run killing it (a crash of its own), each reported once.
    func unexpectedExits() -> [String] {
        names.compactMap { node in
            guard let process = processes[node], !process.isRunning, !expectedDown.contains(node) else { return nil }
            expectedDown.insert(node)
            return "n\(node) exited by itself (status \(process.terminationStatus), \(process.terminationReason == .uncaughtSignal ? "signal" : "exit")); see \(logPath(node))"
        }
    }

    /// A power cut on `node`, which must have been killed: its writes that no fsync covered are undone.
    func cutPower(_ node: Int, loss: PowerLoss.Loss, random: inout SplitMix64) throws -> PowerLoss.Outcome {
        precondition(!isRunning(node), "the power is cut on a killed node")
        return try PowerLoss.cut(journal: journalPath(node), directory: "\(directory)/n\(node)", loss: loss, random: &random)
    }

    /// Switches a fault of the power-loss library on or off for `node` (`fsync-eio`, `write-enospc`).
    func setDiskFault(_ name: String, on: Bool, node: Int) throws {
        let path = diskFaultsDirectory(node) + "/" + name
        if on { guard FileManager.default.createFile(atPath: path, contents: nil) else { throw TortureError("cannot create \(path)") } }
        else { try? FileManager.default.removeItem(atPath: path) }
    }

    /// Makes every sync of the external store take `milliseconds` longer, on every node; nil undoes it.
    func slowStore(milliseconds: Int?) throws {
        for node in names { try setDelay("store-delay-ms", to: milliseconds, node: node) }
    }

    /// Makes every sync of `node`'s data take `sync` milliseconds longer (after it began) and every write
    /// `write` longer; nil undoes both.
    func slowDisk(_ node: Int, milliseconds: (sync: Int, write: Int)?) throws {
        try setDelay("sync-delay-ms", to: milliseconds?.sync, node: node)
        try setDelay("write-delay-ms", to: milliseconds?.write, node: node)
    }

    /// Sets a delay switch of the power-loss library for `node` to `milliseconds`; nil removes it.
    private func setDelay(_ name: String, to milliseconds: Int?, node: Int) throws {
        let path = diskFaultsDirectory(node) + "/" + name
        if let milliseconds { try "\(milliseconds)\n".write(toFile: path, atomically: true, encoding: .utf8) }
        else { try? FileManager.default.removeItem(atPath: path) }
    }

    /// If `node` has exited by itself (as a disk fault makes it), counts that as expected and says how it ended.
    func acceptExit(_ node: Int) -> String? {
        guard let process = processes[node], !process.isRunning, !expectedDown.contains(node) else { return nil }
        expectedDown.insert(node)
        return "status \(process.terminationStatus)"
    }

    /// Throws away the data of `node`, which must be down: it comes back as a new node that joins.
    func emptyDataDirectory(_ node: Int) throws {
        precondition(!isRunning(node), "a running node's data stays")
        try FileManager.default.removeItem(atPath: "\(directory)/n\(node)")
        replaced.insert(node)
    }

    func pause(_ node: Int) {
        guard let process = processes[node], process.isRunning else { return }
        signal(process, SIGSTOP)
        paused.insert(node)
    }

    func resume(_ node: Int) {
        guard let process = processes[node], paused.contains(node) else { return }
        signal(process, SIGCONT)
        paused.remove(node)
    }

    /// Signals the process itself: under `ip netns exec` that is the exec'd `skiff`, as `ip` replaces itself.
    private func signal(_ process: Process, _ number: Int32) { Glibc.kill(process.processIdentifier, number) }

    func stopAll() {
        for node in names {
            resume(node)
            kill(node)
        }
    }

    /// What client threads need to reach the nodes.
    struct Addresses: Sendable {
        let nodes: Int
        let endpoints: [Int: (host: String, port: Int)]

        /// A client of `node`, or nil if it does not answer.
        func client(_ node: Int, timeoutSeconds: Double) -> RESPClient? {
            try? RESPClient(host: endpoints[node]!.host, port: endpoints[node]!.port, timeoutSeconds: timeoutSeconds)
        }
    }

    var addresses: Addresses {
        Addresses(nodes: nodes, endpoints: Dictionary(uniqueKeysWithValues: names.map { ($0, (network.host(of: $0), network.ports(of: $0).client)) }))
    }

    func client(_ node: Int, timeoutSeconds: Double) -> RESPClient? { addresses.client(node, timeoutSeconds: timeoutSeconds) }

    /// INFO fields of a running node, or nil if it does not answer within half a second.
    func info(_ node: Int) -> [String: String]? {
        guard isRunning(node), !paused.contains(node), let client = client(node, timeoutSeconds: 0.5),
              let reply = try? client.call("INFO") else { return nil }
        var fields: [String: String] = [:]
        for line in reply.text.split(whereSeparator: \.isNewline) where line.contains(":") {
            let parts = line.split(separator: ":", maxSplits: 1)
            fields[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return fields
    }

    /// The running node that says it leads in the highest term, if any.
    func leader() -> Int? {
        names.compactMap { node in info(node).flatMap { $0["raft_role"] == "leader" ? (node, UInt64($0["raft_term"] ?? "") ?? 0) : nil } }
            .max { $0.1 < $1.1 }?.0
    }

    /// Sends an admin command through the running nodes in turn until one answers other than TRYAGAIN
    /// (or refuses the connection), for up to `seconds`; returns the last answer.
    func admin(_ words: [String], seconds: Double) -> String {
        let deadline = Date().addingTimeInterval(seconds)
        var last = "no node answered"
        while Date() < deadline {
            for node in names where isRunning(node) && !paused.contains(node) {
                guard let client = client(node, timeoutSeconds: 5), let reply = try? client.call(words) else { continue }
                last = reply.text
                if !last.hasPrefix("TRYAGAIN") && !last.hasPrefix("UNINITIALISED") { return last }
            }
            Thread.sleep(forTimeInterval: 0.3)
        }
        return last
    }

    /// Each member's role as the leader lists it (leader, follower, learner), or nil without a leader.
    func members() -> [Int: String]? {
        guard let leader = leader(), let client = client(leader, timeoutSeconds: 2), case .array(let rows)? = try? client.call("SKIFF.MEMBERS") else { return nil }
        var roles: [Int: String] = [:]
        for case .array(let items) in rows {
            let fields = Dictionary(stride(from: 0, to: items.count - 1, by: 2).map { (items[$0].text, items[$0 + 1].text) }, uniquingKeysWith: { a, _ in a })
            if let name = fields["name"], name.hasPrefix("n"), let node = Int(name.dropFirst()) { roles[node] = fields["role"] ?? "" }
        }
        return roles
    }

    /// Waits up to `seconds` for a leader; returns it.
    func waitForLeader(seconds: Double) -> Int? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let leader = leader() { return leader }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return nil
    }
}
