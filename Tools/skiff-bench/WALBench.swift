import ArgumentParser
import Foundation
import Logging
import SkiffRaft
import SkiffStorage

struct WALBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal",
        abstract: "WAL append throughput with group commit, recovery speed, and lz4 ratios.",
        discussion: "Writes under --directory (default: a new directory under /tmp) and removes what it wrote.")

    @Option(help: "Where to write; should be on the disk you want to measure.") var directory: String?
    @Option(help: "Seconds per append case.") var seconds = 3.0
    @Option(help: "Size of the WAL whose recovery is timed, in MiB.") var recoveryMib = 1024
    @Option(help: "fsync mode for the append cases: always, or never (UNSAFE, for comparison only).")
    var fsync = "always"
    @Option(help: "Entry sizes in bytes, comma-separated.") var sizes = "100,4096"
    @Option(help: "Concurrent appender counts, comma-separated; the first is the baseline.") var appenders = "1,16,256"
    @Flag(help: "Only the append cases: skip the machine limits, recovery and lz4 figures.") var appendsOnly = false

    func run() async throws {
        guard let mode = WALOptions.FsyncMode(rawValue: fsync) else { throw ValidationError("--fsync must be always or never") }
        let root = directory ?? NSTemporaryDirectory() + "/skiff-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        print("skiff-bench wal: \(ProcessInfo.processInfo.processorCount) cores, directory \(root), fsync \(mode.rawValue)\(mode == .never ? " (UNSAFE)" : "")")

        let sizeList = sizes.split(separator: ",").compactMap { Int($0) }
        let appenderList = appenders.split(separator: ",").compactMap { Int($0) }
        guard !sizeList.isEmpty, !appenderList.isEmpty, (sizeList + appenderList).allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--sizes and --appenders take positive whole numbers, comma-separated")
        }
        var sync = (perSecond: Double.nan, p50Micros: Double.nan)
        var sequential = Double.nan
        if !appendsOnly {
            sync = try DiskLimits.appendSyncRate(directory: root, seconds: seconds)
            sequential = try DiskLimits.sequentialWriteBandwidth(directory: root, bytes: 1 << 30)
            let megabyteSync = try DiskLimits.appendSyncRate(directory: root, seconds: seconds, blockBytes: 1 << 20)
            print("\nmachine limits (same run):")
            print("  4 KiB append + fdatasync: \(formatRate(sync.perSecond))/s, p50 \(Int(sync.p50Micros)) us")
            print("  sequential write, 1 MiB blocks, one fdatasync at the end: \(megabytes(sequential)) MB/s")
            print("  1 MiB append + fdatasync: \(megabytes(megabyteSync.perSecond * 1048576)) MB/s, p50 \(Int(megabyteSync.p50Micros)) us")
        }

        print("\nappends, fsync \(mode.rawValue), random (incompressible) payloads, \(seconds) s each:")
        var rows = [["entry", "appenders", "entries/s", "per fsync", "logical MB/s", "on-disk MB/s", "x baseline", "x fsync rate", "disk/seq"]]
        for size in sizeList {
            var single = 0.0
            for appenders in appenderList {
                let result = try await appendCase(root: root, size: size, appenders: appenders, mode: mode)
                if appenders == appenderList[0] { single = result.entriesPerSecond }
                rows.append([
                    size % 1024 == 0 ? "\(size / 1024) KiB" : "\(size) B", String(appenders), formatRate(result.entriesPerSecond),
                    String(format: "%.1f", result.entriesPerSync),
                    megabytes(result.logicalBytesPerSecond), megabytes(result.diskBytesPerSecond),
                    String(format: "%.1f", result.entriesPerSecond / single),
                    String(format: "%.2f", result.entriesPerSecond / sync.perSecond),
                    String(format: "%.0f%%", 100 * result.diskBytesPerSecond / sequential),
                ])
            }
        }
        printTable(rows)
        guard !appendsOnly else { return }

        print("\nrecovery (WAL.open verifies every frame), \(recoveryMib) MiB WAL of 4 KiB entries:")
        try await recoveryCase(root: root)

        print("\nlz4 on 64 KiB frame bodies:")
        for (name, body) in [("compressible (repeated text)", Array(String(repeating: "user:1234 balance=100;", count: 3000).utf8.prefix(65536))),
                             ("random", noise(65536, seed: 9))] {
            let ratio = try await compressionRatio(root: root, payload: body)
            print("  \(name): raw/stored = \(String(format: "%.2f", ratio))")
        }
        print("\npeak resident memory: \(megabytes(Double(peakResidentBytes()))) MB")
    }

    struct AppendResult {
        var entriesPerSecond: Double
        /// Entries per fdatasync: how well the group commit gathers.
        var entriesPerSync: Double
        var logicalBytesPerSecond: Double
        var diskBytesPerSecond: Double
    }

    private func appendCase(root: String, size: Int, appenders: Int, mode: WALOptions.FsyncMode) async throws -> AppendResult {
        let directory = root + "/append-\(size)-\(appenders)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = WALOptions()
        options.fsync = mode
        let (wal, _) = try WAL.open(directory: directory, options: options, logger: .init(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
        // Distinct bytes for every entry of a group, so lz4 finds nothing to share between them.
        let pool = max(appenders, 64)
        let payloads = (0..<pool).map { noise(size, seed: UInt64($0)) }
        let deadline = now() + seconds
        let start = now()
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for appender in 0..<appenders {
                group.addTask {
                    var count = 0
                    while now() < deadline && count < 50_000_000 {
                        _ = try await wal.append(payload: payloads[(appender + count * appenders) % pool], term: Term(1))
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = now() - start
        let syncs = wal.syncCount
        await wal.close()
        let inspection = try WALInspection.inspect(directory: directory)
        let disk = inspection.segments.reduce(Int64(0)) { $0 + $1.validBytes }
        return AppendResult(entriesPerSecond: Double(total) / elapsed, entriesPerSync: Double(total) / Double(max(syncs, 1)),
                            logicalBytesPerSecond: Double(total * size) / elapsed,
                            diskBytesPerSecond: Double(disk) / elapsed)
    }

    private func recoveryCase(root: String) async throws {
        let directory = root + "/recovery"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = WALOptions()
        options.fsync = .never  // building the log is not what is measured
        let quiet = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
        let (wal, _) = try WAL.open(directory: directory, options: options, logger: quiet)
        let payloads = (0..<256).map { noise(4096, seed: UInt64(100 + $0)) }
        let count = (recoveryMib << 20) / 4096
        var next: UInt64 = 1
        while next <= UInt64(count) {
            let batch = (0..<256).map { Entry(index: LogIndex(next + UInt64($0)), term: Term(1), payload: payloads[$0]) }
            try await wal.append(batch)
            next += 256
        }
        await wal.close()
        let logical = Double((next - 1) * 4096)
        for cache in ["page cache warm", "page cache dropped"] {
            if cache == "page cache dropped" {
                Foundation.sync()
                guard (try? "3".write(toFile: "/proc/sys/vm/drop_caches", atomically: false, encoding: .utf8)) != nil else {
                    print("  (cannot drop the page cache without root: cold figure skipped)")
                    break
                }
            }
            let start = now()
            let (reopened, report) = try WAL.open(directory: directory, options: WALOptions(), logger: quiet)
            let elapsed = now() - start
            await reopened.close()
            let disk = Double(report.segments.reduce(Int64(0)) { $0 + $1.validBytes })
            print("  \(report.segments.count) segments, \(next - 1) entries: \(String(format: "%.2f", elapsed)) s, "
                  + "\(megabytes(logical / elapsed)) MB/s logical, \(megabytes(disk / elapsed)) MB/s on disk (\(cache))")
        }
    }

    private func compressionRatio(root: String, payload: [UInt8]) async throws -> Double {
        let directory = root + "/lz4"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (wal, _) = try WAL.open(directory: directory, logger: .init(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
        let entries = stride(from: 0, to: payload.count, by: 4096).enumerated().map { number, offset in
            Entry(index: LogIndex(UInt64(number) + 1), term: Term(1), payload: Array(payload[offset..<min(offset + 4096, payload.count)]))
        }
        try await wal.append(entries)
        await wal.close()
        let segment = try WALInspection.inspect(directory: directory).segments[0]
        return Double(segment.rawBodyBytes) / Double(segment.storedBodyBytes)
    }
}
