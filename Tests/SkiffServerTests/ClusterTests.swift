import Foundation
import Glibc
import Testing
import SkiffClient

/// Three real `skiff serve` processes on 127.0.0.1: elections, forwarding, failover and catching up.
@Suite(.serialized) struct ClusterTests {
    /// Every node takes reads and writes: writes to followers are forwarded, and a read on any node sees
    /// every write acknowledged before it, wherever it was made.
    @Test func everyNodeServesReadsAndWrites() throws {
        let cluster = try SkiffCluster(nodes: 3)
        try cluster.startAll()
        let leader = try cluster.waitForLeader()
        let clients = try cluster.names.map { try RESPClient(port: cluster.port($0)) }
        for round in 0..<30 {
            let writer = clients[round % 3]
            #expect(try writer.call("SET", "key", "\(round)") == .simple("OK"))
            #expect(try writer.call("INCR", "counter") == .integer(Int64(round + 1)))
            for reader in clients {
                #expect(try reader.call("GET", "key") == .bulk(Array("\(round)".utf8)))
            }
        }
        let statuses = try cluster.names.map { try cluster.status($0) }
        #expect(statuses.filter { $0["role"] == "leader" }.count == 1)
        #expect(statuses.allSatisfy { $0["leader"] == leader })
        let cli = try run("redis-cli", ["-p", String(cluster.port(cluster.names.first { $0 != leader }!)), "MGET", "key", "counter"])
        #expect(cli.output == "29\n30\n")
    }

    /// SIGKILL the leader while clients write through every node: the others elect a new leader, writes go
    /// on, and every acknowledged write is on every node afterwards, the restarted one included.
    @Test func killingTheLeaderLosesNoAcknowledgedWrite() throws {
        let cluster = try SkiffCluster(nodes: 3)
        try cluster.startAll()
        let first = try cluster.waitForLeader()
        let acknowledged = Acknowledged()
        let ports = cluster.names.map(cluster.port)
        let stop = Flag()
        let writers = (0..<6).map { number in
            Thread {
                var client = try? RESPClient(port: ports[number % 3], timeoutSeconds: 3)
                for i in 0..<50_000 where !stop.isSet {
                    let key = "w\(number)-\(i)"
                    if client == nil { client = try? RESPClient(port: ports[number % 3], timeoutSeconds: 3) }
                    guard let connected = client else { usleep(50_000); continue }
                    switch try? connected.call("SET", key, "v\(i)") {
                    case .simple("OK"): acknowledged.add(key, "v\(i)")
                    case .error: usleep(20_000)
                    default: client = nil  // the connection broke (its node was killed)
                    }
                }
            }
        }
        for writer in writers { writer.start() }
        usleep(400_000)
        let before = acknowledged.all.count
        cluster.kill(first)
        let second = try cluster.waitForLeader()
        #expect(second != first)
        let atFailover = acknowledged.all.count
        try waitUntil(seconds: 15, "writes to go on after the failover") { acknowledged.all.count > atFailover + 100 }
        stop.set()
        while writers.contains(where: { $0.isExecuting }) { usleep(1000) }
        #expect(before > 0)
        try cluster.start(first)
        try cluster.waitForLeader()
        let all = acknowledged.all
        for name in cluster.names {
            let client = try RESPClient(port: cluster.port(name))
            try waitUntil(seconds: 20, "\(name) has every acknowledged write") {
                try stride(from: 0, to: all.count, by: 500).allSatisfy { start in
                    let keys = all[start..<min(start + 500, all.count)]
                    return try client.call(["MGET"] + keys.map(\.key)) == .array(keys.map { .bulk(Array($0.value.utf8)) })
                }
            }
        }
    }

    /// A node that was down while the others compacted their logs catches up through a snapshot.
    @Test func aRestartedNodeCatchesUpThroughASnapshot() throws {
        let cluster = try SkiffCluster(nodes: 3, extraArguments: ["--snapshot-entries", "300"])
        try cluster.startAll()
        try cluster.waitForLeader()
        let lagging = "n3"
        cluster.kill(lagging)
        let leader = try cluster.waitForLeader()
        let client = try RESPClient(port: cluster.port(leader))
        for batch in 0..<20 {
            let replies = try client.pipeline((0..<100).map { ["SET", "k\(batch * 100 + $0)", "v\(batch * 100 + $0)"] })
            #expect(replies.allSatisfy { $0 == .simple("OK") })
        }
        try waitUntil(seconds: 10, "the leader compacts its log") { (try cluster.status(leader)["first_index"]).flatMap { Int($0) } ?? 0 > 1 }
        try cluster.start(lagging)
        let caughtUp = try RESPClient(port: cluster.port(lagging))
        _ = try caughtUp.call("READONLY")
        try waitUntil(seconds: 20, "\(lagging) catches up") { try caughtUp.call("DBSIZE") == .integer(2000) }
        #expect(try caughtUp.call("GET", "k1999") == .bulk(Array("v1999".utf8)))
        #expect(try run("redis-cli", ["-p", String(cluster.port(lagging)), "INFO", "persistence"]).output.contains("snapshots_installed:1"))
    }
}

final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
