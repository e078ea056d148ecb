#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SkiffKV
import SkiffRESP

/// The text and tables that INFO, CONFIG GET, COMMAND and SKIFF.* answer with.
enum InfoReport {
    /// The Redis version whose commands and replies Skiff follows, for clients that look at it.
    static let redisVersion = "7.2.0"
    static let skiffVersion = "0.1.0"

    static func text(_ status: NodeStatus, sections requested: [String], configuration: NodeConfiguration, clients: ClientCounts) -> String {
        let all = ["server", "clients", "memory", "persistence", "stats", "replication", "keyspace"]
        let sections = requested.isEmpty || requested.contains("all") || requested.contains("everything") || requested.contains("default")
            ? all : all.filter(requested.contains)
        var lines: [String] = []
        for section in sections {
            lines.append("# \(section.prefix(1).uppercased())\(section.dropFirst())")
            switch section {
            case "server":
                lines += ["redis_version:\(redisVersion)", "skiff_version:\(skiffVersion)", "redis_mode:standalone",
                          "process_id:\(getpid())", "tcp_port:\(configuration.clientAddress.port)",
                          "uptime_in_seconds:\(status.uptimeSeconds)", "uptime_in_days:\(status.uptimeSeconds / 86400)",
                          "skiff_node:\(configuration.name)",
                          "skiff_cluster:\(status.clusterName)", "skiff_cluster_uuid:\(status.clusterUUID)"]
                if let external = status.external { lines.append("skiff_external_store:\(external.storeID ?? "")") }
            case "clients":
                lines += ["connected_clients:\(clients.connected)", "blocked_clients:0",
                          "pending_writes:\(status.pendingWrites)", "pending_reads:\(status.pendingReads)"]
            case "memory":
                // The process's resident memory: Skiff does not count its allocations as Redis does.
                let memory = ProcessMemory.current()
                lines += ["used_memory:\(memory.resident)", "used_memory_human:\(humanBytes(memory.resident))",
                          "used_memory_rss:\(memory.resident)", "used_memory_rss_human:\(humanBytes(memory.resident))",
                          "used_memory_peak:\(memory.peak)", "used_memory_peak_human:\(humanBytes(memory.peak))",
                          "maxmemory:0", "maxmemory_policy:noeviction"]
            case "stats":
                lines += ["total_connections_received:\(clients.received)", "total_commands_processed:\(clients.commands)",
                          "expired_keys:0", "evicted_keys:0"]
            case "replication":
                lines += ["role:\(status.role == "leader" ? "master" : "slave")", "raft_role:\(status.role)", "raft_term:\(status.term)",
                          "raft_leader:\(status.leader ?? "")", "raft_commit_index:\(status.commitIndex)",
                          "raft_applied_index:\(status.appliedIndex)", "raft_first_index:\(status.firstIndex)",
                          "raft_last_index:\(status.lastIndex)", "raft_members:\(status.members.count)"]
                for (number, member) in status.members.enumerated() {
                    lines.append("member\(number):name=\(member.name),voter=\(member.isVoter ? 1 : 0),leader=\(member.isLeader ? 1 : 0)"
                                 + ",connected=\(member.connected ? 1 : 0)" + (member.match.map { ",match=\($0)" } ?? "")
                                 + (member.lag.map { ",lag=\($0)" } ?? "") + (member.replication.map { ",state=\($0)" } ?? ""))
                }
            case "persistence":
                let metrics = status.metrics
                let average = metrics.persists == 0 ? 0 : metrics.persistNanoseconds / metrics.persists / 1000
                lines += ["loading:0", "rdb_bgsave_in_progress:\(status.snapshotInProgress ? 1 : 0)", "aof_rewrite_in_progress:0",
                          "wal_fsync:\(configuration.fsync.rawValue)", "wal_writes:\(metrics.persists)",
                          "wal_entries_written:\(metrics.persistedEntries)", "wal_write_avg_us:\(average)",
                          "wal_write_max_us:\(metrics.persistNanosecondsMax / 1000)", "snapshot_index:\(status.snapshotIndex)",
                          "snapshots_taken:\(metrics.snapshotsTaken)", "snapshots_sent:\(metrics.snapshotsSent)",
                          "snapshots_installed:\(metrics.snapshotsInstalled)"]
                if let external = status.external {
                    lines += ["external_log:\(external.store)", "external_mirrored_index:\(external.mirroredIndex.map(String.init) ?? "")",
                              "external_snapshot_index:\(external.snapshotIndex.map(String.init) ?? "")",
                              "external_trimmed_through:\(external.trimmedThrough)",
                              "external_replays:\(external.replays)", "external_adopted_entries:\(external.adoptedEntries)",
                              "external_witness:\(external.witnessVotes == nil ? "off" : "on")",
                              "external_witness_votes_granted:\(external.witnessVotes ?? 0)",
                              "external_error:\(external.lastError ?? "")"]
                }
            default:
                if status.keys > 0 { lines.append("db0:keys=\(status.keys),expires=0,avg_ttl=0") }
            }
            lines.append("")
        }
        return lines.joined(separator: "\r\n")
    }

