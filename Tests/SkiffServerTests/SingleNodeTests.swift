import Foundation
import Glibc
import Testing
import SkiffClient

/// A one-node `skiff serve` process used as a Redis server: through redis-cli, raw RESP, restarts and
/// crashes.
@Suite(.serialized) struct SingleNodeTests {
    @Test func redisCLICommandsBehaveAsInRedis() throws {
        let cluster = try SkiffCluster(nodes: 1)
        try cluster.startAll()
        let port = String(cluster.port("n1"))
        func cli(_ arguments: String...) throws -> String {
            let result = try run("redis-cli", ["-p", port] + arguments)
            #expect(result.status == 0)
            return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try cli("PING") == "PONG")
        #expect(try cli("SET", "greeting", "hello world") == "OK")
        #expect(try cli("GET", "greeting") == "hello world")
        #expect(try cli("SET", "greeting", "x", "NX") == "")
        #expect(try cli("SET", "greeting", "bye", "XX", "GET") == "hello world")
        #expect(try cli("INCR", "counter") == "1")
        #expect(try cli("INCRBY", "counter", "41") == "42")
        #expect(try cli("INCRBYFLOAT", "counter", "0.5") == "42.5")
        #expect(try cli("MSET", "a", "1", "b", "2") == "OK")
        #expect(try cli("MGET", "a", "missing", "b") == "1\n\n2")
        #expect(try cli("EXISTS", "a", "b", "missing") == "2")
        #expect(try cli("APPEND", "a", "23") == "3")
        #expect(try cli("GETRANGE", "a", "1", "-1") == "23")
        #expect(try cli("RENAME", "a", "c") == "OK")
        #expect(try cli("DEL", "c", "b", "missing") == "2")
        #expect(try cli("DBSIZE") == "2")
        #expect(try cli("--scan").split(separator: "\n").sorted() == ["counter", "greeting"])
        #expect(try cli("KEYS", "g*") == "greeting")
        #expect(try cli("TYPE", "greeting") == "string")
        #expect(try cli("SET", "k", "v", "EX", "10").hasPrefix("ERR expiry options"))
        #expect(try cli("EXPIRE", "greeting", "10").hasPrefix("ERR key expiry is not supported"))
        #expect(try cli("TTL", "greeting") == "-1")  // keys never expire, and tools ask
        #expect(try cli("PTTL", "missing") == "-2")
        #expect(try cli("PERSIST", "greeting") == "0")
        #expect(try cli("TOUCH", "greeting", "missing", "counter") == "2")
        #expect(try cli("GETEX", "greeting", "PERSIST") == "bye")
        #expect(try cli("GETEX", "greeting", "EX", "10").hasPrefix("ERR expiry options"))
        let time = try cli("TIME").split(separator: "\n").compactMap { Int($0) }
        #expect(time.count == 2 && abs(time[0] - Int(Date().timeIntervalSince1970)) < 60 && (0..<1_000_000).contains(time[1]), "TIME: \(time)")
        #expect(try cli("GET").hasPrefix("ERR wrong number of arguments for 'get' command"))
        #expect(try cli("NOSUCH", "x").hasPrefix("ERR unknown command 'NOSUCH'"))
        #expect(try cli("INFO", "replication").contains("raft_role:leader"))
        #expect(try cli("FLUSHALL") == "OK")
        #expect(try cli("DBSIZE") == "0")
    }

