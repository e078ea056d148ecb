/// How a WAL lays out and syncs its files.
public struct WALOptions: Sendable {
    /// Whether an append waits for fdatasync.
    public enum FsyncMode: String, Sendable, CaseIterable {
        /// Every append returns only after its bytes are durable.
        case always
        /// UNSAFE: appends return once written to the page cache; a power loss loses them, and may leave
        /// a log that opens only after manual repair. For benchmarks only.
        case never
    }

    /// A segment that has reached this size is closed and a new one started (a frame is never split).
    public var segmentBytesMax = 64 << 20
    /// Frame bodies at least this large are lz4-compressed when that makes them smaller.
    public var compressionThresholdBytes = 4 << 10
    /// A group commit stops gathering appends into its frame once the frame body reaches this size.
    public var groupBytesMax = 8 << 20
    public var fsync = FsyncMode.always
    /// Fill each new segment with zeros to its full size and sync them before using it (and the newest
    /// segment again when the WAL is opened). Appends then overwrite blocks that are already written, so
    /// their fdatasync changes no file-system metadata and has no journal commit to wait for: on ext4 a
    /// small append's fdatasync takes about half as long as one that grows the file or writes into space
    /// reserved with fallocate. Costs one write of `segmentBytesMax` bytes per segment, done ahead of time on
    /// a helper thread, and skipped for the next segment while syncs average more than 64 KiB (there the
    /// second write of every byte costs more than the journal commits it saves).
    public var preallocate = true

    /// The most unsynced bytes a frame may have behind it (`FrameHeader.unsyncedBytesMax`); tests lower it.
    var unsyncedBytesMax = FrameHeader.unsyncedBytesMax

    public init() {}

    public func validate() throws(WALError) {
        guard segmentBytesMax >= 4096, segmentBytesMax <= FrameHeader.bytesMax else {
            throw WALError(.malformed, file: "options", "segment size must be between 4 KiB and 256 MiB")
        }
        guard compressionThresholdBytes >= 0, groupBytesMax >= 1, groupBytesMax <= FrameHeader.bytesMax / 2 else {
            throw WALError(.malformed, file: "options", "group size must be between 1 byte and 128 MiB")
        }
    }
}

/// What `WAL.open` found and repaired.
public struct WALRecoveryReport: Sendable {
    public var segments: [SegmentSummary]
    public var firstIndex: UInt64
    public var lastIndex: UInt64
    public var hardState: String
    /// The unfinished end of the newest segment that was cut off, if any.
    public var cutTail: UnfinishedTail?
    /// Leftovers of interrupted operations that were removed: temporary files, segments made obsolete by a
    /// fresh start.
    public var removedFiles: [String]
}
