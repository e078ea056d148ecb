import Foundation
import Glibc
import Testing
import SkiffClient

/// MULTI, EXEC, DISCARD, WATCH and UNWATCH against real `skiff serve` processes, answered as Redis answers.
@Suite(.serialized) struct TransactionTests {
    static func bulk(_ text: String) -> RESPClient.Reply { .bulk(Array(text.utf8)) }
    static let queued = RESPClient.Reply.simple("QUEUED")

    @Test func transactionsQueueRunTogetherAndAnswerAsRedisDoes() throws {
        let cluster = try SkiffCluster(nodes: 1)
        try cluster.startAll()
        let client = try RESPClient(port: cluster.port("n1"))
        let other = try RESPClient(port: cluster.port("n1"))
        // Reads see the writes queued before them; each command gets its own reply, errors included.
        #expect(try client.pipeline([["SET", "s", "text"], ["MULTI"], ["SET", "t", "1"], ["INCR", "t"], ["GET", "t"], ["INCR", "s"],
                                     ["MGET", "t", "nope"], ["PING"], ["SETNX", "t", "9"], ["EXEC"]])
                == [.simple("OK"), .simple("OK")] + Array(repeating: Self.queued, count: 7)
                + [.array([.simple("OK"), .integer(2), Self.bulk("2"), .error("ERR value is not an integer or out of range"),
                           .array([Self.bulk("2"), .bulk(nil)]), .simple("PONG"), .integer(0)])])
        #expect(try client.call("EXEC") == .error("ERR EXEC without MULTI"))
        #expect(try client.call("DISCARD") == .error("ERR DISCARD without MULTI"))
        // DISCARD drops what was queued; refusals while queueing that are not Redis's queueing errors leave
        // the transaction as it was.
        #expect(try client.pipeline([["MULTI"], ["SET", "t", "dropped"], ["MULTI"], ["WATCH", "t"], ["DISCARD"], ["GET", "t"]])
                == [.simple("OK"), Self.queued, .error("ERR MULTI calls can not be nested"),
                    .error("ERR WATCH inside MULTI is not allowed"), .simple("OK"), Self.bulk("2")])
        // A command refused while queueing (unknown, wrong arity, not allowed here) makes EXEC run nothing,
        // even when the refusal was pipelined behind a write still in flight.
        for refused in [["NOSUCH", "x"], ["GET"], ["CLIENT", "KILL", "ID", "1"], ["SKIFF.WATCH", "p"], ["SETEX", "k", "v"]] {
            let replies = try client.pipeline([["SET", "before", "1"], ["MULTI"], ["SET", "t", "lost"], refused, ["EXEC"], ["GET", "t"]])
            #expect(replies.count == 6 && replies[3].text.hasPrefix("ERR"), "\(refused): \(replies)")
            #expect(Array(replies[0...2]) == [.simple("OK"), .simple("OK"), Self.queued] && replies[5] == Self.bulk("2"))
            #expect(replies[4] == .error("EXECABORT Transaction discarded because of previous errors."))
        }
        // Connection commands wait in the transaction too, and run with it, as in Redis.
        #expect(try client.pipeline([["MULTI"], ["CLIENT", "SETNAME", "tx"], ["CLIENT", "GETNAME"], ["READONLY"], ["EXEC"], ["CLIENT", "GETNAME"], ["READWRITE"]])
                == [.simple("OK"), Self.queued, Self.queued, Self.queued, .array([.simple("OK"), Self.bulk("tx"), .simple("OK")]), Self.bulk("tx"), .simple("OK")])
        // EXEC's reply is written in the protocol in force when EXEC came, though a HELLO inside changes it.
        let hello = try client.pipeline([["MULTI"], ["GET", "missing"], ["HELLO", "3"], ["EXEC"], ["HELLO", "2"]])
        guard case .array(let results) = hello[3], results.count == 2, case .array = results[1], case .array = hello[4] else {
            throw Timeout(description: "HELLO inside a transaction: \(hello)")
        }
        #expect(results[0] == .bulk(nil))
        // A bad argument is Redis's run-time error: the command is queued, and its error is its reply in EXEC's.
        let replies = try client.pipeline([["MULTI"], ["INCRBY", "t", "x"], ["SET", "t", "v", "EX", "1"], ["GET", "t"], ["EXEC"]])
        #expect(Array(replies[0...3]) == [.simple("OK"), Self.queued, Self.queued, Self.queued])
        guard case .array(let results) = replies[4], results.count == 3 else { throw Timeout(description: "EXEC replied \(replies[4])") }
        #expect(results[0] == .error("ERR value is not an integer or out of range") && results[2] == Self.bulk("2"))
        #expect(results[1].text.hasPrefix("ERR expiry options"), "\(results[1])")
        // WATCH: a change by anyone, this client included, between WATCH and EXEC makes EXEC run nothing.
        #expect(try client.call("WATCH", "t", "absent") == .simple("OK"))
        #expect(try other.call("SET", "t", "5") == .simple("OK"))
        #expect(try client.pipeline([["MULTI"], ["INCR", "t"], ["EXEC"]]) == [.simple("OK"), Self.queued, .nullArray])
        #expect(try client.pipeline([["WATCH", "t"], ["MULTI"], ["INCR", "t"], ["EXEC"]]) == [.simple("OK"), .simple("OK"), Self.queued, .array([.integer(6)])])
        #expect(try client.pipeline([["WATCH", "absent"], ["SET", "absent", "1"], ["MULTI"], ["GET", "absent"], ["EXEC"]])
                == [.simple("OK"), .simple("OK"), .simple("OK"), Self.queued, .nullArray])
        #expect(try client.pipeline([["WATCH", "t"], ["UNWATCH"], ["SET", "t", "7"], ["MULTI"], ["GET", "t"], ["EXEC"]])
                == [.simple("OK"), .simple("OK"), .simple("OK"), .simple("OK"), Self.queued, .array([Self.bulk("7")])])
        #expect(try client.pipeline([["WATCH", "t"], ["MULTI"], ["DISCARD"], ["SET", "t", "8"], ["MULTI"], ["GET", "t"], ["EXEC"]]).last
                == .array([Self.bulk("8")]), "DISCARD forgets the watched keys")
        #expect(try client.call("GET", "absent") == Self.bulk("1"))
        #expect(try client.pipeline([["WATCH", "t"], ["MULTI"], ["UNWATCH"], ["GET", "t"], ["EXEC"]])
                == [.simple("OK"), .simple("OK"), Self.queued, Self.queued, .array([.simple("OK"), Self.bulk("8")])])
        #expect(try client.call(["WATCH"] + (0...100_000).map { "w\($0)" }) == .error("ERR a connection watches at most 100000 keys"))
        // CLIENT LIST shows a connection inside MULTI (flag x), what it queued and how many keys it watches.
        let id = try client.call("CLIENT", "ID").text
        #expect(try client.pipeline([["WATCH", "t", "u", "t"], ["MULTI"], ["GET", "t"], ["GET", "u"]]) == [.simple("OK"), .simple("OK"), Self.queued, Self.queued])
        let line = try other.call("CLIENT", "LIST", "ID", id).text
        #expect(line.contains(" flags=x db=0 multi=2 watch=2 "), "\(line)")
        #expect(try client.call("DISCARD") == .simple("OK"))
        #expect(try other.call("CLIENT", "LIST", "ID", id).text.contains(" flags=N db=0 multi=-1 watch=0 "))
    }

    /// A transaction's writes are one log entry: a watcher sees each transaction's changes at one revision,
    /// so no reader of any node can see part of one.
    @Test func aTransactionsWritesShareOneRevision() throws {
        let cluster = try SkiffCluster(nodes: 1)
        try cluster.startAll()
        let client = try RESPClient(port: cluster.port("n1"))
        let watcher = try RESPClient(port: cluster.port("n1"))
        guard case .array = try watcher.call("SKIFF.WATCH", "tx:") else { throw Timeout(description: "SKIFF.WATCH did not start") }
        let rounds = 50
        for round in 1...rounds {
            #expect(try client.pipeline([["MULTI"], ["INCR", "tx:c"], ["SET", "other", "x"], ["INCR", "tx:d"], ["EXEC"]]).last
                    == .array([.integer(Int64(round)), .simple("OK"), .integer(Int64(round))]))
        }
        var revisions: [Int64] = []
        for _ in 0..<2 * rounds {
            guard case .array(let event) = try watcher.readReply(), event.count == 4, case .integer(let revision) = event[1] else {
                throw Timeout(description: "not a watch event")
            }
            revisions.append(revision)
        }
        for pair in stride(from: 0, to: revisions.count, by: 2) { #expect(revisions[pair] == revisions[pair + 1], "\(revisions)") }
        #expect(Set(revisions).count == rounds)
    }

    /// A transaction sent to a follower is forwarded like any write, applied once on every node, and survives
    /// its origin's SIGKILL and restart; WATCH on one node sees a change made through another.
    @Test func aTransactionThroughAFollowerRunsOnceOnEveryNode() throws {
        let cluster = try SkiffCluster(nodes: 3)
        try cluster.startAll()
        let leader = try cluster.waitForLeader()
        let follower = cluster.names.first { $0 != leader }!
        let client = try RESPClient(port: cluster.port(follower))
        #expect(try client.pipeline([["MULTI"], ["SET", "k", "1"], ["INCR", "k"], ["GET", "k"], ["APPEND", "s", "x"], ["GET", "s"], ["EXEC"]])
                == [.simple("OK")] + Array(repeating: Self.queued, count: 5)
                + [.array([.simple("OK"), .integer(2), Self.bulk("2"), .integer(1), Self.bulk("x")])])
        #expect(try client.call("WATCH", "k") == .simple("OK"))
        #expect(try RESPClient(port: cluster.port(leader)).call("SET", "k", "10") == .simple("OK"))
        #expect(try client.pipeline([["MULTI"], ["INCR", "k"], ["EXEC"]]) == [.simple("OK"), Self.queued, .nullArray])
        cluster.kill(follower)
        try cluster.start(follower)
        for name in cluster.names {
            let reader = try RESPClient(port: cluster.port(name))
            #expect(try reader.call("MGET", "k", "s") == .array([Self.bulk("10"), Self.bulk("x")]), "\(name)")
        }
    }
}
