import Foundation
import Testing
import SkiffClient

/// Witness mode with real processes: two nodes and the external store as the third voter.
@Suite(.serialized) struct WitnessTests {
    /// The brainstorm's goal. Ten rounds, each killing (SIGKILL) the node the last round restarted: the other
    /// node, alone with the witness, must take or keep the lead and acknowledge every write; then the dead
    /// one restarts and the next round kills the survivor at once, so the restarted node, which may not have
    /// heard a word from the leader yet, has only the witness to catch up from. At the end both nodes serve
    /// every acknowledged write.
    @Test func twoNodesTakeTurnsDyingAndNoAcknowledgedWriteIsLost() throws {
        let external = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: external) }
        let cluster = try SkiffCluster(nodes: 2, extraArguments: ["--external-log", "dir:\(external)", "--external-witness", "on",
                                                                  "--snapshot-entries", "40"])
        try cluster.startAll()
        try cluster.waitForLeader()
        var acknowledged: [String: String] = [:]
        for round in 0..<10 {
            let victim = cluster.names[round % 2]
            let survivor = cluster.names[(round + 1) % 2]
            cluster.kill(victim)
            let killed = Date()
            let client = try RESPClient(port: cluster.port(survivor), timeoutSeconds: 10)
            for write in 0..<15 {
                let key = "r\(round)-\(write)"
                let value = "\(survivor)-\(round)-\(write)"
                try waitUntil(seconds: 30, "\(survivor) to acknowledge \(key) with \(victim) dead") {
                    try client.call("SET", key, value) == .simple("OK")
                }
                acknowledged[key] = value
                if write == 0 { print("round \(round): \(survivor) acknowledged a write \(Int(Date().timeIntervalSince(killed) * 1000)) ms after \(victim) was killed") }
            }
            try cluster.start(victim)
        }
        try cluster.waitForLeader()
        let keys = acknowledged.keys.sorted()
        for name in cluster.names {
            let reader = try RESPClient(port: cluster.port(name))
            try waitUntil(seconds: 20, "\(name) to serve all \(keys.count) acknowledged writes") {
                try reader.call(["MGET"] + keys) == .array(keys.map { .bulk(Array(acknowledged[$0]!.utf8)) })
            }
        }
        // Every round but perhaps the first needs a new leader, which only the witness's vote can elect. (INFO's
        // count starts again at each restart; the logs span them.)
        let votes = cluster.names.map { name in
            cluster.log(name).split(separator: "\n").filter { $0.contains("asked the witness for its vote") && $0.contains("granted=true") }.count
        }.reduce(0, +)
        #expect(votes >= 9)
    }

    /// A node of a cluster started in witness mode refuses to start without it, and a cluster of other than
    /// two nodes refuses witness mode, each with a message that says what to change.
    @Test func witnessModeIsCheckedAtStart() throws {
        let external = NSTemporaryDirectory() + "skiff-external-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: external) }
        let cluster = try SkiffCluster(nodes: 2, extraArguments: ["--external-log", "dir:\(external)"])
        try cluster.start("n1", adding: ["--external-witness", "on"])
        cluster.kill("n1")
        let switched = try run("skiff", ["serve", "--id", "n1", "--data-dir", cluster.dataDirectory("n1"), "--external-log", "dir:\(external)",
                                         "--initial-cluster", "n1=127.0.0.1:\(try freePort()),n2=127.0.0.1:\(try freePort())",
                                         "--client-addr", "127.0.0.1:\(try freePort())"], seconds: 20)
        #expect(switched.status != 0)
        #expect(switched.output.contains("runs with --external-witness on"))
        let odd = try run("skiff", ["serve", "--external-log", "dir:\(external)", "--external-witness", "on",
                                    "--data-dir", NSTemporaryDirectory() + "skiff-odd-\(UUID().uuidString)"], seconds: 20)
        #expect(odd.status != 0)
        #expect(odd.output.contains("exactly two nodes"))
    }
}
