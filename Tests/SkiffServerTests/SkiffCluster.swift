import Foundation
import Glibc
import SkiffClient
import Synchronization

/// Real `skiff serve` processes on 127.0.0.1, for end-to-end tests: started, SIGKILLed, SIGTERMed and
/// restarted at will, each with its own data directory and log file. Everything is killed and removed
/// when the cluster is released.
final class SkiffCluster {
    struct Member {
        var name: String
        var clientPort: Int
        var peerPort: Int
        var process: Process?
        /// Comes in with `--join` instead of being one of the first members.
        var joins = false
    }

    let directory: String
    private(set) var members: [Member]
    let extraArguments: [String]
    /// Variables every node is started with, beside this process's own.
    var environment: [String: String] = [:]

    init(nodes: Int, extraArguments: [String] = []) throws {
        directory = NSTemporaryDirectory() + "skiff-cluster-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        members = try (1...nodes).map { Member(name: "n\($0)", clientPort: try freePort(), peerPort: try freePort()) }
        self.extraArguments = extraArguments
    }

    deinit {
        for member in members { member.process.map(Self.kill) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    var names: [String] { members.map(\.name) }
    func port(_ name: String) -> Int { members.first { $0.name == name }!.clientPort }
    func dataDirectory(_ name: String) -> String { "\(directory)/\(name)" }
    func logPath(_ name: String) -> String { "\(directory)/\(name).log" }
    func log(_ name: String) -> String { (try? String(contentsOfFile: logPath(name), encoding: .utf8)) ?? "" }

    /// Runs `body`; if it throws, throws instead an error that also carries the end of every node's log,
    /// since the logs are removed with the cluster.
    func reportingLogs<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch {
            let tails = names.map { name in "--- \(name).log:\n" + log(name).split(separator: "\n").suffix(30).joined(separator: "\n") }
            throw FailureWithLogs(description: "\(error)\n" + tails.joined(separator: "\n"))
        }
    }

    func startAll() throws { for name in names { try start(name) } }

    /// Registers a node that is not one of the first members: `start` runs it with `--join` through `through`.
    func addJoiner(_ name: String, through: [String]) throws {
        members.append(Member(name: name, clientPort: try freePort(), peerPort: try freePort(), joins: true))
        joinThrough[name] = through
    }
    /// The members each node is started with `--join` through.
    var joinThrough: [String: [String]] = [:]
    /// Whether the first members start with `--await-init` (and `--join` through `joinThrough`), to be formed
    /// by `skiff init`, instead of as a static cluster.
    var awaitingInit = false

    /// The arguments `start` runs `name` with, before `adding`.
    func arguments(_ name: String) -> [String] {
        let member = members.first { $0.name == name }!
        let first = members.filter { !$0.joins }
        let cluster = awaitingInit && !member.joins ? ["--await-init"] + (joinThrough[name].map { ["--join", $0.map { "127.0.0.1:\(port($0))" }.joined(separator: ",")] } ?? [])
            : member.joins ? ["--join", joinThrough[name]!.map { "127.0.0.1:\(port($0))" }.joined(separator: ",")]
            : first.count > 1 ? ["--initial-cluster", first.map { "\($0.name)=127.0.0.1:\($0.peerPort)" }.joined(separator: ",")] : []
        return ["serve", "--id", name, "--data-dir", dataDirectory(name), "--client-addr", "127.0.0.1:\(member.clientPort)",
                "--peer-addr", "127.0.0.1:\(member.peerPort)", "--heartbeat-interval", "50", "--election-timeout", "500"]
            + cluster + extraArguments
    }

    /// Starts `name` with the cluster's arguments and `adding` after them, and waits until it accepts
    /// clients unless told not to (a node that waits for something before it serves).
    func start(_ name: String, adding: [String] = [], waitingForClients: Bool = true) throws {
        let position = members.firstIndex { $0.name == name }!
        let member = members[position]
        let process = Process()
        process.executableURL = try executable("skiff")
        process.arguments = arguments(name) + adding
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new } }
        if !FileManager.default.fileExists(atPath: logPath(name)) { FileManager.default.createFile(atPath: logPath(name), contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath(name)))
        log.seekToEndOfFile()
        process.standardError = log
        process.standardOutput = log
        try process.run()
        members[position].process = process
        if waitingForClients { try waitUntil(seconds: 60, "\(name) accepts clients") { (try? RESPClient(port: member.clientPort)) != nil } }
    }

    func kill(_ name: String) {
        let position = members.firstIndex { $0.name == name }!
        members[position].process.map(Self.kill)
        members[position].process = nil
    }

    /// SIGTERM, then waits up to `seconds` for the process to exit; returns its exit status.
    func terminate(_ name: String, seconds: Double = 10) throws -> Int32 {
        let position = members.firstIndex { $0.name == name }!
        let process = members[position].process!
        process.terminate()
        try waitUntil(seconds: seconds, "\(name) exits after SIGTERM") { !process.isRunning }
        members[position].process = nil
        return process.terminationStatus
    }

    /// The process id of `name`'s server, while it runs.
    func processID(_ name: String) -> Int32? { members.first { $0.name == name }?.process?.processIdentifier }

    /// What each thread of `name`'s process waits in, as the kernel names it (`/proc/PID/task/*/wchan`).
    func kernelWaits(_ name: String) -> [String] {
        guard let pid = processID(name),
              let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return [] }
        return threads.compactMap { try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/wchan", encoding: .utf8) }
    }

    /// SIGSTOP: the process keeps its sockets but does nothing until `resume`.
    func pause(_ name: String) { Glibc.kill(members.first { $0.name == name }!.process!.processIdentifier, SIGSTOP) }

    func resume(_ name: String) { Glibc.kill(members.first { $0.name == name }!.process!.processIdentifier, SIGCONT) }

    /// INFO of `name` as a dictionary of its `field:value` lines.
    func info(_ name: String) throws -> [String: String] {
        let reply = try RESPClient(port: port(name)).call("INFO")
        var fields: [String: String] = [:]
        for line in reply.text.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        return fields
    }

    private static func kill(_ process: Process) {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func isRunning(_ name: String) -> Bool { members.first { $0.name == name }!.process?.isRunning ?? false }

    /// Waits for `name` to exit by itself and returns its exit status.
    func waitForExit(_ name: String, seconds: Double) throws -> Int32 {
        let position = members.firstIndex { $0.name == name }!
        let process = members[position].process!
        try waitUntil(seconds: seconds, "\(name) exits") { !process.isRunning }
        members[position].process = nil
        return process.terminationStatus
    }

    /// SKIFF.STATUS of `name` as a dictionary (role, term, leader, commit_index, applied_index, ...).
    func status(_ name: String) throws -> [String: String] {
        let reply = try RESPClient(port: port(name)).call("SKIFF.STATUS")
        guard case .array(let items) = reply else { return [:] }
        var status: [String: String] = [:]
        for pair in stride(from: 0, to: items.count - 1, by: 2) { status[items[pair].text] = items[pair + 1].text }
        return status
    }

    /// Waits until every running node agrees on one leader, and returns it.
    @discardableResult
    func waitForLeader(seconds: Double = 20) throws -> String {
        var leader = ""
        try waitUntil(seconds: seconds, "a leader") {
            let running = names.filter(isRunning)
            let views = running.compactMap { try? status($0)["leader"] }
            guard views.count == running.count, let first = views.first, !first.isEmpty, views.allSatisfy({ $0 == first }),
                  (try? status(first)["role"]) == "leader" else { return false }
            leader = first
            return true
        }
        return leader
    }
}