    /// Bytes as Redis's `*_human` fields write them: `512B`, `1.50K`, `2.25M`, `1.00G`.
    static func humanBytes(_ bytes: Int) -> String {
        let units: [(String, Double)] = [("G", 1_073_741_824), ("M", 1_048_576), ("K", 1024)]
        guard let (unit, size) = units.first(where: { Double(bytes) >= $0.1 }) else { return "\(bytes)B" }
        let hundredths = Int((Double(bytes) / size * 100).rounded())
        return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)\(unit)"
    }

    static func config(_ patterns: [[UInt8]], configuration: NodeConfiguration) -> RESPValue {
        let fields: [(String, String)] = [
            ("appendonly", "yes"), ("appendfsync", configuration.fsync == .always ? "always" : "no"), ("save", ""),
            ("databases", "1"), ("maxmemory", "0"), ("proto-max-bulk-len", String(configuration.limits.bulkBytesMax)),
            ("port", String(configuration.clientAddress.port)), ("bind", configuration.clientAddress.host),
            ("dir", configuration.dataDirectory),
        ]
        let matching = fields.filter { field in patterns.contains { GlobPattern($0).matches(Array(field.0.utf8)) } }
        return .orderedMap(matching.map { (.bulk($0.0), .bulk($0.1)) })
    }

    /// Name, arity (negative: at least), first key, last key, key step, as `COMMAND` reports them.
    static let commandTable: [(String, Int, Int, Int, Int)] = [
        ("ping", -1, 0, 0, 0), ("echo", 2, 0, 0, 0), ("hello", -1, 0, 0, 0), ("auth", -2, 0, 0, 0), ("select", 2, 0, 0, 0),
        ("quit", -1, 0, 0, 0), ("get", 2, 1, 1, 1), ("set", -3, 1, 1, 1), ("setnx", 3, 1, 1, 1), ("getset", 3, 1, 1, 1),
        ("del", -2, 1, -1, 1), ("unlink", -2, 1, -1, 1), ("exists", -2, 1, -1, 1), ("type", 2, 1, 1, 1), ("mget", -2, 1, -1, 1),
        ("mset", -3, 1, -1, 2), ("msetnx", -3, 1, -1, 2), ("incr", 2, 1, 1, 1), ("decr", 2, 1, 1, 1), ("incrby", 3, 1, 1, 1),
        ("decrby", 3, 1, 1, 1), ("incrbyfloat", 3, 1, 1, 1), ("append", 3, 1, 1, 1), ("strlen", 2, 1, 1, 1),
        ("getrange", 4, 1, 1, 1), ("setrange", 4, 1, 1, 1), ("getdel", 2, 1, 1, 1), ("rename", 3, 1, 2, 1),
        ("renamenx", 3, 1, 2, 1), ("substr", 4, 1, 1, 1), ("ttl", 2, 1, 1, 1), ("pttl", 2, 1, 1, 1), ("expiretime", 2, 1, 1, 1),
        ("pexpiretime", 2, 1, 1, 1), ("persist", 2, 1, 1, 1), ("getex", -2, 1, 1, 1), ("touch", -2, 1, -1, 1), ("keys", 2, 0, 0, 0), ("scan", -2, 0, 0, 0), ("randomkey", 1, 0, 0, 0), ("dbsize", 1, 0, 0, 0),
        ("flushdb", -1, 0, 0, 0), ("flushall", -1, 0, 0, 0), ("info", -1, 0, 0, 0), ("command", -1, 0, 0, 0), ("time", 1, 0, 0, 0),
        ("client", -2, 0, 0, 0), ("config", -2, 0, 0, 0), ("readonly", 1, 0, 0, 0), ("readwrite", 1, 0, 0, 0),
        ("multi", 1, 0, 0, 0), ("exec", 1, 0, 0, 0), ("discard", 1, 0, 0, 0), ("watch", -2, 1, -1, 1), ("unwatch", 1, 0, 0, 0),
        ("skiff.status", 1, 0, 0, 0), ("skiff.members", 1, 0, 0, 0),
        ("skiff.join", -6, 0, 0, 0), ("skiff.addlearner", -3, 0, 0, 0), ("skiff.promote", 2, 0, 0, 0), ("skiff.remove", 2, 0, 0, 0),
        ("skiff.transfer", 2, 0, 0, 0), ("skiff.watch", -2, 0, 0, 0), ("skiff.standby", 5, 0, 0, 0), ("skiff.init", -3, 0, 0, 0), ("skiff.adopt", -3, 0, 0, 0),
    ]

    static func commands(_ query: CommandQuery) -> RESPValue {
        func entry(_ row: (String, Int, Int, Int, Int)) -> RESPValue {
            .array([.bulk(row.0), .integer(Int64(row.1)), .array([]), .integer(Int64(row.2)), .integer(Int64(row.3)), .integer(Int64(row.4))])
        }
        switch query {
        case .list: return .array(commandTable.map(entry))
        case .count: return .integer(Int64(commandTable.count))
        case .docs: return .orderedMap([])
        case .info(let names): return .array(names.map { name in commandTable.first { $0.0 == name }.map(entry) ?? .null })
        }
    }

    static func statusReply(_ status: NodeStatus) -> RESPValue {
        .orderedMap([
            (.bulk("node"), .bulk(status.name)), (.bulk("cluster"), .bulk(status.clusterName)), (.bulk("cluster_uuid"), .bulk(status.clusterUUID)),
            (.bulk("role"), .bulk(status.role)), (.bulk("term"), .integer(Int64(status.term))),
            (.bulk("leader"), status.leader.map(RESPValue.bulk) ?? .null),
            (.bulk("commit_index"), .integer(Int64(status.commitIndex))), (.bulk("applied_index"), .integer(Int64(status.appliedIndex))),
            (.bulk("first_index"), .integer(Int64(status.firstIndex))), (.bulk("last_index"), .integer(Int64(status.lastIndex))),
            (.bulk("snapshot_index"), .integer(Int64(status.snapshotIndex))), (.bulk("keys"), .integer(Int64(status.keys))),
        ])
    }

    /// One map per member. Roles as this node sees them: its own as it is (a candidate says so), the leader
    /// as leader, other voters as followers, and learners.
    static func membersReply(_ status: NodeStatus) -> RESPValue {
        .array(status.members.map { member in
            let role = member.name == status.name && status.role != "leader" ? status.role
                : member.isLeader ? "leader" : member.isVoter ? "follower" : "learner"
            return .orderedMap([
                (.bulk("name"), .bulk(member.name)), (.bulk("role"), .bulk(role)),
                (.bulk("peer_address"), member.peerAddress.map(RESPValue.bulk) ?? .null),
                (.bulk("client_address"), member.clientAddress.map(RESPValue.bulk) ?? .null),
                (.bulk("connected"), .integer(member.connected ? 1 : 0)),
                (.bulk("match"), member.match.map { .integer(Int64($0)) } ?? .null),
                (.bulk("lag"), member.lag.map { .integer(Int64($0)) } ?? .null),
                (.bulk("replication"), member.replication.map(RESPValue.bulk) ?? .null),
            ])
        })
    }
}
