import Foundation
import Glibc
import SkiffClient
import Testing

/// SKIFF.WATCH and `skiff watch` against real processes.
@Suite(.serialized) struct WatchTests {
    @Test func aWatchStreamsChangesUnderItsPrefixAndRefusesACompactedRevision() throws {
        let cluster = try SkiffCluster(nodes: 1, extraArguments: ["--snapshot-entries", "50"])
        try cluster.start("n1")
        let writer = try RESPClient(port: cluster.port("n1"))
        let watcher = try RESPClient(port: cluster.port("n1"))
        guard case .array(let started) = try watcher.call("SKIFF.WATCH", "a:"), started.count == 3 else {
            Issue.record("SKIFF.WATCH did not start")
            return
        }
        #expect(try writer.call("SET", "a:1", "x") == .simple("OK"))
        #expect(try writer.call("SET", "b:1", "y") == .simple("OK"))  // not under the prefix
        #expect(try writer.call("APPEND", "a:1", "z") == .integer(2))
        #expect(try writer.call("DEL", "a:1", "b:1") == .integer(2))
        let events = try (0..<3).map { _ in try watcher.readReply() }
        #expect(events.map(\.text).map { $0.split(separator: " ").first.map(String.init) ?? "" } == ["set", "set", "del"])
        #expect(events[1].text.hasSuffix("a:1 xz"))
        #expect(try watcher.call("GET", "a:1") == .error("ERR this connection is watching; it takes only PING and QUIT"))
        // A malformed member list is bad input, refused at once, not a member to keep retrying.
        let malformed = try run("skiff", ["watch", "a:", "--servers", "no-port-here"], seconds: 10)
        #expect(malformed.status != 0 && malformed.output.contains("--servers"), "\(malformed.output)")

        // After a restart the node remembers changes only from its snapshot on.
        for number in 0..<120 { _ = try writer.call("SET", "c:\(number)", "v") }
        #expect(try cluster.terminate("n1") == 0)
        try cluster.start("n1")
        let late = try RESPClient(port: cluster.port("n1")).call("SKIFF.WATCH", "a:", "FROM", "1")
        guard case .error(let message) = late else {
            Issue.record("a compacted revision was accepted: \(late)")
            return
        }
        #expect(message.hasPrefix("ERR revision 1 is compacted here; the oldest revision available is "))
    }

    @Test func aWatchResumesOnAnotherMemberAfterAKillWithNoLostOrRepeatedChange() throws {
        let cluster = try SkiffCluster(nodes: 3)
        try cluster.startAll()
        try cluster.waitForLeader()
        let output = cluster.directory + "/watch.out"
        FileManager.default.createFile(atPath: output, contents: nil)
        FileManager.default.createFile(atPath: cluster.directory + "/watch.err", contents: nil)
        let watch = Process()
        watch.executableURL = try executable("skiff")
        watch.arguments = ["watch", "w:", "--from", "1", "--servers",
                           ["n1", "n2", "n3"].map { "127.0.0.1:\(cluster.port($0))" }.joined(separator: ",")]
        watch.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        watch.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: cluster.directory + "/watch.err"))
        try watch.run()
        defer { if watch.isRunning { Glibc.kill(watch.processIdentifier, SIGKILL); watch.waitUntilExit() } }

        // Writes through n2 and n3 (n1 is the member the watch reads from, and it dies half way).
        var acknowledged: [String: String] = [:]
        var every: [String] = []
        for number in 0..<200 {
            if number == 100 { cluster.kill("n1") }
            let key = "w:\(number % 50)", value = "v\(number)"
            try waitUntil(seconds: 20, "SET \(key) is acknowledged") {
                let via = number % 2 == 0 ? "n2" : "n3"
                return (try? RESPClient(port: cluster.port(via), timeoutSeconds: 5).call("SET", key, value)) == .simple("OK")
            }
            acknowledged[key] = value
            every.append("\(key) \(value)")
        }
        try waitUntil(seconds: 30, "the watch prints the last write") {
            ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").contains(" set w:49 v199\n")
        }
        let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let revisions = lines.compactMap { UInt64($0[0]) }
        #expect(revisions.count == lines.count)
        #expect(zip(revisions, revisions.dropFirst()).allSatisfy { $0 < $1 }, "a change was printed twice or out of order")
        var last: [String: String] = [:]
        for line in lines where line.count == 4 && line[1] == "set" { last[line[2]] = line[3] }
        #expect(last == acknowledged, "the watch's last value of each key differs from the acknowledged one")
        let printed = Set(lines.filter { $0.count == 4 }.map { "\($0[2]) \($0[3])" })
        #expect(every.filter { !printed.contains($0) } == [], "acknowledged writes the watch never printed")
        let errors = (try? String(contentsOfFile: cluster.directory + "/watch.err", encoding: .utf8)) ?? ""
        #expect(errors.contains("trying the next member"), "the watch never had to move: \(errors)")
    }
}