    /// A malformed request waits for the replies owed before it even when the client sends more bytes in the
    /// meantime (they are ignored): here a write whose WAL sync the power-loss library holds up for a second.
    @Test func aMalformedRequestIsAnsweredAfterASlowWriteThoughMoreBytesFollow() throws {
        let faults = NSTemporaryDirectory() + "skiff-faults-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: faults) }
        try FileManager.default.createDirectory(atPath: faults, withIntermediateDirectories: true)
        let shim = try executable("skiff").deletingLastPathComponent().appendingPathComponent("libSkiffPowerLossShim.so").path
        try #require(FileManager.default.fileExists(atPath: shim), "the power-loss library is built with the package")
        let cluster = try SkiffCluster(nodes: 1)
        cluster.environment = ["LD_PRELOAD": shim, "SKIFF_DISK_FAULTS": faults, "SKIFF_SLOW_STORE_PATH": cluster.dataDirectory("n1")]
        try cluster.startAll()
        try "1000\n".write(toFile: faults + "/store-delay-ms", atomically: true, encoding: .utf8)  // every sync of its data
        let client = try RESPClient(port: cluster.port("n1"), timeoutSeconds: 30)
        try client.send(raw: RESPClient.encode(["SET", "slow", "1"]) + Array("*1\r\n$x\r\n".utf8))
        usleep(300_000)  // the write waits for its sync; these bytes come in a read of their own
        try client.send(raw: Array("PING\r\n".utf8))
        #expect(try client.readReply() == .simple("OK"))
        #expect(try client.readReply() == .error("ERR Protocol error: invalid bulk length"))
        #expect(client.isClosedByServer())
        try FileManager.default.removeItem(atPath: faults + "/store-delay-ms")
        #expect(try RESPClient(port: cluster.port("n1")).call("GET", "slow") == .bulk(Array("1".utf8)))
    }

    /// A connection closing after a malformed request closes within the request timeout and a grace of 5 s
    /// even when its client never reads the replies owed before it (here 32 MiB of GET replies).
    @Test func aConnectionClosingAfterAnErrorClosesThoughItsClientNeverReads() throws {
        let cluster = try SkiffCluster(nodes: 1, extraArguments: ["--request-timeout", "1000"])
        try cluster.startAll()
        let big = String(repeating: "v", count: 4 << 20)
        #expect(try RESPClient(port: cluster.port("n1")).call("SET", "big", big) == .simple("OK"))
        let client = try RESPClient(port: cluster.port("n1"), timeoutSeconds: 10)
        try client.send(raw: (0..<8).flatMap { _ in RESPClient.encode(["GET", "big"]) } + Array("*1\r\n$x\r\n".utf8))
        sleep(8)  // not reading: the server cannot write what it owes
        var replies = 0
        while case .bulk? = try? client.readReply() { replies += 1 }
        #expect(replies < 8, "the server waited for a client that does not read")
        #expect(try RESPClient(port: cluster.port("n1")).call("GET", "missing") == .bulk(nil))
    }

