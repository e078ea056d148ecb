import Foundation
import Glibc
import SkiffClient
import Testing

/// Forming a cluster of waiting nodes with `skiff init`, with real processes.
@Suite(.serialized) struct InitTests {
    @Test func waitingNodesAreFormedBySkiffInitSentToAnyOfThemOnceAndForAll() throws {
        let cluster = try SkiffCluster(nodes: 4)
        cluster.awaitingInit = true
        cluster.joinThrough = ["n2": ["n1"], "n3": ["n1"], "n4": ["n2"]]
        try cluster.startAll()
        func initialise(_ voters: String, name: String = "prod", through node: String = "n4") throws -> (status: Int32, output: String) {
            try run("skiff", ["init", "--name", name, "--voters", voters, "--server", "127.0.0.1:\(cluster.port(node))"], seconds: 60)
        }

        // Waiting, a node serves nothing but forming a cluster.
        try waitUntil(seconds: 20, "n1 listens") { (try? RESPClient(port: cluster.port("n1")).call("PING")) == .simple("PONG") }
        #expect(try RESPClient(port: cluster.port("n1")).call("SET", "k", "v").text.hasPrefix("UNINITIALISED"))
        // A malformed request is answered after the commands before it, even one answered by a task (an init).
        let pipelined = try RESPClient(port: cluster.port("n1"))
        try pipelined.send(raw: RESPClient.encode(["PING"]) + RESPClient.encode(["SKIFF.INIT", "prod", "n1", "n9"]) + Array("*1\r\n$x\r\n".utf8))
        #expect(try pipelined.readReply() == .simple("PONG"))
        #expect(try pipelined.readReply().text.contains("UNKNOWN-VOTERS"))
        #expect(try pipelined.readReply() == .error("ERR Protocol error: invalid bulk length"))
        #expect(pipelined.isClosedByServer())
        let unknown = try initialise("n1,n2,n9")
        #expect(unknown.status != 0)
        #expect(unknown.output.contains("UNKNOWN-VOTERS") && unknown.output.contains("n9"), "\(unknown.output)")
        #expect(!FileManager.default.fileExists(atPath: cluster.dataDirectory("n1") + "/cluster"), "a failed init records nothing")

        // n3 hands the init to n1, the voter whose name sorts first, and still answers once n1 has made it
        // adopt the cluster. It may take the nodes a moment to learn each other's addresses.
        var formed = (status: Int32(1), output: "")
        try waitUntil(seconds: 30, "the init succeeds") {
            formed = try initialise("n3,n2,n1", through: "n3")
            return formed.status == 0
        }
        #expect(formed.output.contains("initialised cluster prod"), "\(formed.output)")
        try waitUntil(seconds: 30, "n4 joins as a learner") {
            (try? MembershipTests.members(cluster, cluster.waitForLeader())["n4"]?["role"]) == "learner"
        }
        let members = try MembershipTests.members(cluster, cluster.waitForLeader())
        #expect(Set(members.keys) == ["n1", "n2", "n3", "n4"])
        #expect(["n1", "n2", "n3"].allSatisfy { ["leader", "follower"].contains(members[$0]?["role"]) }, "\(members)")
        #expect(members["n2"]?["client_address"] == "127.0.0.1:\(cluster.port("n2"))", "init records every voter's client address")
        let tags = try cluster.names.map { try cluster.status($0)["cluster_uuid"] ?? "" }
        #expect(Set(tags).count == 1 && tags[0].count == 36, "\(tags)")
        #expect(try cluster.status("n1")["cluster"] == "prod")
        #expect(try RESPClient(port: cluster.port("n4")).call("SET", "k", "v") == .simple("OK"))
        #expect(try RESPClient(port: cluster.port("n1")).call("GET", "k") == .bulk(Array("v".utf8)))

        // Repeating the init is harmless, even through a learner; an init into another cluster is refused.
        let repeated = try initialise("n1,n2,n3", through: "n4")
        #expect(repeated.status == 0 && repeated.output.contains("is initialised"), "\(repeated.output)")
        let other = try initialise("n1,n2", name: "elsewhere", through: "n2")
        #expect(other.status != 0 && other.output.contains("ALREADY-INITIALISED"), "\(other.output)")

        // A voter restarted with the same command line (still --await-init) keeps its cluster and data.
        cluster.kill("n2")
        try cluster.start("n2")
        try waitUntil(seconds: 20, "n2 serves again") { (try? cluster.status("n2")["cluster_uuid"]) == tags[0] }
        try waitUntil(seconds: 20, "n2 reads the write") {
            (try? RESPClient(port: cluster.port("n2")).call("GET", "k")) == .bulk(Array("v".utf8))
        }
    }

