import Foundation

/// Where the cluster's nodes live and how links between them are cut.
protocol Network: Sendable {
    /// The address clients and peers use for node `node` (1-based), and its ports there.
    func host(of node: Int) -> String
    func ports(of node: Int) -> (client: Int, peer: Int)
    /// Where the node itself listens for peers: its advertised peer port, unless a proxy stands there.
    func peerListenPort(of node: Int) -> Int
    /// The command that runs `arguments` as node `node`'s process.
    func command(for node: Int, _ arguments: [String]) -> [String]
    var canPartition: Bool { get }
    /// Drops every packet from `from` to `to` (one way), or, with `percent`, that share of them at random.
    func cut(from: Int, to: Int, percent: Int) throws
    /// Throttles everything `node` sends to `kbit` kilobits a second, queueing up to `latency` milliseconds
    /// (delay without netem, which this kernel lacks: a token bucket's queue).
    func throttle(_ node: Int, kbit: Int, latency: Int) throws
    /// Removes every cut and throttle.
    func heal() throws
    func tearDown()
}

/// Every node in a network namespace of its own on a private bridge (10.77.0.N), the driver in another
/// (10.77.0.254); nothing is added to the machine's own namespace. Cuts are nftables drop rules inside the
/// receiving node's namespace. Needs root, iproute2 and nftables.
final class NamespaceNetwork: Network {
    let prefix: String
    let nodes: Int
    private static let subnet = "10.77.0"

    /// Creates the namespaces, bridge and links, after removing any left by an earlier run with `prefix`.
    init(prefix: String, nodes: Int) throws {
        self.prefix = prefix
        self.nodes = nodes
        do { try build() } catch {
            tearDown()
            throw error
        }
    }

    private func build() throws {
        try ip("netns", "add", "\(prefix)-br")
        try ip("-n", "\(prefix)-br", "link", "add", "br0", "type", "bridge")
        try ip("-n", "\(prefix)-br", "link", "set", "br0", "up")
        try attach("\(prefix)-c", address: "\(Self.subnet).254", port: "pc")
        for node in 1...nodes {
            try attach(namespace(node), address: host(of: node), port: "p\(node)")
            try run(["ip", "netns", "exec", namespace(node), "nft", "add", "table", "inet", "torture"])
            try run(["ip", "netns", "exec", namespace(node), "nft", "add", "chain", "inet", "torture", "input",
                     "{ type filter hook input priority 0; policy accept; }"])
        }
    }

    /// Whether this machine lets us make namespaces (root, iproute2, nftables).
    static func isAvailable() -> Bool {
        guard getuid() == 0, (try? run(["nft", "--version"])) != nil else { return false }
        let probe = "skiff-torture-probe-\(getpid())"
        defer { _ = try? run(["ip", "netns", "del", probe]) }
        return (try? run(["ip", "netns", "add", probe])) != nil
    }

    func namespace(_ node: Int) -> String { "\(prefix)-n\(node)" }
    func host(of node: Int) -> String { "\(Self.subnet).\(node)" }
    func ports(of node: Int) -> (client: Int, peer: Int) { (7379, 7380) }
    func peerListenPort(of node: Int) -> Int { 7380 }
    func command(for node: Int, _ arguments: [String]) -> [String] { ["ip", "netns", "exec", namespace(node)] + arguments }
    var canPartition: Bool { true }

    func cut(from: Int, to: Int, percent: Int) throws {
        let sample = percent >= 100 ? [] : ["numgen", "random", "mod", "100", "<", String(percent)]
        try run(["ip", "netns", "exec", namespace(to), "nft", "add", "rule", "inet", "torture", "input", "ip", "saddr", host(of: from)] + sample + ["drop"])
    }

    func throttle(_ node: Int, kbit: Int, latency: Int) throws {
        try run(["ip", "netns", "exec", namespace(node), "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
                 "rate", "\(kbit)kbit", "burst", "16kb", "latency", "\(latency)ms"])
    }

    func heal() throws {
        for node in 1...nodes {
            try run(["ip", "netns", "exec", namespace(node), "nft", "flush", "chain", "inet", "torture", "input"])
            _ = try? run(["ip", "netns", "exec", namespace(node), "tc", "qdisc", "del", "dev", "eth0", "root"])  // fails if none
        }
    }

