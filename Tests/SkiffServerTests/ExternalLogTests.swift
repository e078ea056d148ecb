import Foundation
import Testing
import SkiffClient
import SkiffServer

/// The external log with real processes: a leader's mirrored but uncommitted writes outlive it.
@Suite(.serialized) struct ExternalLogTests {
    /// The brainstorm's scenario. Both followers are out of reach (stopped with SIGSTOP, or killed) while
    /// the leader accepts writes: they reach its WAL and the external log but cannot commit. The leader is
    /// killed, the followers come back, replay its tail from the external log before electing, and every one
    /// of those writes becomes readable. With killed followers the replay is the only way the writes survive.
    @Test(arguments: ["stopped", "killed"])
    func aDeadLeadersMirroredTailIsReplayedBeforeTheNextElection(followers: String) throws {
        let external = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: external) }
        let cluster = try SkiffCluster(nodes: 3, extraArguments: ["--external-log", "dir:\(external)"])
        try cluster.startAll()
        let leader = try cluster.waitForLeader()
        let survivors = cluster.names.filter { $0 != leader }
        #expect(try RESPClient(port: cluster.port(leader)).call("SET", "before", "1") == .simple("OK"))

        for name in survivors { if followers == "stopped" { cluster.pause(name) } else { cluster.kill(name) } }
        let lastBefore = UInt64(try cluster.info(leader)["raft_last_index"] ?? "") ?? 0
        let client = try RESPClient(port: cluster.port(leader))
        let keys = (0..<20).map { "tail\($0)" }
        for key in keys { try client.send(raw: RESPClient.encode(["SET", key, "v-\(key)"])) }
        try waitUntil(seconds: 10, "the leader to mirror the 20 writes") {
            let info = try cluster.info(leader)
            let last = UInt64(info["raft_last_index"] ?? "") ?? 0
            return last >= lastBefore + 20 && UInt64(info["external_mirrored_index"] ?? "") == last
        }
        let committedThen = UInt64(try cluster.info(leader)["raft_commit_index"] ?? "") ?? 0
        #expect(committedThen <= lastBefore)  // nothing of the tail could commit without a follower

        cluster.kill(leader)
        for name in survivors { if followers == "stopped" { cluster.resume(name) } else { try cluster.start(name) } }
        let successor = try cluster.waitForLeader()
        #expect(survivors.contains(successor))
        for name in survivors {
            let reader = try RESPClient(port: cluster.port(name))
            try waitUntil(seconds: 10, "\(name) to serve every write of the dead leader's tail") {
                try reader.call(["MGET", "before"] + keys) == .array([.bulk(Array("1".utf8))] + keys.map { .bulk(Array("v-\($0)".utf8)) })
            }
        }
        let adopted = try survivors.map { Int(try cluster.info($0)["external_adopted_entries"] ?? "") ?? 0 }.reduce(0, +)
        if followers == "killed" { #expect(adopted >= 20) }
        #expect(try cluster.info(successor)["external_error"] == "")
    }
}

extension ExternalLogTests {
    /// While the store is unreachable the leader commits nothing new: a write waits, INFO says why, and
    /// reads keep working. Once the store is back, the waiting write commits and is answered.
    @Test func writesWaitWhileTheStoreIsGoneAndCompleteWhenItIsBack() throws {
        let external = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: external) }
        let cluster = try SkiffCluster(nodes: 3, extraArguments: ["--external-log", "dir:\(external)"])
        try cluster.startAll()
        try cluster.reportingLogs { try writesWaitWhileTheStoreIsGone(cluster, external: external) }
    }

    private func writesWaitWhileTheStoreIsGone(_ cluster: SkiffCluster, external: String) throws {
        let leader = try cluster.waitForLeader()
        let client = try RESPClient(port: cluster.port(leader))
        #expect(try client.call("SET", "before", "1") == .simple("OK"))

        try FileManager.default.moveItem(atPath: external + "/log", toPath: external + "/log.away")
        let writer = try RESPClient(port: cluster.port(leader), timeoutSeconds: 20)
        try writer.send(raw: RESPClient.encode(["SET", "during", "2"]))
        try waitUntil(seconds: 10, "the leader to report the store's failure") { try cluster.info(leader)["external_error"]?.isEmpty == false }
        usleep(500_000)
        #expect(try client.call("GET", "during") == .bulk(nil))  // not committed: the store does not hold it
        #expect(try client.call("GET", "before") == .bulk(Array("1".utf8)))  // reads go on
        for name in cluster.names where name != leader {
            #expect(try RESPClient(port: cluster.port(name)).call("GET", "before") == .bulk(Array("1".utf8)))
        }

        try FileManager.default.moveItem(atPath: external + "/log.away", toPath: external + "/log")
        #expect(try writer.readReply() == .simple("OK"))
        #expect(try client.call("GET", "during") == .bulk(Array("2".utf8)))
        try waitUntil(seconds: 10, "the error to clear") { try cluster.info(leader)["external_error"] == "" }
    }
}