    @Test func aVoterThatMissedTheInitTakesItWhenTheCoordinatorStartsAgain() throws {
        let cluster = try SkiffCluster(nodes: 3)
        cluster.awaitingInit = true
        cluster.joinThrough = ["n2": ["n1"], "n3": ["n1"]]
        try cluster.start("n1")
        try cluster.start("n2")
        try waitUntil(seconds: 20, "n1 listens") { (try? RESPClient(port: cluster.port("n1")).call("PING")) == .simple("PONG") }
        // n1 hears of n3, as if n3 had asked to join, but n3 is not running.
        let peerPort = try #require(cluster.arguments("n3").drop { $0 != "--peer-addr" }.dropFirst().first)
        let heard = try RESPClient(port: cluster.port("n1")).call("SKIFF.JOIN", "n3", "7", peerPort, "127.0.0.1:\(cluster.port("n3"))", "1")
        #expect(heard.text.contains("n3="), "\(heard)")
        var first = (status: Int32(1), output: "")
        try waitUntil(seconds: 20, "n2 is known") {
            first = try run("skiff", ["init", "--name", "late", "--voters", "n1,n2,n3", "--server", "127.0.0.1:\(cluster.port("n2"))"], seconds: 60)
            return !first.output.contains("UNKNOWN-VOTERS")
        }
        #expect(first.status != 0 && first.output.contains("INCOMPLETE") && first.output.contains("n3 at"), "\(first.output)")
        let leader = try cluster.waitForLeader()
        #expect(["n1", "n2"].contains(leader), "two voters of three elect a leader")
        #expect(FileManager.default.fileExists(atPath: cluster.dataDirectory("n1") + "/init-pending"))

        // n3 comes up waiting; the coordinator, restarted, hands it the cluster it missed.
        try cluster.start("n3")
        cluster.kill("n1")
        try cluster.start("n1")
        try waitUntil(seconds: 30, "n3 is a voter") {
            (try? MembershipTests.members(cluster, cluster.waitForLeader())["n3"]?["role"]).map { ["leader", "follower"].contains($0) } ?? false
        }
        #expect(!FileManager.default.fileExists(atPath: cluster.dataDirectory("n1") + "/init-pending"))
        #expect(cluster.log("n1").contains("handing the cluster's identity to the voters that have not taken it yet"))
        let repeated = try run("skiff", ["init", "--name", "late", "--voters", "n1,n2,n3", "--server", "127.0.0.1:\(cluster.port("n3"))"], seconds: 60)
        #expect(repeated.status == 0 && repeated.output.contains("is initialised"), "\(repeated.output)")
    }

    /// An address known for the coordinator that leads back to the node handing the init on (here, the
    /// node itself) ends in a refusal at once, not in inits handed round without end.
    @Test func anInitHandedOnInALoopIsRefusedAndRecordsNothing() throws {
        let cluster = try SkiffCluster(nodes: 1)
        cluster.awaitingInit = true
        try cluster.start("n1")
        let address = "127.0.0.1:\(cluster.port("n1"))"
        try waitUntil(seconds: 20, "n1 listens") { (try? RESPClient(port: cluster.port("n1")).call("PING")) == .simple("PONG") }
        // n1 hears that n0, which sorts first and so coordinates, answers at n1's own address.
        let heard = try RESPClient(port: cluster.port("n1")).call("SKIFF.JOIN", "n0", "7", "127.0.0.1:1", address, "1")
        #expect(heard.text.contains("n0=127.0.0.1:1=\(address)"), "\(heard)")
        let looped = try run("skiff", ["init", "--name", "loop", "--voters", "n0,n1", "--server", address], seconds: 60)
        #expect(looped.status != 0, "\(looped.output)")
        #expect(looped.output.contains("is handing an init on to n0 at \(address) already") && looped.output.contains("does not lead to n0"),
                "\(looped.output)")
        #expect(!FileManager.default.fileExists(atPath: cluster.dataDirectory("n1") + "/cluster"))
        #expect(try RESPClient(port: cluster.port("n1")).call("PING") == .simple("PONG"), "n1 still serves")
    }

    /// A reply that cannot be written (its client went away) does not keep a later SKIFF.INIT on the same
    /// connection from being seen through: the node forms its cluster and starts.
    @Test func anInitAfterAReplyThatCouldNotBeWrittenStillStartsTheNode() throws {
        let cluster = try SkiffCluster(nodes: 1)
        cluster.awaitingInit = true
        try cluster.startAll()
        try waitUntil(seconds: 20, "n1 listens") { (try? RESPClient(port: cluster.port("n1")).call("PING")) == .simple("PONG") }
        // A node "a0" that accepts connections but never answers: an init it coordinates waits for it.
        let silent = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var silentOpen = true
        defer { if silentOpen { close(silent) } }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try #require(withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(silent, $0, length) } } == 0)
        try #require(listen(silent, 4) == 0)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(silent, $0, &length) } }
        let silentPort = Int(UInt16(bigEndian: address.sin_port))
        _ = try RESPClient(port: cluster.port("n1")).call("SKIFF.JOIN", "a0", "7", "127.0.0.1:\(try freePort())", "127.0.0.1:\(silentPort)", "1")

        // The first init is handed on to a0 and waits; the second forms a cluster of n1 alone. The client
        // leaves before either is answered, so the first reply's write fails.
        do {
            let client = try RESPClient(port: cluster.port("n1"))
            try client.send(raw: RESPClient.encode(["SKIFF.INIT", "prod", "a0", "n1"]) + RESPClient.encode(["SKIFF.INIT", "solo", "n1"]))
            try waitUntil(seconds: 10, "n1 records the second init") { FileManager.default.fileExists(atPath: cluster.dataDirectory("n1") + "/cluster") }
        }
        usleep(300_000)  // the connection is gone on n1's side too
        close(silent)  // a0's connection is reset: the first init is answered, to nobody
        silentOpen = false
        try waitUntil(seconds: 20, "n1 starts as the one-node cluster solo") {
            (try? RESPClient(port: cluster.port("n1")).call("SET", "k", "v")) == .simple("OK")
        }
        #expect(cluster.log("n1").contains("initialised the cluster"))
    }

    @Test func aWaitingNodeStopsOnSIGTERMWithoutRecordingAnything() throws {
        let cluster = try SkiffCluster(nodes: 1)
        cluster.awaitingInit = true
        try cluster.start("n1")
        try waitUntil(seconds: 20, "n1 listens") { (try? RESPClient(port: cluster.port("n1")).call("PING")) == .simple("PONG") }
        #expect(try cluster.terminate("n1") == 1)
        #expect(cluster.log("n1").contains("stopped by a signal before the node had started"))
        #expect(!FileManager.default.fileExists(atPath: cluster.dataDirectory("n1") + "/cluster"))
    }
}
