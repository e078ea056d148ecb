import Foundation
import SkiffClient
import Testing

/// The cluster's lifecycle with real processes: its tag, nodes joining and leaving, what a removed node does,
/// and what a leader does after its process stalled.
@Suite(.serialized) struct MembershipTests {
    /// SKIFF.MEMBERS of `name` as one dictionary per member, by member name.
    static func members(_ cluster: SkiffCluster, _ name: String) throws -> [String: [String: String]] {
        guard case .array(let rows) = try RESPClient(port: cluster.port(name)).call("SKIFF.MEMBERS") else { return [:] }
        var members: [String: [String: String]] = [:]
        for case .array(let items) in rows {
            var fields: [String: String] = [:]
            for pair in stride(from: 0, to: items.count - 1, by: 2) { fields[items[pair].text] = items[pair + 1].text }
            members[fields["name"] ?? ""] = fields
        }
        return members
    }

    /// Waits for a leader and returns it, having handed leadership to n1 if n3 had it, so that n3 can be taken away.
    static func leaderOtherThanN3(_ cluster: SkiffCluster) throws -> String {
        let leader = try cluster.waitForLeader()
        guard leader == "n3" else { return leader }
        #expect(try run("skiff", ["transfer-leader", "n1", "--server", "127.0.0.1:\(cluster.port("n3"))"]).status == 0)
        try waitUntil(seconds: 10, "n1 leads") { try cluster.status("n1")["role"] == "leader" }
        return try cluster.waitForLeader()
    }

    @Test func theClusterTagIsRecordedOnceAndKeptAcrossRestarts() throws {
        let cluster = try SkiffCluster(nodes: 3, extraArguments: ["--cluster-name", "orders"])
        try cluster.startAll()
        try cluster.waitForLeader()
        let tags = try cluster.names.map { try cluster.status($0) }.map { "\($0["cluster"] ?? "") \($0["cluster_uuid"] ?? "")" }
        #expect(Set(tags).count == 1, "every member has the same tag: \(tags)")
        #expect(tags[0].hasPrefix("orders "))
        let uuid = try #require(try cluster.info("n1")["skiff_cluster_uuid"])
        #expect(uuid.count == 36)

        // A restart with another cluster name keeps the recorded tag (and says the flag was not used).
        #expect(try cluster.terminate("n1") == 0)
        try cluster.start("n1", adding: ["--cluster-name", "renamed"])
        #expect(try cluster.status("n1")["cluster"] == "orders")
        #expect(try cluster.info("n1")["skiff_cluster_uuid"] == uuid)
        #expect(cluster.log("n1").contains("used only on a node's first start"))
        try cluster.waitForLeader()
    }

    @Test func aNodeWithAnotherClustersDataIsRefusedWithTheReason() throws {
        let cluster = try SkiffCluster(nodes: 3)
        try cluster.startAll()
        let leader = try cluster.waitForLeader()
        // Refused membership commands pipelined to a follower around another command are each answered: the
        // second was once handed over from inside the first one's answer, and that stopped the node.
        let follower = cluster.names.first { $0 != leader }!
        let replies = try RESPClient(port: cluster.port(follower)).pipeline([["SKIFF.PROMOTE", "nosuch"], ["PING"], ["SKIFF.PROMOTE", "nosuch"]])
        #expect(replies.count == 3 && replies[1] == .simple("PONG") && replies[2] == replies[0], "\(replies)")
        #expect(replies.first.map { if case .error = $0 { true } else { false } } == true, "\(replies)")
        // A one-node cluster of its own, then told to join this one: its data belongs elsewhere.
        let stranger = try SkiffCluster(nodes: 1, extraArguments: ["--cluster-name", "elsewhere"])
        try stranger.start("n1")
        #expect(try RESPClient(port: stranger.port("n1")).call("SET", "mine", "1") == .simple("OK"))
        let stopped = try stranger.terminate("n1")
        #expect(stopped == 0, "SIGTERM should stop the node gracefully; its log:\n\(stranger.log("n1"))")
        let attempt = try run("skiff", stranger.arguments("n1").filter { $0 != "elsewhere" && $0 != "--cluster-name" }
                                + ["--join", "127.0.0.1:\(cluster.port("n2"))", "--join-timeout", "10"], seconds: 30)
        #expect(attempt.status != 0)
        #expect(attempt.output.contains("refused this node"), "\(attempt.output)")
        #expect(attempt.output.contains("belongs to cluster"), "\(attempt.output)")
        #expect(try Self.members(cluster, cluster.waitForLeader()).count == 3)

        // A node whose name is taken by a member at another address is refused too.
        let impostor = try run("skiff", ["serve", "--id", "n3", "--data-dir", cluster.directory + "/impostor",
                                          "--client-addr", "127.0.0.1:\(try freePort())", "--peer-addr", "127.0.0.1:\(try freePort())",
                                          "--join", "127.0.0.1:\(cluster.port("n1"))", "--join-timeout", "10"], seconds: 30)
        #expect(impostor.status != 0)
        #expect(impostor.output.contains("the name n3 is taken"), "\(impostor.output)")
    }