    /// What operators look at: CLIENT LIST, CLIENT KILL, and INFO's client, memory and stats fields, as
    /// `redis-cli --stat` shows them (it printed -9223372036854775808 for each field INFO lacked).
    @Test func clientListKillAndWhatRedisCLIStatShows() throws {
        let cluster = try SkiffCluster(nodes: 1)
        try cluster.startAll()
        let port = cluster.port("n1")
        let victim = try RESPClient(port: port)
        #expect(try victim.call("CLIENT", "SETNAME", "victim") == .simple("OK"))
        let victimID = try victim.call("CLIENT", "ID").text
        let admin = try RESPClient(port: port)
        #expect(try admin.call("SET", "k", "v") == .simple("OK"))

        let list = try admin.call("CLIENT", "LIST").text.split(separator: "\n")
        #expect(list.count == 2, "\(list)")
        let line = try #require(list.first { $0.contains(" name=victim ") })
        #expect(line.hasPrefix("id=\(victimID) addr=127.0.0.1:") && line.contains(" laddr=127.0.0.1:\(port) "), "\(line)")
        #expect(line.contains(" cmd=client|id ") && line.contains(" flags=N ") && line.hasSuffix(" resp=2"), "\(line)")
        #expect(try admin.call("CLIENT", "LIST", "ID", victimID).text.split(separator: "\n").count == 1)

        let info = Dictionary(try admin.call("INFO").text.split(separator: "\r\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: ":", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }, uniquingKeysWith: { first, _ in first })
        #expect(info["connected_clients"] == "2")
        #expect(Int(info["total_connections_received"] ?? "") ?? 0 >= 2)
        #expect(Int(info["total_commands_processed"] ?? "") ?? 0 >= 6)
        #expect(Int(info["used_memory"] ?? "") ?? 0 > 1 << 20)
        #expect(info["loading"] == "0")
        #expect(info["process_id"] == String(try #require(cluster.processID("n1"))))
        #expect((0..<600).contains(Int(info["uptime_in_seconds"] ?? "") ?? -1) && info["uptime_in_days"] == "0")

        // Its third line is the first sample: keys, memory, clients, blocked, requests, connections.
        let stat = try run("timeout", ["-s", "KILL", "1.5", "stdbuf", "-oL", "redis-cli", "-p", String(port), "--stat", "-i", "0.2"], seconds: 20)
        let sample = stat.output.split(separator: "\n").dropFirst(2).first?.split(separator: " ") ?? []
        #expect(sample.count >= 6 && sample[0] == "1" && sample[1].hasSuffix("M") && sample[2] == "3" && sample[3] == "0",
                "redis-cli --stat: \(stat.output)")
        #expect(!stat.output.contains("-9223372036854775808"), "\(stat.output)")
        let uptime = try admin.call("INFO", "server").text.split(separator: "\r\n").first { $0.hasPrefix("uptime_in_seconds:") }
        #expect((1..<600).contains(Int(uptime?.dropFirst(18) ?? "") ?? -1), "after redis-cli --stat ran 1.5 s: \(String(describing: uptime))")

        let adminLine = try admin.call("CLIENT", "INFO").text
        #expect(adminLine.hasPrefix("id=") && adminLine.contains(" idle=0 ") && adminLine.hasSuffix(" cmd=client|info user=default resp=2\n"),
                "\(adminLine)")
        // Three lines: the victim, admin and redis-cli's own, once the server saw redis-cli --stat go.
        var resp3 = ""
        try waitUntil(seconds: 10, "CLIENT LIST through redis-cli -3 lists 3 connections") {
            resp3 = try run("redis-cli", ["-3", "-p", String(port), "CLIENT", "LIST"]).output
            return resp3.split(separator: "\n").filter { $0.hasPrefix("id=") }.count == 3
        }
        #expect(resp3.contains("cmd=client|list user=default resp=3"), "\(resp3)")
        #expect(try admin.call("CLIENT", "LIST", "ID", victimID, "999", victimID).text.split(separator: "\n").count == 2)

        // Pipelined twice, the kill counts the victim once: the second finds it closed.
        let kills = try admin.pipeline([["CLIENT", "KILL", "ID", victimID], ["CLIENT", "KILL", "ID", victimID]])
        #expect(kills == [.integer(1), .integer(0)])
        #expect(victim.isClosedByServer())
        #expect(try admin.call("CLIENT", "KILL", "1.2.3.4:5") == .error("ERR No such client"))

        // By address, new form and old; and by LADDR, which here matches every other connection.
        let byAddress = try RESPClient(port: port), oldForm = try RESPClient(port: port), byLocal = try RESPClient(port: port)
        #expect(try admin.call("CLIENT", "KILL", "LADDR", "127.0.0.1:\(port)", "TYPE", "pubsub") == .integer(0))  // three would match
        func address(of client: RESPClient) throws -> String {
            let line = try client.call("CLIENT", "INFO").text
            return String(try #require(line.split(separator: " ").first { $0.hasPrefix("addr=") }).dropFirst(5))
        }
        #expect(try admin.call("CLIENT", "KILL", "ADDR", address(of: byAddress), "SKIPME", "yes") == .integer(1))
        #expect(byAddress.isClosedByServer())
        #expect(try admin.call("CLIENT", "KILL", address(of: oldForm)) == .simple("OK"))
        #expect(oldForm.isClosedByServer())
        #expect(try admin.call("CLIENT", "KILL", "LADDR", "127.0.0.1:\(port)") == .integer(1))  // SKIPME yes: not itself
        #expect(byLocal.isClosedByServer())

        // A connection that ends itself, or quits, runs nothing pipelined after it, though the command waits
        // for a write in flight before it (and the commands after it are held meanwhile).
        let myID = try admin.call("CLIENT", "ID").text
        try admin.send(raw: RESPClient.encode(["SET", "before-kill", "1"]) + RESPClient.encode(["CLIENT", "KILL", "ID", myID, "SKIPME", "no"])
                       + RESPClient.encode(["SET", "after-kill", "1"]))
        #expect(try admin.readReply() == .simple("OK"))
        #expect(try admin.readReply() == .integer(1))
        #expect(admin.isClosedByServer())
        let quitter = try RESPClient(port: port)
        try quitter.send(raw: RESPClient.encode(["SET", "before-quit", "1"]) + RESPClient.encode(["QUIT"]) + RESPClient.encode(["SET", "after-quit", "1"]))
        #expect(try quitter.readReply() == .simple("OK"))
        #expect(try quitter.readReply() == .simple("OK"))
        #expect(quitter.isClosedByServer())
        let checker = try RESPClient(port: port)
        #expect(try checker.call("EXISTS", "before-kill", "before-quit") == .integer(2))
        #expect(try checker.call("EXISTS", "after-kill", "after-quit") == .integer(0))
    }

    /// Pipelined commands are answered in order, writes and reads mixed, and a malformed request closes only
    /// its own connection, once the commands before it are answered, even when it announces a huge bulk string.
    @Test func pipeliningAndProtocolErrors() throws {
        let cluster = try SkiffCluster(nodes: 1, extraArguments: ["--max-bulk-bytes", "1048576"])
        try cluster.startAll()
        let client = try RESPClient(port: cluster.port("n1"))
        let commands = (0..<200).flatMap { [["SET", "p\($0)", "\($0)"], ["GET", "p\($0)"], ["INCR", "n"]] }
        let replies = try client.pipeline(commands)
        for i in 0..<200 {
            #expect(replies[3 * i] == .simple("OK"))
            #expect(replies[3 * i + 1] == .bulk(Array("\(i)".utf8)))
            #expect(replies[3 * i + 2] == .integer(Int64(i + 1)))
        }
        let bad = try RESPClient(port: cluster.port("n1"))
        try bad.send(raw: Array("*1\r\n$2000000\r\n".utf8))
        #expect(try bad.readReply() == .error("ERR Protocol error: invalid bulk length"))
        #expect(bad.isClosedByServer())
        // Commands before the bad one in the same read are answered first (a write and a read in flight).
        let late = try RESPClient(port: cluster.port("n1"))
        try late.send(raw: Array("PING\r\n".utf8) + RESPClient.encode(["SET", "late", "1"]) + RESPClient.encode(["GET", "p9"])
            + Array("*1\r\n$x\r\n".utf8))
        #expect(try late.readReply() == .simple("PONG"))
        #expect(try late.readReply() == .simple("OK"))
        #expect(try late.readReply() == .bulk(Array("9".utf8)))
        #expect(try late.readReply() == .error("ERR Protocol error: invalid bulk length"))
        #expect(late.isClosedByServer())
        // A command that runs alone between two reads or two writes starts the second as the first ends; it
        // once stopped the node (a conflicting access to its waiting writes or reads).
        #expect(try client.pipeline([["GET", "p1"], ["PING"], ["GET", "p2"], ["SET", "q", "1"], ["ECHO", "e"], ["INCR", "q"], ["SELECT", "0"], ["GET", "q"]])
                == [.bulk(Array("1".utf8)), .simple("PONG"), .bulk(Array("2".utf8)), .simple("OK"), .bulk(Array("e".utf8)), .integer(2), .simple("OK"), .bulk(Array("2".utf8))])
        #expect(try client.call("GET", "p7") == .bulk(Array("7".utf8)))
        #expect(try client.call("GET") == .error("ERR wrong number of arguments for 'get' command"))
        #expect(try client.call("GET", "p8") == .bulk(Array("8".utf8)))
    }

