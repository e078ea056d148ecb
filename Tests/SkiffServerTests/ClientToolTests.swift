import Foundation
import Testing
import SkiffClient

/// Unmodified Redis tools and libraries against Skiff: redis-benchmark, and redis-py in both protocols.
@Suite(.serialized) struct ClientToolTests {
    @Test(arguments: [1, 3])
    func redisBenchmarkRunsUnmodified(nodes: Int) throws {
        let cluster = try SkiffCluster(nodes: nodes)
        try cluster.startAll()
        try cluster.waitForLeader()
        for name in cluster.names {
            let result = try run("redis-benchmark", ["-p", String(cluster.port(name)), "-t", "set,get", "-n", "2000", "-c", "20", "-d", "100", "-q"])
            #expect(result.status == 0)
            let lines = result.output.split(whereSeparator: { $0 == "\r" || $0 == "\n" }).filter { $0.contains("requests per second") }
            #expect(lines.count == 2 && lines[0].hasPrefix("SET") && lines[1].hasPrefix("GET"), "\(result.output.suffix(300))")
        }
        let client = try RESPClient(port: cluster.port(cluster.names[0]))
        #expect(try client.call("DBSIZE") == .integer(1))  // redis-benchmark uses one key unless told otherwise
    }

    /// redis-py with its defaults (RESP3 through HELLO 3) and with protocol=2, against a follower of a
    /// three-node cluster, so that writes are forwarded.
    @Test(arguments: [2, 3])
    func redisPyWorks(protocolVersion: Int) throws {
        let cluster = try SkiffCluster(nodes: 3)
        try cluster.startAll()
        let leader = try cluster.waitForLeader()
        let follower = cluster.names.first { $0 != leader }!
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let script = tests.appendingPathComponent("Scripts/redis_py_check.py").path
        // Tools/dev test installs redis-py here.
        let packages = tests.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".build/python").path
        let result = try run("env", ["PYTHONPATH=\(packages)", "python3", script, String(cluster.port(follower)), String(protocolVersion)])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("all checks passed"), "\(result.output)")
    }
}
