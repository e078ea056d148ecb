import Foundation
import Glibc
import SkiffClient
import SkiffRaft
import Testing

/// The same random pipelines of string commands, transactions and WATCH sent to Debian's `redis-server` and
/// to Skiff (a one-node cluster, or a follower of three, which forwards the writes) get the same replies,
/// while a second client changes keys between them. Error replies
/// must agree on their code (the first word), not their wording. INCRBYFLOAT is left out: Skiff stores its
/// sums as binary64 text (the SkiffKV article *Commands and Snapshots of the Key Space*), Redis as long
/// double, so `1e+20` there is `100000000000000000000` in Redis.
@Suite(.serialized) struct RedisDifferentialTests {
    static let keys = ["a", "b", "c", "n"]
    static let values = ["1", "10", "-3", "x", "", "abc", "3.5", "99999999999999999999", "0"]

    /// One random command, valid or not.
    static func command(_ random: inout SplitMix64) -> [String] {
        func pick(_ words: [String]) -> String { words[Int(random.below(UInt64(words.count)))] }
        func key() -> String { pick(keys) }
        func value() -> String { pick(values) }
        func offset() -> String { String(Int(random.below(7)) - 3) }
        switch random.below(52) {
        case 0: return ["GET", key()]
        case 1: return ["SET", key(), value()]
        case 2: return ["SET", key(), value()] + [[], ["NX"], ["XX"], ["GET"], ["NX", "GET"], ["XX", "GET"], ["KEEPTTL"]][Int(random.below(7))]
        case 3: return ["DEL", key(), key()]
        case 4: return ["EXISTS", key(), key()]
        case 5: return ["INCR", key()]
        case 6: return ["INCRBY", key(), value()]
        case 7: return ["DECR", key()]
        case 8: return ["DECRBY", key(), value()]
        case 9: return ["APPEND", key(), value()]
        case 10: return ["STRLEN", key()]
        case 11: return ["GETRANGE", key(), offset(), offset()]
        case 12: return ["SETRANGE", key(), String(random.below(4)), value()]
        case 13: return ["MSET", key(), value(), key(), value()]
        case 14: return ["MGET", key(), key(), key()]
        case 15: return ["MSETNX", key(), value(), key(), value()]
        case 16: return ["GETDEL", key()]
        case 17: return ["GETSET", key(), value()]
        case 18: return ["SETNX", key(), value()]
        case 19: return ["RENAME", key(), key()]
        case 20: return ["RENAMENX", key(), key()]
        case 21: return ["TYPE", key()]
        case 22: return ["DBSIZE"]
        case 23: return ["PING"]
        case 24: return ["ECHO", value()]
        case 25: return ["TTL", key()]
        case 26: return ["PERSIST", key()]
        case 27: return ["TOUCH", key(), key()]
        case 28: return ["SELECT", "0"]
        case 29, 30: return ["MULTI"]
        case 31, 32: return ["EXEC"]
        case 33: return ["DISCARD"]
        case 34: return ["WATCH", key()]
        case 35: return ["WATCH", key(), key()]
        case 36: return ["UNWATCH"]
        case 37: return ["NOSUCH", key()]
        case 38: return ["MSET", key(), value(), key()]
        case 39: return ["PING", value(), value()]
        case 40: return ["CLIENT", "SETNAME", pick(["app", "job", "a b"])]
        case 41: return ["CLIENT", "GETNAME"]
        case 42: return ["GETEX", key()] + (random.chance(1, in: 2) ? ["PERSIST"] : [])
        case 43: return [pick(["PTTL", "EXPIRETIME", "PEXPIRETIME"]), key()]
        case 44: return ["SUBSTR", key(), offset(), offset()]
        case 45: return ["UNLINK", key(), key()]
        case 46: return ["SETRANGE", key(), String(random.below(12)), value()]
        case 47: return ["INCRBY", key(), pick(["-0", "+1", " 1", "007", "9223372036854775807", "-9223372036854775808"])]
        case 48: return ["DECRBY", key(), pick(["-9223372036854775808", "1"])]
        case 49: return ["STRLEN", key(), key()]
        case 50: return ["SELECT", pick(["0", "x", "-1"])]
        default: return ["GET"]
        }
    }

    /// Equal replies, or errors with the same code.
    static func agree(_ redis: RESPClient.Reply, _ skiff: RESPClient.Reply) -> Bool {
        switch (redis, skiff) {
        case (.error(let expected), .error(let actual)): expected.split(separator: " ").first == actual.split(separator: " ").first
        case (.array(let expected), .array(let actual)): expected.count == actual.count && zip(expected, actual).allSatisfy(agree)
        default: redis == skiff
        }
    }

    @Test(arguments: [(1, 1), (2, 1), (3, 3)] as [(UInt64, Int)]) func randomPipelinesGetRedissReplies(seed: UInt64, nodes: Int) throws {
        let redisPort = try freePort()
        let redis = Process()
        redis.executableURL = try executable("redis-server")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-redis-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Its own empty directory: no dump.rdb of some earlier run is loaded.
        redis.arguments = ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory]
        redis.standardOutput = FileHandle.nullDevice
        try redis.run()
        defer {
            Glibc.kill(redis.processIdentifier, SIGKILL)
            redis.waitUntilExit()
        }
        let cluster = try SkiffCluster(nodes: nodes)
        try cluster.startAll()
        try waitUntil(seconds: 10, "redis-server to answer") { (try? RESPClient(port: redisPort).call("PING")) == .simple("PONG") }
        let leader = try cluster.waitForLeader()
        let node = cluster.names.first { $0 != leader } ?? leader
        let servers = [try RESPClient(port: redisPort), try RESPClient(port: cluster.port(node))]
        let version = try servers[0].call("INFO", "server").text.split(separator: "\r\n").first { $0.hasPrefix("redis_version:") } ?? "?"
        let others = [try RESPClient(port: redisPort), try RESPClient(port: cluster.port(leader))]
        var random = SplitMix64(seed: seed)
        for round in 0..<250 {
            let commands = (0..<1 + random.below(10)).map { _ in Self.command(&random) }
            let replies = try servers.map { try $0.pipeline(commands) }
            for (command, (expected, actual)) in zip(commands, zip(replies[0], replies[1])) where !Self.agree(expected, actual) {
                Issue.record("seed \(seed), \(nodes) node(s), round \(round), \(command): Redis (\(version)) replied \(expected), Skiff \(actual)")
                return  // the two key spaces differ from here on
            }
            if random.chance(1, in: 5) {  // another client changes a key, perhaps one that is watched
                let change = ["SET", Self.keys[Int(random.below(UInt64(Self.keys.count)))], "changed"]
                for client in others { #expect(try client.call(change) == .simple("OK")) }
            }
        }
        let state = try servers.map { try $0.pipeline([["DISCARD"], ["MGET"] + Self.keys, ["DBSIZE"]]).dropFirst() }
        #expect(Array(state[0]) == Array(state[1]))
    }
}