    /// A read that arrives while another client's write is being made durable is answered once that write is
    /// applied, not only when some later write comes along.
    @Test func aReadDuringAnotherClientsWriteIsAnswered() throws {
        let cluster = try SkiffCluster(nodes: 1)
        try cluster.startAll()
        let writer = try RESPClient(port: cluster.port("n1"))
        let reader = try RESPClient(port: cluster.port("n1"), timeoutSeconds: 2)
        for i in 0..<200 {
            try writer.send(raw: RESPClient.encode(["SET", "k", "\(i)"]))
            let read = try reader.call("GET", "k")
            #expect(read == .bulk(Array("\(i)".utf8)) || read == .bulk(Array("\(i - 1)".utf8)) || (i == 0 && read == .bulk(nil)))
            #expect(try writer.readReply() == .simple("OK"))
        }
        let tooLarge = try writer.call(["MSET"] + (0..<3).flatMap { ["big\($0)", String(repeating: "x", count: 15 << 20)] })
        #expect(tooLarge.text.hasPrefix("ERR the command is larger than"))
    }

    @Test func aPasswordIsRequiredWhenConfigured() throws {
        let cluster = try SkiffCluster(nodes: 1, extraArguments: ["--password", "s3cret"])
        try cluster.startAll()
        let client = try RESPClient(port: cluster.port("n1"))
        #expect(try client.call("GET", "k") == .error("NOAUTH Authentication required."))
        #expect(try client.call("AUTH", "wrong") == .error("WRONGPASS invalid username-password pair or user is disabled."))
        #expect(try client.call("AUTH", "s3cret") == .simple("OK"))
        #expect(try client.call("SET", "k", "v") == .simple("OK"))
    }