    @Test func aNodeJoinsThroughAFollowerAsALearnerCatchesUpAndIsPromoted() throws {
        let cluster = try SkiffCluster(nodes: 3, extraArguments: ["--snapshot-entries", "100"])
        try cluster.startAll()
        let leader = try cluster.waitForLeader()
        let follower = cluster.names.first { $0 != leader }!
        let client = try RESPClient(port: cluster.port(leader))
        let written = try client.pipeline((0..<300).map { ["SET", "key\($0)", "value\($0)"] })
        #expect(written.allSatisfy { $0 == .simple("OK") })

        try cluster.addJoiner("n4", through: [follower])
        try cluster.start("n4")
        #expect(cluster.log("n4").contains("joined the cluster"))
        try waitUntil(seconds: 20, "n4 is a learner that caught up") {
            let status = try cluster.status("n4")
            return status["role"] == "learner" && Int(status["applied_index"] ?? "") ?? 0 >= 300
        }
        // It came in after the log was compacted, so it caught up through a snapshot; it serves reads.
        let learner = try RESPClient(port: cluster.port("n4"))
        #expect(try learner.call("GET", "key0") == .bulk(Array("value0".utf8)))
        #expect(try learner.call("GET", "key299") == .bulk(Array("value299".utf8)))
        #expect(try learner.call("SET", "from-learner", "1") == .simple("OK"))
        #expect(try Self.members(cluster, leader)["n4"]?["role"] == "learner")
        // It serves a watch too: a change made through the leader reaches the learner's watcher.
        let watcher = try RESPClient(port: cluster.port("n4"))
        guard case .array = try watcher.call("SKIFF.WATCH", "key7") else { throw Timeout(description: "SKIFF.WATCH failed on the learner") }
        #expect(try client.call("SET", "key7", "seven") == .simple("OK"))
        #expect(try watcher.readReply().text.hasSuffix("key7 seven"))

        // The CLI promotes it, through any member.
        let promoted = try run("skiff", ["promote", "n4", "--server", "127.0.0.1:\(cluster.port(follower))"])
        #expect(promoted.status == 0, "\(promoted.output)")
        try waitUntil(seconds: 10, "n4 is a voter") { try Self.members(cluster, leader)["n4"]?["role"] == "follower" }
        let listed = try run("skiff", ["members", "--json", "--server", "127.0.0.1:\(cluster.port("n4"))"])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(listed.output.utf8)) as? [[String: Any]], "\(listed.output)")
        #expect(Set(rows.compactMap { $0["name"] as? String }) == ["n1", "n2", "n3", "n4"])

        // A restart with the same command line (still --join) is confirmed as a member and keeps its data.
        #expect(try cluster.terminate("n4") == 0)
        try cluster.start("n4")
        #expect(cluster.log("n4").contains("the cluster confirms this node is a member"))
        try waitUntil(seconds: 20, "n4 reads after its restart") {
            (try? RESPClient(port: cluster.port("n4")).call("GET", "from-learner")) == .bulk(Array("1".utf8))
        }

        // Four voters: with the old leader gone, three still elect and commit, n4 among them.
        cluster.kill(leader)
        let next = try cluster.waitForLeader(seconds: 30)
        #expect(try RESPClient(port: cluster.port("n4")).call("SET", "after", "1") == .simple("OK"))
        #expect(try RESPClient(port: cluster.port(next)).call("GET", "from-learner") == .bulk(Array("1".utf8)))

    }

    @Test func aRemovedNodeLearnsItOnItsReturnShutsDownAndNeverRaisesTheTerm() throws {
        let cluster = try SkiffCluster(nodes: 3)
        try cluster.startAll()
        let leader = try Self.leaderOtherThanN3(cluster)
        #expect(try RESPClient(port: cluster.port(leader)).call("SET", "before", "1") == .simple("OK"))

        // n3 is away (stopped) while the others remove it, then dies and comes back with its old data.
        cluster.pause("n3")
        let removed = try run("skiff", ["remove", "n3", "--server", "127.0.0.1:\(cluster.port(leader))"])
        #expect(removed.status == 0, "\(removed.output)")
        #expect(try Self.members(cluster, leader).keys.sorted() == ["n1", "n2"])
        let term = try #require(try cluster.status(leader)["term"])
        cluster.kill("n3")
        try cluster.start("n3")
        #expect(try cluster.waitForExit("n3", seconds: 20) == 0)
        #expect(cluster.log("n3").contains("this node was removed from the cluster"))

        // The two that remain never saw a higher term, and go on committing.
        #expect(try cluster.status(leader)["term"] == term)
        #expect(try cluster.status(leader)["role"] == "leader")
        #expect(try RESPClient(port: cluster.port(leader)).call("SET", "after", "1") == .simple("OK"))
    }

    /// A learner slot made with add-learner is taken over by the node that joins with its name and address,
    /// but not once it has acknowledged entries: a node that lost its disk would be credited with them.
    @Test func aLearnerSlotIsTakenOverOnlyByANodeThatNeverHeldEntries() throws {
        let cluster = try SkiffCluster(nodes: 3)
        try cluster.startAll()
        let leader = try cluster.waitForLeader()
        try cluster.addJoiner("n4", through: [leader])
        let peer = try #require(cluster.arguments("n4").drop { $0 != "--peer-addr" }.dropFirst().first)
        let added = try run("skiff", ["add-learner", "n4", peer, "127.0.0.1:\(cluster.port("n4"))", "--server", "127.0.0.1:\(cluster.port(leader))"])
        #expect(added.status == 0, "\(added.output)")
        #expect(try RESPClient(port: cluster.port(leader)).call("SET", "k", "v") == .simple("OK"))
        try cluster.start("n4")
        try waitUntil(seconds: 20, "n4 holds entries") { (UInt64(try Self.members(cluster, leader)["n4"]?["match"] ?? "") ?? 0) > 0 }

        // Its disk is lost; started empty with the same name and address, it is refused with the remedy.
        cluster.kill("n4")
        try FileManager.default.removeItem(atPath: cluster.dataDirectory("n4"))
        let again = try run("skiff", cluster.arguments("n4") + ["--join-timeout", "10"], seconds: 60)
        #expect(again.status != 0)
        #expect(again.output.contains("must be removed"), "\(again.output)")
    }

    @Test func aRemovedNodeConfiguredToStandByComesBackAsALearnerWithoutRaisingTheTerm() throws {
        let cluster = try SkiffCluster(nodes: 3)
        try cluster.startAll()
        let leader = try Self.leaderOtherThanN3(cluster)
        // n3 is away while the others remove it, then comes back with its old data, configured to stand by.
        cluster.pause("n3")
        #expect(try run("skiff", ["remove", "n3", "--server", "127.0.0.1:\(cluster.port(leader))"]).status == 0)
        #expect(try RESPClient(port: cluster.port(leader)).call("SET", "while-away", "1") == .simple("OK"))
        let term = try #require(try cluster.status(leader)["term"])
        cluster.kill("n3")
        try cluster.start("n3", adding: ["--on-removal", "standby"])
        try waitUntil(seconds: 30, "n3 is a learner") { (try? Self.members(cluster, leader)["n3"]?["role"]) == "learner" }
        #expect(cluster.isRunning("n3"))
        #expect(cluster.log("n3").contains("asking to stand by as a learner"))
        try waitUntil(seconds: 20, "n3 follows the log") {
            (try? RESPClient(port: cluster.port("n3")).call("GET", "while-away")) == .bulk(Array("1".utf8))
        }
        #expect(try cluster.status(leader)["term"] == term, "standing by never raises the cluster's term")
        #expect(try cluster.status(leader)["role"] == "leader")

        // A learner again, it can be promoted.
        try waitUntil(seconds: 20, "n3 is promoted") {
            try run("skiff", ["promote", "n3", "--server", "127.0.0.1:\(cluster.port("n2"))"]).status == 0
        }
        #expect(try Self.members(cluster, leader)["n3"]?["role"] == "follower")
    }

    @Test func aLeaderPausedLongerThanTheElectionTimeoutStepsDownWithoutServingAStaleRead() throws {
        let cluster = try SkiffCluster(nodes: 3)
        try cluster.startAll()
        let old = try cluster.waitForLeader()
        let early = try RESPClient(port: cluster.port(old))
        #expect(try early.call("SET", "k", "1") == .simple("OK"))

        cluster.pause(old)
        let pausedAt = Date()
        let others = cluster.names.filter { $0 != old }
        var next = ""
        try waitUntil(seconds: 20, "another leader") {
            next = others.first { (try? cluster.status($0)["role"]) == "leader" } ?? ""
            return !next.isEmpty
        }
        #expect(try RESPClient(port: cluster.port(next)).call("SET", "k", "2") == .simple("OK"))
        // Sent while the old leader is stopped: it reads this the moment it runs again, perhaps before its
        // first tick notices the stall. It must not answer from its old term's state.
        try early.send(raw: RESPClient.encode(["GET", "k"]))
        // Stopped for three election timeouts (500 ms each) at least: a successor can win in little more
        // than one timeout after the old leader's last heartbeat, so its stall could otherwise fall short.
        Thread.sleep(forTimeInterval: max(0, 1.5 - Date().timeIntervalSince(pausedAt)))
        cluster.resume(old)
        let answer = try early.readReply()
        #expect(answer != .bulk(Array("1".utf8)), "the resumed leader served a stale read")
        try waitUntil(seconds: 10, "the old leader logs its stall") { cluster.log(old).contains("stalled for longer than the election timeout") }
        #expect(try cluster.status(old)["role"] != "leader")
        #expect(try RESPClient(port: cluster.port(old)).call("GET", "k") == .bulk(Array("2".utf8)))
    }

    @Test func aDeadPeerCostsAFewLogLinesThatBackOffAndItsReturnIsLoggedOnce() throws {
        let cluster = try SkiffCluster(nodes: 3)
        try cluster.startAll()
        try cluster.waitForLeader()
        cluster.kill("n3")
        let before = cluster.log("n1").split(separator: "\n").count
        Thread.sleep(forTimeInterval: 25)  // reminders at about 10 s, then 30 s, 70 s, ...: one in this window
        let during = cluster.log("n1").split(separator: "\n").dropFirst(before)
        let reminders = during.filter { $0.contains("peer still unreachable") && $0.contains("peer=n3") }
        #expect((1...2).contains(reminders.count), "\(reminders)")
        #expect(during.count <= 12, "a dead peer cost \(during.count) log lines in 25 s:\n\(during.joined(separator: "\n"))")
        try cluster.start("n3")
        try waitUntil(seconds: 20, "n1 logs n3's return") { cluster.log("n1").contains("peer reachable again") }
        let returns = cluster.log("n1").split(separator: "\n").filter { $0.contains("peer reachable again") && $0.contains("peer=n3") }
        #expect(returns.count == 1, "\(returns)")
    }
}