    /// Moves the calling thread into the client namespace; threads it creates from then on start there too.
    /// Call on the main thread before starting any thread that connects.
    func enterClientNamespace() throws {
        // setns(2) is not in Swift's Glibc module (it needs _GNU_SOURCE); 0x4000_0000 is CLONE_NEWNET.
        typealias SetNamespace = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "setns") else { throw TortureError("this libc has no setns") }
        let setNamespace = unsafeBitCast(symbol, to: SetNamespace.self)
        let descriptor = open("/var/run/netns/\(prefix)-c", O_RDONLY)
        guard descriptor >= 0, setNamespace(descriptor, 0x4000_0000) == 0 else {
            throw TortureError("cannot enter the client namespace \(prefix)-c: errno \(errno)")
        }
        close(descriptor)
    }

    /// Kills whatever still runs in this run's namespaces, and removes them.
    func tearDown() { Self.remove { $0 == prefix } }

    /// Removes the namespaces of earlier runs whose driver is gone (killed before it could clean up).
    static func removeLeftovers() {
        remove { prefix in
            guard prefix.hasPrefix("skt"), let pid = Int32(prefix.dropFirst(3)) else { return false }
            return Glibc.kill(pid, 0) != 0 && errno == ESRCH
        }
    }

    /// Removes every namespace named `PREFIX-br`, `PREFIX-c` or `PREFIX-nN` whose prefix `matches`,
    /// killing the processes still in it first (but not this one, which lives in its client namespace).
    private static func remove(where matches: (String) -> Bool) {
        let names = (try? run(["ip", "netns", "list"]))?.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) } ?? []
        for name in names {
            guard let dash = name.lastIndex(of: "-"), matches(String(name[..<dash])),
                  ["br", "c"].contains(name[name.index(after: dash)...]) || name[name.index(after: dash)...].hasPrefix("n") else { continue }
            for pid in ((try? run(["ip", "netns", "pids", name])) ?? "").split(separator: "\n").compactMap({ Int32($0) }) where pid != getpid() {
                Glibc.kill(pid, SIGKILL)
            }
            _ = try? run(["ip", "netns", "del", name])
        }
    }

    private func attach(_ namespace: String, address: String, port: String) throws {
        try ip("netns", "add", namespace)
        try ip("link", "add", "eth0", "netns", namespace, "type", "veth", "peer", "name", port, "netns", "\(prefix)-br")
        try ip("-n", namespace, "addr", "add", "\(address)/24", "dev", "eth0")
        try ip("-n", namespace, "link", "set", "eth0", "up")
        try ip("-n", namespace, "link", "set", "lo", "up")
        try ip("-n", "\(prefix)-br", "link", "set", port, "master", "br0")
        try ip("-n", "\(prefix)-br", "link", "set", port, "up")
    }

    private func ip(_ arguments: String...) throws { try run(["ip"] + arguments) }
}

/// Every node on 127.0.0.1 with ports of its own, for machines without namespaces (no root needed): each
/// node's peers reach it through a `LinkProxy`, which cuts, thins and delays links. A throttle is a delay.
final class LoopbackNetwork: Network {
    /// Below the ephemeral range (32768 and up), so no client socket holds a port a restarted node needs.
    private let base = 20000 + Int(getpid() % 400) * 30
    private let proxy: LinkProxy

    /// `identify` maps a Raft id from a peer's hello to its node.
    init(nodes: Int, identify: @escaping @Sendable (UInt64) -> Int?) throws {
        proxy = LinkProxy(identify: identify)
        for node in 1...nodes { try proxy.serve(node: node, port: ports(of: node).peer, target: peerListenPort(of: node)) }
    }

    func host(of node: Int) -> String { "127.0.0.1" }
    func ports(of node: Int) -> (client: Int, peer: Int) { (base + 3 * node, base + 3 * node + 1) }
    func peerListenPort(of node: Int) -> Int { base + 3 * node + 2 }
    func command(for node: Int, _ arguments: [String]) -> [String] { arguments }
    var canPartition: Bool { true }
    func cut(from: Int, to: Int, percent: Int) throws { proxy.cut(from: from, to: to, percent: percent) }
    func throttle(_ node: Int, kbit: Int, latency: Int) throws { proxy.delay(node, milliseconds: latency) }
    func heal() throws { proxy.heal() }
    func tearDown() { proxy.stop() }
}

struct TortureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a command to completion; throws with its output if it fails. Returns its standard output.
@discardableResult
func run(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard process.terminationStatus == 0 else { throw TortureError("\(arguments.joined(separator: " ")) failed: \(text)") }
    return text
}