    /// SIGTERM: the node finishes what it was doing, closes its WAL cleanly (no torn tail on restart) and
    /// exits 0; everything acknowledged is there after the restart.
    @Test func sigtermShutsDownCleanly() throws {
        let cluster = try SkiffCluster(nodes: 1)
        try cluster.startAll()
        let client = try RESPClient(port: cluster.port("n1"))
        _ = try client.pipeline((0..<500).map { ["SET", "k\($0)", "v\($0)"] })
        #expect(try cluster.terminate("n1") == 0)
        #expect(cluster.log("n1").contains("stopped"))
        try cluster.start("n1")
        let after = try RESPClient(port: cluster.port("n1"))
        #expect(try after.call("DBSIZE") == .integer(500))
        #expect(try after.call("GET", "k499") == .bulk(Array("v499".utf8)))
        #expect(cluster.log("n1").components(separatedBy: "cut-tail=none").count == 3)  // both starts found a clean end
    }

    /// Settings come from a config file, then SKIFF_* variables, then flags, each overriding the one before;
    /// a bad setting stops the node at once with a message that names it.
    @Test func settingsFromFileEnvironmentAndFlags() throws {
        let directory = NSTemporaryDirectory() + "skiff-settings-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (filePort, environmentPort, peerPort) = (try freePort(), try freePort(), try freePort())
        let config = "\(directory)/skiff.conf"
        try "# test\nclient-addr = 127.0.0.1:\(filePort)  # overridden\npassword = \"from-file\"\ndata-dir = \"\(directory)/da#ta\"  # a quoted # is kept\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = try executable("skiff")
        process.arguments = ["serve", "--config", config, "--peer-addr", "127.0.0.1:\(peerPort)", "--password", "from-flag"]
        process.environment = ["SKIFF_CLIENT_ADDR": "127.0.0.1:\(environmentPort)", "SKIFF_PASSWORD": "from-env"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { process.terminate(); process.waitUntilExit() }
        try waitUntil(seconds: 20, "the node listens where the environment says") { (try? RESPClient(port: environmentPort)) != nil }
        let client = try RESPClient(port: environmentPort)
        #expect(try client.call("AUTH", "from-env") == .error("WRONGPASS invalid username-password pair or user is disabled."))
        #expect(try client.call("AUTH", "from-flag") == .simple("OK"))
        #expect((try? RESPClient(port: filePort)) == nil)
        #expect(FileManager.default.fileExists(atPath: "\(directory)/da#ta/wal"))
        try "password = \"open\n".write(toFile: config, atomically: true, encoding: .utf8)
        let unclosed = try run("skiff", ["serve", "--config", config])
        #expect(unclosed.status != 0 && unclosed.output.contains("skiff.conf:1: the quoted value has no closing quote"))

        let bad = try run("skiff", ["serve", "--fsync", "sometimes"])
        #expect(bad.status != 0 && bad.output.contains("--fsync must be always or never"))
        let badCluster = try run("skiff", ["serve", "--id", "n9", "--initial-cluster", "n1=127.0.0.1:1"])
        #expect(badCluster.status != 0 && badCluster.output.contains("does not list this node's --id 'n9'"))
    }

    /// `--metrics-addr` serves Prometheus text that follows the node's state.
    @Test func prometheusMetrics() throws {
        let metricsPort = try freePort()
        let cluster = try SkiffCluster(nodes: 1, extraArguments: ["--metrics-addr", "127.0.0.1:\(metricsPort)"])
        try cluster.startAll()
        let client = try RESPClient(port: cluster.port("n1"))
        _ = try client.pipeline((0..<10).map { ["SET", "m\($0)", "x"] })
        let http = try RESPClient(port: metricsPort)
        try http.send(raw: Array("GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8))
        let response = try http.readUntilClosed()
        #expect(response.hasPrefix("HTTP/1.1 200 OK"))
        for line in ["skiff_raft_role{role=\"leader\"} 1.0", "skiff_keyspace_keys 10.0", "skiff_client_writes_total 10", "skiff_raft_term 1.0"] {
            #expect(response.contains(line), "missing \(line)")
        }
        #expect(response.contains("skiff_wal_fsync_seconds_count"))
    }

    /// Twenty SIGKILLs while four clients write: after every restart, every acknowledged write is there.
    @Test func everyAcknowledgedWriteSurvivesTwentySIGKILLs() throws {
        let cluster = try SkiffCluster(nodes: 1, extraArguments: ["--snapshot-entries", "700"])
        try cluster.startAll()
        let acknowledged = Acknowledged()
        let port = cluster.port("n1")
        for round in 0..<20 {
            let writers = (0..<4).map { writer in
                Thread {
                    guard let client = try? RESPClient(port: port) else { return }
                    for i in 0..<100_000 {
                        let key = "r\(round)-w\(writer)-\(i)"
                        guard (try? client.call("SET", key, "\(i)")) == .simple("OK") else { return }
                        acknowledged.add(key, "\(i)")
                    }
                }
            }
            for writer in writers { writer.start() }
            usleep(useconds_t(100_000 + 20_000 * (round % 5)))
            cluster.kill("n1")
            while writers.contains(where: { $0.isExecuting }) { usleep(1000) }
            try cluster.start("n1")
            let client = try RESPClient(port: cluster.port("n1"))
            let all = acknowledged.all
            for chunk in stride(from: 0, to: all.count, by: 500) {
                let keys = all[chunk..<min(chunk + 500, all.count)]
                let reply = try client.call(["MGET"] + keys.map(\.key))
                #expect(reply == .array(keys.map { .bulk(Array($0.value.utf8)) }), "round \(round): an acknowledged write is missing")
            }
        }
        #expect(acknowledged.all.count > 20 * 4 * 5)
        #expect(cluster.log("n1").contains("took a snapshot"))
    }
}

/// Writes the server acknowledged, from several threads.
final class Acknowledged: @unchecked Sendable {
    private let lock = NSLock()
    private var pairs: [(key: String, value: String)] = []
    func add(_ key: String, _ value: String) { lock.withLock { pairs.append((key, value)) } }
    var all: [(key: String, value: String)] { lock.withLock { pairs } }
}
