import Dispatch

/// The next segment's file, filled with zeros ahead of time on a thread of its own.
///
/// Filling a segment with zeros (see `WALOptions.preallocate`) takes a write of the whole segment; done when
/// the segment is needed, it would stall every append for that long (about 120 ms for 64 MiB here). So once
/// the current segment is half full, a helper thread prepares the next one under the temporary name
/// `spare.wal.tmp`, and starting a segment then only writes its header, syncs, and renames the file into
/// place. A crash leaves at most a spare, which `WAL.open` removes like any temporary file.
///
/// Zeros pay off only for small syncs: they save each fdatasync a journal commit (about 100 us here) and
/// cost one extra write of every byte (about 2 us per 1 KiB at this disk's 500 MB/s). When the current
/// segment's syncs averaged more than `zeroFillBytesPerSyncMax`, the next segment is not filled at all:
/// its appends grow it, and the disk's bandwidth goes to the log alone.
struct SpareSegment {
    /// Set from the request until the writer takes the result; one request at a time.
    var requested = false
    /// The prepared file, once ready; nil while preparing, or if preparing failed.
    var file: (any StorageFile)?

    static let fileName = "spare.wal.tmp"
    static let zeroFillBytesPerSyncMax: Int64 = 64 << 10
}

extension WAL {
    /// Once the current segment is half full, decides whether the next one is filled with zeros and, if so,
    /// starts preparing it.
    func prepareSpareSegmentIfDue() {
        guard options.preallocate, !writer.nextSegmentPlanned, let current = writer.current,
              current.writeOffset >= Int64(options.segmentBytesMax / 2) else { return }
        writer.nextSegmentPlanned = true
        let syncs = Int64(max(syncCount - writer.segmentStart.syncs, 1))
        writer.zeroFillNextSegment = (current.writeOffset - writer.segmentStart.offset) / syncs <= SpareSegment.zeroFillBytesPerSyncMax
        guard writer.zeroFillNextSegment else { return }
        spare.withLock { $0.requested = true }
        let path = directory + "/" + SpareSegment.fileName
        let thread = WriterThread(name: "skiff-wal-spare") { [self] in
            do {
                if fileSystem.fileExists(path) { try fileSystem.removeFile(path) }
                let file = try fileSystem.createFile(path)
                try WAL.fillWithZeros(file, from: 0, to: Int64(options.segmentBytesMax))
                try file.sync()
                spare.withLock { $0.file = file }
            } catch {
                logger.warning("could not prepare the next WAL segment ahead of time; it will be made when needed",
                               metadata: ["file": "\(path)", "error": "\(error)"])
            }
            spareReady.signal()
        }
        thread.start()
    }

    /// Waits for the spare being prepared, if any, and takes it: the caller owns the file from here on.
    /// Returns nil if none was requested or preparing it failed.
    func takeSpareSegment() -> (any StorageFile)? {
        guard spare.withLock(\.requested) else { return nil }
        spareReady.wait()
        return spare.withLock { spare in
            defer { spare = SpareSegment() }
            return spare.file
        }
    }

    /// Removes a spare that will not be used (the WAL is closing).
    func discardSpareSegment() {
        guard let file = takeSpareSegment() else { return }
        try? file.close()
        do { try fileSystem.removeFile(file.path) } catch {
            logger.warning("could not remove the spare WAL segment; the next open removes it", metadata: ["error": "\(error)"])
        }
    }
}