/// A port that was free a moment ago, for a server a test starts. It lies below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`), where client sockets get their local ports, so that no
/// connection made by a test running beside this one can take it before the server binds it; and no port is
/// given twice in one run, so a node that is killed and started again finds its ports still its own. On a
/// machine whose ephemeral range leaves no room below it, any free port the kernel picks.
func freePort() throws -> Int {
    guard let range = testPortRange else {
        guard let port = bindLoopback(0) else { throw POSIXError(.EADDRINUSE) }
        return port
    }
    for _ in 0..<1000 {
        let candidate = nextTestPort.withLock { next -> Int in
            let port = next ?? range.lowerBound + Int.random(in: 0..<range.count)  // apart from another run's
            next = port + 1 < range.upperBound ? port + 1 : range.lowerBound
            return port
        }
        if bindLoopback(candidate) != nil { return candidate }
    }
    throw POSIXError(.EADDRINUSE)
}

/// From 10000 up to where the ephemeral range starts (32768 on Linux by default), if that leaves room.
private let testPortRange: Range<Int>? = {
    let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
    let ephemeralStart = text.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32768
    return ephemeralStart > 11000 ? 10000..<ephemeralStart : nil
}()

private let nextTestPort = Mutex<Int?>(nil)

/// Binds a socket to 127.0.0.1:`port` (0: any free one) and returns the port it got, or nil if it could
/// not bind; the socket is closed again at once.
private func bindLoopback(_ port: Int) -> Int? {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) } }
    guard bound == 0 else { return nil }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A test's error, with the end of each node's log after it.
struct FailureWithLogs: Error, CustomStringConvertible {
    var description: String
}

struct Timeout: Error, CustomStringConvertible {
    var description: String
}

/// Polls `condition` every 20 ms for up to `seconds`.
func waitUntil(seconds: Double, _ what: String, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return }
        usleep(20_000)
    }
    throw Timeout(description: "timed out after \(seconds) s waiting for \(what)")
}

/// An executable built by this package (`skiff`), or a system one found on PATH (`redis-cli`).
func executable(_ name: String) throws -> URL {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory.deleteLastPathComponent()
    }
    for path in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
        let candidate = URL(fileURLWithPath: String(path)).appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "\(name) (Tools/dev test installs redis-tools, redis-server and redis-py)"])
}

/// Runs a program to completion (bounded by `seconds`) and returns its exit status and output.
func run(_ name: String, _ arguments: [String], input: String? = nil, seconds: Double = 60) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = try executable(name)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    let stdin = Pipe()
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try stdin.fileHandleForWriting.close()
    let collected = Collected()
    let reader = Thread { collected.data = output.fileHandleForReading.readDataToEndOfFile() }
    reader.start()
    let deadline = Date().addingTimeInterval(seconds)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning {
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw Timeout(description: "\(name) \(arguments.joined(separator: " ")) ran longer than \(seconds) s")
    }
    while !collected.done { usleep(1000) }
    return (process.terminationStatus, String(decoding: collected.data, as: UTF8.self))
}

private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var value = Data()
    private var finished = false
    var data: Data {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue; finished = true } }
    }
    var done: Bool { lock.withLock { finished } }
}
