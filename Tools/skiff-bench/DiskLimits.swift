import Foundation

/// The machine's own limits, measured with plain system calls on the directory under test.
enum DiskLimits {
    /// Appends of `blockBytes` to a new file, each followed by fdatasync: what one durable write at a time
    /// can do (4 KiB: the fsync rate; 1 MiB: the bandwidth of a writer that syncs every megabyte).
    static func appendSyncRate(directory: String, seconds: Double, blockBytes: Int = 4096) throws -> (perSecond: Double, p50Micros: Double) {
        let path = directory + "/fsync-probe"
        let fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0o644)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno)!) }
        defer { close(fd); unlink(path) }
        let block = noise(blockBytes, seed: 1)
        var latencies: [Double] = []
        let start = now()
        while now() - start < seconds {
            let before = now()
            _ = block.withUnsafeBytes { write(fd, $0.baseAddress, blockBytes) }
            fdatasync(fd)
            latencies.append(now() - before)
        }
        latencies.sort()
        return (Double(latencies.count) / (now() - start), latencies[latencies.count / 2] * 1e6)
    }

    /// Buffered sequential writes of 1 MiB blocks, with one fdatasync at the end: the bandwidth the disk
    /// gives a writer that syncs rarely.
    static func sequentialWriteBandwidth(directory: String, bytes: Int) throws -> Double {
        let path = directory + "/sequential-probe"
        let fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0o644)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno)!) }
        defer { close(fd); unlink(path) }
        let block = noise(1 << 20, seed: 2)
        let start = now()
        for _ in 0..<(bytes >> 20) { _ = block.withUnsafeBytes { write(fd, $0.baseAddress, 1 << 20) } }
        fdatasync(fd)
        return Double(bytes) / (now() - start)
    }
}