extension ExternalLogTests {
    /// An upload that a crashed leader left half written in the store's `tmp/` is removed by the next
    /// leader's housekeeping once nothing has touched it for a quarter of an hour; a recent one stays.
    @Test func theLeaderRemovesUploadsThatCrashedWritersLeftInTheStore() throws {
        let external = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: external) }
        try FileManager.default.createDirectory(atPath: external + "/tmp", withIntermediateDirectories: true)
        let stale = external + "/tmp/00000000000000000040-00000000000000000003.snap.0123abcd"
        let recent = external + "/tmp/00000000000000000090-00000000000000000004.snap.4567cdef"
        #expect(FileManager.default.createFile(atPath: stale, contents: Data(repeating: 7, count: 4096)))
        #expect(FileManager.default.createFile(atPath: recent, contents: Data(repeating: 7, count: 4096)))
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -3600)], ofItemAtPath: stale)
        let cluster = try SkiffCluster(nodes: 1, extraArguments: ["--external-log", "dir:\(external)"])
        try cluster.startAll()
        try cluster.reportingLogs {
            #expect(try RESPClient(port: cluster.port("n1")).call("SET", "k", "v") == .simple("OK"))
            try waitUntil(seconds: 20, "the leader reports that it removed the stale upload") {
                cluster.log("n1").contains("removed what crashed writers had left half written in the external store")
            }
            #expect(!FileManager.default.fileExists(atPath: stale))
            #expect(FileManager.default.fileExists(atPath: recent))
        }
    }

    /// A store that stops answering (each sync of its files made to hang by the power-loss library, as an
    /// NFS hard mount whose server is gone) does not keep a node from stopping: SIGTERM ends it, with a
    /// warning, though a mirror write is under way, and it starts again with what it had acknowledged.
    @Test func aNodeStopsOnSIGTERMThoughItsStoreHangs() throws {
        let external = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
        let faults = NSTemporaryDirectory() + "skiff-faults-\(UUID().uuidString)"
        defer { for path in [external, faults] { try? FileManager.default.removeItem(atPath: path) } }
        try FileManager.default.createDirectory(atPath: faults, withIntermediateDirectories: true)
        let shim = try executable("skiff").deletingLastPathComponent().appendingPathComponent("libSkiffPowerLossShim.so").path
        try #require(FileManager.default.fileExists(atPath: shim), "the power-loss library is built with the package")
        let cluster = try SkiffCluster(nodes: 1, extraArguments: ["--external-log", "dir:\(external)"])
        cluster.environment = ["LD_PRELOAD": shim, "SKIFF_DISK_FAULTS": faults, "SKIFF_SLOW_STORE_PATH": external]
        try cluster.startAll()
        try cluster.reportingLogs {
            #expect(try RESPClient(port: cluster.port("n1")).call("SET", "before", "1") == .simple("OK"))
            let lastBefore = UInt64(try cluster.info("n1")["raft_last_index"] ?? "") ?? 0
            try "600000\n".write(toFile: faults + "/store-delay-ms", atomically: true, encoding: .utf8)  // ten minutes
            let writer = try RESPClient(port: cluster.port("n1"), timeoutSeconds: 60)
            try writer.send(raw: RESPClient.encode(["SET", "during", "2"]))
            try waitUntil(seconds: 10, "the write to reach the log, and its mirror write the store") {
                UInt64(try cluster.info("n1")["raft_last_index"] ?? "") ?? 0 > lastBefore
            }
            #expect(try cluster.terminate("n1", seconds: 60) == 0)
            #expect(cluster.log("n1").contains("the external store did not answer; stopping without waiting for its calls under way"))
            try FileManager.default.removeItem(atPath: faults + "/store-delay-ms")
            try cluster.start("n1")
            #expect(try RESPClient(port: cluster.port("n1")).call("GET", "before") == .bulk(Array("1".utf8)))
        }
    }

    /// A node restarted while its store hangs (the store's owner record is a FIFO, so opening it blocks in
    /// the kernel, as a read on a hard NFS mount whose server is gone does) stops on SIGTERM all the same,
    /// and starts once the store answers again.
    @Test func aNodeWaitingForAHungStoreStopsOnSIGTERM() throws {
        let external = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: external) }
        let cluster = try SkiffCluster(nodes: 1, extraArguments: ["--external-log", "dir:\(external)"])
        try cluster.startAll()
        try cluster.reportingLogs {
            #expect(try RESPClient(port: cluster.port("n1")).call("SET", "before", "1") == .simple("OK"))
            #expect(try cluster.terminate("n1") == 0)
            let owner = external + "/owner"
            try FileManager.default.moveItem(atPath: owner, toPath: owner + ".real")
            #expect(mkfifo(owner, 0o644) == 0)
            try cluster.start("n1", waitingForClients: false)
            try waitUntil(seconds: 20, "n1 to hang opening the store's owner record") { cluster.kernelWaits("n1").contains("wait_for_partner") }
            #expect(try cluster.terminate("n1", seconds: 30) == 1)
            #expect(cluster.log("n1").contains("stopped by a signal before the node had started"))
            try FileManager.default.removeItem(atPath: owner)
            try FileManager.default.moveItem(atPath: owner + ".real", toPath: owner)
            try cluster.start("n1")
            #expect(try RESPClient(port: cluster.port("n1")).call("GET", "before") == .bulk(Array("1".utf8)))
        }
    }

    /// Sends `SET key value` for every pair, pipelined, and returns the pairs acknowledged with OK.
    static func setAll(_ pairs: [(String, String)], port: Int) throws -> [String: String] {
        let client = try RESPClient(port: port)
        for (key, value) in pairs { try client.send(raw: RESPClient.encode(["SET", key, value])) }
        var acknowledged: [String: String] = [:]
        for (key, value) in pairs where try client.readReply() == .simple("OK") { acknowledged[key] = value }
        return acknowledged
    }

    /// Kills every node, removes its data directory, starts it with --restore-from-external (and `adding`),
    /// and waits until every node serves every acknowledged write. Returns the new leader.
    static func wipeAndRebuild(_ cluster: SkiffCluster, adding: [String], expecting acknowledged: [String: String]) throws -> String {
        for name in cluster.names {
            cluster.kill(name)
            try FileManager.default.removeItem(atPath: cluster.dataDirectory(name))
        }
        for name in cluster.names { try cluster.start(name, adding: adding + ["--restore-from-external"]) }
        let leader = try cluster.waitForLeader()
        let keys = acknowledged.keys.sorted()
        for name in cluster.names {
            let reader = try RESPClient(port: cluster.port(name))
            try waitUntil(seconds: 20, "\(name) to serve every acknowledged write after the rebuild") {
                try reader.call(["MGET"] + keys) == .array(keys.map { .bulk(Array(acknowledged[$0]!.utf8)) })
            }
        }
        // Each rebuilt node remembers the store it was rebuilt from.
        let storeID = try #require(try cluster.info(leader)["skiff_external_store"])
        for name in cluster.names { #expect(try ExternalStoreMarker.load(directory: cluster.dataDirectory(name))?.store == storeID) }
        return leader
    }

    /// The leader keeps its newest snapshot in the store and trims the external log behind it, but never past
    /// what a stopped voter lacks. Then every node's data directory is wiped: started with
    /// --restore-from-external, the nodes rebuild from the store alone and serve every acknowledged write.
    @Test func theStoreKeepsSnapshotsTrimsBehindThemAndRebuildsAWipedCluster() throws {
        let external = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: external) }
        let cluster = try SkiffCluster(nodes: 3, extraArguments: ["--external-log", "dir:\(external)", "--snapshot-entries", "50"])
        try cluster.startAll()
        let leader = try cluster.waitForLeader()
        func field(_ name: String, _ key: String) throws -> UInt64 { UInt64(try cluster.info(name)[key] ?? "") ?? 0 }

        var acknowledged = try Self.setAll((0..<300).map { ("a\($0)", "v\($0)") }, port: cluster.port(leader))
        #expect(acknowledged.count == 300)
        try waitUntil(seconds: 20, "the leader to upload a snapshot and trim behind it") {
            try field(leader, "external_trimmed_through") >= 200 && field(leader, "external_snapshot_index") >= 200
        }
        // Only the leader mirrors, so only it reports how far; a follower leaves the field empty.
        #expect(try field(leader, "external_mirrored_index") >= 300)
        #expect(try cluster.names.filter { $0 != leader }.allSatisfy { try cluster.info($0)["external_mirrored_index"] == "" })
        // The slots behind the newest checkpoint are gone.
        let checkpoint = try FileManager.default.contentsOfDirectory(atPath: external + "/checkpoint").compactMap { UInt64($0) }.max() ?? 0
        let slots = try FileManager.default.contentsOfDirectory(atPath: external + "/log").compactMap { UInt64($0) }
        #expect(checkpoint > 0 && slots.allSatisfy { $0 >= checkpoint })

        let lagging = cluster.names.first { $0 != leader }!
        cluster.pause(lagging)
        let held = try field(leader, "raft_commit_index")
        acknowledged.merge(try Self.setAll((0..<200).map { ("b\($0)", "w\($0)") }, port: cluster.port(leader))) { $1 }
        try waitUntil(seconds: 20, "a snapshot past what the stopped voter holds to reach the store") {
            try field(leader, "external_snapshot_index") > held + 100
        }
        #expect(try field(leader, "external_trimmed_through") <= held)
        cluster.resume(lagging)
        try waitUntil(seconds: 20, "the trim to move on once the voter caught up") { try field(leader, "external_trimmed_through") > held }
        #expect(acknowledged.count == 500)

        let successor = try Self.wipeAndRebuild(cluster, adding: [], expecting: acknowledged)
        #expect(cluster.log(successor).contains("rebuilt the data directory from the external store"))
        #expect(try RESPClient(port: cluster.port(successor)).call("SET", "after", "rebuild") == .simple("OK"))
    }

    /// A store belongs to the cluster that used it first. Another cluster, a node joining another cluster,
    /// or the same node started again with an empty disk but no rebuild (a new cluster), is refused before it
    /// writes to the store or records anything; a node rebuilt from the store takes the store's cluster,
    /// even a one-node cluster's random UUID, unless it is configured for a cluster of another name.
    @Test func aStoreBelongsToOneClusterAndARebuiltNodeTakesItsIdentity() throws {
        let external = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: external) }
        let cluster = try SkiffCluster(nodes: 1, extraArguments: ["--external-log", "dir:\(external)"])
        try cluster.startAll()
        _ = try cluster.waitForLeader()
        let uuid = try #require(try cluster.info("n1")["skiff_cluster_uuid"])
        let acknowledged = try Self.setAll((0..<50).map { ("k\($0)", "v\($0)") }, port: cluster.port("n1"))
        #expect(acknowledged.count == 50)
        let owner = "belongs to cluster skiff (\(uuid))"

        let other = try SkiffCluster(nodes: 1, extraArguments: ["--external-log", "dir:\(external)"])
        let refused = try run("skiff", other.arguments("n1"), seconds: 60)
        #expect(refused.status != 0 && refused.output.contains(owner), "\(refused.output)")
        #expect(!FileManager.default.fileExists(atPath: other.dataDirectory("n1") + "/cluster"))

        // A node joining another cluster with this store is refused before it asks to join.
        let joined = try SkiffCluster(nodes: 1)
        try joined.startAll()
        _ = try joined.waitForLeader()
        let joiner = try run("skiff", ["serve", "--id", "j1", "--data-dir", joined.directory + "/j1", "--client-addr", "127.0.0.1:\(try freePort())",
                                       "--peer-addr", "127.0.0.1:\(try freePort())", "--join", "127.0.0.1:\(joined.port("n1"))",
                                       "--external-log", "dir:\(external)"], seconds: 60)
        #expect(joiner.status != 0 && joiner.output.contains("a node joins with its cluster's store"), "\(joiner.output)")
        #expect(try MembershipTests.members(joined, "n1").keys.sorted() == ["n1"])

        cluster.kill("n1")
        try FileManager.default.removeItem(atPath: cluster.dataDirectory("n1"))
        let empty = try run("skiff", cluster.arguments("n1"), seconds: 60)
        #expect(empty.status != 0 && empty.output.contains(owner), "\(empty.output)")
        // Rebuilt for a cluster of another name, it is refused before anything is downloaded.
        let renamed = try run("skiff", cluster.arguments("n1") + ["--restore-from-external", "--cluster-name", "other"], seconds: 60)
        #expect(renamed.status != 0 && renamed.output.contains("configured for cluster other"), "\(renamed.output)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: cluster.dataDirectory("n1") + "/wal")) ?? []).isEmpty)

        try cluster.start("n1", adding: ["--restore-from-external"])
        try cluster.reportingLogs {
            #expect(try cluster.info("n1")["skiff_cluster_uuid"] == uuid)
            let keys = acknowledged.keys.sorted()
            try waitUntil(seconds: 20, "n1 to serve every acknowledged write after the rebuild") {
                try RESPClient(port: cluster.port("n1")).call(["MGET"] + keys) == .array(keys.map { .bulk(Array(acknowledged[$0]!.utf8)) })
            }
            #expect(try RESPClient(port: cluster.port("n1")).call("SET", "after", "rebuild") == .simple("OK"))
        }
        let dump = try run("skiff-wal", ["external", external])
        #expect(dump.output.hasPrefix("owner: cluster skiff (\(uuid)), store "), "\(dump.output)")
    }

    /// A node remembers the store it used. Restarted while that store is away (an outage) or is an empty
    /// directory (a share not mounted yet), it waits for it and creates nothing in its place, and so does a
    /// node joining the cluster; it refuses a store of the same cluster with another id. Only once the
    /// operator removes the node's record of its store does it start a new one.
    @Test func aNodeUsesOnlyTheStoreItUsedBeforeAndWaitsWhileItIsAway() throws {
        let external = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
        defer { for path in [external, external + ".away"] { try? FileManager.default.removeItem(atPath: path) } }
        let cluster = try SkiffCluster(nodes: 1, extraArguments: ["--external-log", "dir:\(external)"])
        try cluster.startAll()
        _ = try cluster.waitForLeader()
        let acknowledged = try Self.setAll((0..<20).map { ("k\($0)", "v\($0)") }, port: cluster.port("n1"))
        let uuid = try #require(try cluster.info("n1")["skiff_cluster_uuid"])
        let storeID = try #require(try cluster.info("n1")["skiff_external_store"])
        #expect(try String(contentsOfFile: external + "/owner", encoding: .utf8).hasSuffix("store \(storeID)\n"))
        let marker = cluster.dataDirectory("n1") + "/external-store"
        #expect(try String(contentsOfFile: marker, encoding: .utf8) == "skiff-external-store-used 1\nstore \(storeID)\nlocation dir:\(external)\n")

        // Away at the restart: the node waits, and starts once the store is back.
        cluster.kill("n1")
        try FileManager.default.moveItem(atPath: external, toPath: external + ".away")
        try cluster.start("n1", waitingForClients: false)
        try waitUntil(seconds: 20, "n1 to say it waits for the store") { cluster.log("n1").contains("waiting for the external store") }
        Thread.sleep(forTimeInterval: 1)
        #expect(cluster.isRunning("n1") && !FileManager.default.fileExists(atPath: external), "\(cluster.log("n1"))")
        try FileManager.default.moveItem(atPath: external + ".away", toPath: external)
        try cluster.reportingLogs {
            let keys = acknowledged.keys.sorted()
            try waitUntil(seconds: 30, "n1 to serve every write once its store is back") {
                (try? RESPClient(port: cluster.port("n1")).call(["MGET"] + keys)) == .array(keys.map { .bulk(Array(acknowledged[$0]!.utf8)) })
            }
        }
        #expect(try cluster.info("n1")["skiff_external_store"] == storeID)

        // A node joining the cluster with an empty directory for its store (a share not mounted) waits before
        // it joins, creates nothing there, and a signal ends its wait.
        let mountPoint = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: mountPoint) }
        let joinerLog = cluster.directory + "/j1.log"
        FileManager.default.createFile(atPath: joinerLog, contents: nil)
        let joiner = Process()
        joiner.executableURL = try executable("skiff")
        joiner.arguments = ["serve", "--id", "j1", "--data-dir", cluster.directory + "/j1", "--client-addr", "127.0.0.1:\(try freePort())",
                            "--peer-addr", "127.0.0.1:\(try freePort())", "--join", "127.0.0.1:\(cluster.port("n1"))", "--external-log", "dir:\(mountPoint)"]
        joiner.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: joinerLog))
        joiner.standardError = joiner.standardOutput
        try joiner.run()
        defer { if joiner.isRunning { kill(joiner.processIdentifier, SIGKILL) } }
        let waiting = "holds no store record, but the cluster of 127.0.0.1:\(cluster.port("n1")) (\(uuid)) used store \(storeID)"
        try waitUntil(seconds: 20, "the joiner to wait for its store") { ((try? String(contentsOfFile: joinerLog, encoding: .utf8)) ?? "").contains(waiting) }
        #expect(try MembershipTests.members(cluster, "n1").keys.sorted() == ["n1"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: mountPoint).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: cluster.directory + "/j1/cluster"))
        kill(joiner.processIdentifier, SIGTERM)
        try waitUntil(seconds: 10, "the waiting joiner to stop on SIGTERM") { !joiner.isRunning }

        // The store replaced by an empty directory: the node waits, creating nothing. Another store of the same
        // cluster appears there: the node refuses it.
        cluster.kill("n1")
        try FileManager.default.moveItem(atPath: external, toPath: external + ".away")
        try FileManager.default.createDirectory(atPath: external, withIntermediateDirectories: false)
        try cluster.start("n1", waitingForClients: false)
        try waitUntil(seconds: 20, "n1 to wait for its store") { cluster.log("n1").contains("holds no store record, but this node (at dir:\(external)") }
        #expect(cluster.isRunning("n1"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: external).isEmpty)
        let otherID = "00000000-0000-4000-8000-000000000001"
        try Data("skiff-external-store 1\ncluster skiff\nuuid \(uuid)\nstore \(otherID)\n".utf8).write(to: URL(fileURLWithPath: external + "/owner"))
        #expect(try cluster.waitForExit("n1", seconds: 30) != 0)
        #expect(cluster.log("n1").contains("is store \(otherID) of cluster skiff (\(uuid)), but this node"), "\(cluster.log("n1"))")

        // The operator starts a new store on purpose: without the record, the node claims the empty one.
        try FileManager.default.removeItem(atPath: external + "/owner")
        try FileManager.default.removeItem(atPath: marker)
        try cluster.start("n1")
        try cluster.reportingLogs {
            try waitUntil(seconds: 20, "n1 to lead with a new store") { (try? cluster.info("n1")["raft_role"]) == "leader" }
            let newID = try #require(try cluster.info("n1")["skiff_external_store"])
            #expect(newID != storeID && newID.count == 36)
            #expect(try RESPClient(port: cluster.port("n1")).call("SET", "after", "new-store") == .simple("OK"))
            #expect(try RESPClient(port: cluster.port("n1")).call("GET", "k7") == .bulk(Array("v7".utf8)))
            // `skiff restore` leaves a data directory that remembers the store it came from.
            let rebuilt = cluster.directory + "/rebuilt"
            let restore = try run("skiff", ["restore", "--external-log", "dir:\(external)", "--data-dir", rebuilt])
            #expect(restore.status == 0 && restore.output.contains("restored \(rebuilt)"), "\(restore.output)")
            let remembered = try #require(try ExternalStoreMarker.load(directory: rebuilt))
            #expect(remembered.store == newID && remembered.location == "dir:\(external)")
        }
    }

    /// A node that lost its disk is removed, then rebuilt from the store (`--restore-from-external`) and
    /// joins under a fresh, random id: its old vote went with its disk, so its old id never votes again.
    @Test func aNodeRebuiltFromTheStoreJoinsUnderAFreshID() throws {
        let external = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: external) }
        let cluster = try SkiffCluster(nodes: 3, extraArguments: ["--external-log", "dir:\(external)", "--snapshot-entries", "50"])
        try cluster.startAll()
        let leader = try MembershipTests.leaderOtherThanN3(cluster)
        let acknowledged = try Self.setAll((0..<200).map { ("a\($0)", "v\($0)") }, port: cluster.port(leader))
        #expect(acknowledged.count == 200)
        try waitUntil(seconds: 20, "a snapshot to reach the store") { UInt64(try cluster.info(leader)["external_snapshot_index"] ?? "") ?? 0 >= 100 }

        // n3's disk is lost; the operator removes it, then brings the machine back as n4, rebuilt from the store.
        cluster.kill("n3")
        try FileManager.default.removeItem(atPath: cluster.dataDirectory("n3"))
        #expect(try run("skiff", ["remove", "n3", "--server", "127.0.0.1:\(cluster.port(leader))"]).status == 0)
        // A refused join (the name is a member's, at another address) leaves no rebuilt data behind that a
        // later start could run under the old id.
        let stray = cluster.directory + "/stray"
        let refused = try run("skiff", ["serve", "--id", "n1", "--data-dir", stray, "--client-addr", "127.0.0.1:\(try freePort())",
                                        "--peer-addr", "127.0.0.1:\(try freePort())", "--external-log", "dir:\(external)",
                                        "--restore-from-external", "--join", "127.0.0.1:\(cluster.port(leader))", "--join-timeout", "10"], seconds: 60)
        #expect(refused.status != 0 && refused.output.contains("JOIN-REFUSED"), "\(refused.output)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: stray + "/wal")) ?? []).isEmpty)

        try cluster.addJoiner("n4", through: [leader])
        try cluster.start("n4", adding: ["--restore-from-external", "--join-as", "voter"])
        #expect(cluster.log("n4").contains("rebuilt the data directory from the external store"))
        let identity = try #require(try ClusterIdentity.load(directory: cluster.dataDirectory("n4")))
        let fresh = try #require(identity.nodeID, "a node rebuilt from the store must join under an id of its own")
        #expect(fresh != ClusterMember.id(of: "n4"))
        #expect(try ExternalStoreMarker.load(directory: cluster.dataDirectory("n4"))?.store == cluster.info(leader)["skiff_external_store"])
        let keys = acknowledged.keys.sorted()
        try waitUntil(seconds: 30, "n4 to serve every acknowledged write") {
            try RESPClient(port: cluster.port("n4")).call(["MGET"] + keys) == .array(keys.map { .bulk(Array(acknowledged[$0]!.utf8)) })
        }
        try waitUntil(seconds: 30, "n4 to be promoted") { (try? MembershipTests.members(cluster, leader)["n4"]?["role"]) == "follower" }
    }

    /// A cluster that ran without a store, long enough to compact its logs, is restarted with one: the new
    /// leader's log starts after its snapshot, so the external log continues from that snapshot (a snapshot
    /// record) once it is uploaded, and writes are acknowledged again. The store then holds everything: a
    /// cluster whose disks are all wiped is rebuilt from it with every acknowledged write.
    @Test func aStoreAddedAfterTheLogWasCompactedContinuesFromTheLeadersSnapshot() throws {
        let external = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: external) }
        let cluster = try SkiffCluster(nodes: 3, extraArguments: ["--snapshot-entries", "50"])
        try cluster.startAll()
        var leader = try cluster.waitForLeader()
        var acknowledged = try Self.setAll((0..<150).map { ("a\($0)", "v\($0)") }, port: cluster.port(leader))
        try waitUntil(seconds: 20, "every node to take a snapshot") {
            try cluster.names.allSatisfy { UInt64(try cluster.info($0)["snapshot_index"] ?? "") ?? 0 >= 100 }
        }
        for name in cluster.names { #expect(try cluster.terminate(name) == 0) }

        let store = ["--external-log", "dir:\(external)"]
        for name in cluster.names { try cluster.start(name, adding: store) }
        leader = try cluster.waitForLeader()
        acknowledged.merge(try Self.setAll((0..<20).map { ("b\($0)", "w\($0)") }, port: cluster.port(leader))) { $1 }
        #expect(acknowledged.count == 170)
        #expect(cluster.log(leader).contains("attached to an external log with no entry in common with this leader's log"))
        #expect(try cluster.info(leader)["external_error"] == "")

        _ = try Self.wipeAndRebuild(cluster, adding: store, expecting: acknowledged)
    }
}
