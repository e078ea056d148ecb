import Foundation
import SkiffRaft

/// A power cut, applied to the files of a node that was just killed: writes that no fsync or fdatasync made
/// durable are undone, newest first, from the journal that `power_loss_shim.c` kept while the node ran (see
/// that file for the format).
enum PowerLoss {
    /// Which unsynced writes the cut loses.
    enum Loss: CaseIterable {
        /// All of them.
        case all
        /// All of them, but the newest of each file only partly, as a write torn by the cut.
        case allTearingNewest
        /// Each one or not, as a coin falls: a disk persists unsynced writes in any order, so a later write
        /// may survive an earlier one it did not overwrite.
        case anyOrder

        var text: String {
            switch self {
            case .all: "undo every write not fsynced"
            case .allTearingNewest: "undo every write not fsynced, tearing the newest"
            case .anyOrder: "undo each write not fsynced or not, in any order"
            }
        }
    }

    struct Outcome {
        var writesUndone = 0
        var writesKept = 0
        var filesTouched = 0
        var torn = 0
        /// The most unsynced writes one WAL segment had: more than one means the node wrote a frame while an
        /// earlier one was being synced (or was zero-filling a segment as it opened).
        var mostUnsyncedInASegment = 0
    }

    private struct Inode: Hashable { var device: UInt64; var inode: UInt64 }
    /// A journaled write: where it is in the journal, where it went, and what it replaced.
    private struct Write { var position: Int; var offset: Int64; var oldSize: Int64; var written: Int; var oldBytes: [UInt8] }

    /// Undoes the unsynced writes the journal records for files under `directory`, then removes the journal.
    static func cut(journal: String, directory: String, loss: Loss, random: inout SplitMix64) throws -> Outcome {
        var outcome = Outcome()
        guard let data = FileManager.default.contents(atPath: journal) else { return outcome }
        var unsynced: [Inode: [Write]] = [:]
        var syncsBegun: [Int64: Int] = [:]  // a sync's number -> where its start is in the journal
        var position = 0
        let bytes = [UInt8](data)
        func integer<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
            bytes[offset..<offset + MemoryLayout<T>.size].withUnsafeBytes { $0.loadUnaligned(as: T.self) }
        }
        while position + 48 <= bytes.count {
            guard integer(UInt32.self, at: position) == 0x534b_504c else { throw TortureError("\(journal) is damaged at byte \(position)") }
            let kind = integer(UInt32.self, at: position + 4)
            let key = Inode(device: integer(UInt64.self, at: position + 8), inode: integer(UInt64.self, at: position + 16))
            let length = Int(integer(UInt32.self, at: position + 44))
            guard position + 48 + length <= bytes.count else { break }  // the killed process was mid-append
            let offset = integer(Int64.self, at: position + 24)
            switch kind {
            case 1:
                unsynced[key, default: []].append(Write(position: position, offset: offset, oldSize: integer(Int64.self, at: position + 32),
                                                        written: Int(integer(UInt32.self, at: position + 40)),
                                                        oldBytes: Array(bytes[position + 48..<position + 48 + length])))
            case 2:  // a sync succeeded: it covers the writes journaled before it began
                let begun = syncsBegun.removeValue(forKey: offset) ?? position
                unsynced[key]?.removeAll { $0.position < begun }
            case 3:
                syncsBegun[offset] = position
            default:  // the file was unlinked or replaced
                unsynced[key] = nil
            }
            position += 48 + length
        }
        for (key, path) in filesByInode(under: directory) {
            guard let writes = unsynced[key], !writes.isEmpty else { continue }
            if path.hasSuffix(".wal") { outcome.mostUnsyncedInASegment = max(outcome.mostUnsyncedInASegment, writes.count) }
            let file = open(path, O_RDWR)
            guard file >= 0 else { throw TortureError("cannot open \(path) to undo its unsynced writes: errno \(errno)") }
            defer { close(file) }
            var size = Int64(lseek(file, 0, SEEK_END))
            var survivors: [Range<Int64>] = []  // later writes the cut kept: what they wrote stays
            for (number, write) in writes.enumerated().reversed() {
                if loss == .anyOrder && random.below(2) == 0 {
                    // Clipped to the file's size now: a later truncation (durable at once) may have cut it.
                    survivors.append(write.offset..<max(write.offset, min(write.offset + Int64(write.written), size)))
                    outcome.writesKept += 1
                    continue
                }
                // Torn: the first `kept` bytes of the newest write reached the disk, the rest did not.
                let kept = loss == .allTearingNewest && number == writes.count - 1 && write.written > 1 ? Int(random.below(UInt64(write.written))) : 0
                if kept > 0 { outcome.torn += 1 }
                // What the write replaced (zeros past the old end of the file), except where a kept later write lies.
                let start = write.offset + Int64(kept)
                for piece in Self.subtract(survivors, from: start..<write.offset + Int64(write.written)) {
                    let restored = (piece.lowerBound..<piece.upperBound).map { at -> UInt8 in
                        let index = Int(at - write.offset)
                        return index < write.oldBytes.count ? write.oldBytes[index] : 0
                    }
                    let done = restored.withUnsafeBytes { pwrite(file, $0.baseAddress, $0.count, off_t(piece.lowerBound)) }
                    guard done == restored.count else { throw TortureError("cannot undo a write to \(path): errno \(errno)") }
                    size = max(size, piece.upperBound)
                }
                let end = max(kept > 0 ? max(write.oldSize, start) : write.oldSize, survivors.map(\.upperBound).max() ?? 0)
                if end < size {
                    guard ftruncate(file, off_t(end)) == 0 else { throw TortureError("cannot cut \(path) back: errno \(errno)") }
                    size = end
                }
                outcome.writesUndone += 1
            }
            guard fsync(file) == 0 else { throw TortureError("cannot sync \(path): errno \(errno)") }
            outcome.filesTouched += 1
        }
        try? FileManager.default.removeItem(atPath: journal)
        return outcome
    }

    /// The parts of `range` that none of `ranges` covers.
    static func subtract(_ ranges: [Range<Int64>], from range: Range<Int64>) -> [Range<Int64>] {
        var pieces = [range]
        for cut in ranges {
            pieces = pieces.flatMap { piece -> [Range<Int64>] in
                guard cut.overlaps(piece) else { return [piece] }
                return [piece.lowerBound..<cut.lowerBound, cut.upperBound..<piece.upperBound].filter { !$0.isEmpty }
            }
        }
        return pieces
    }

    /// Every regular file under `directory`, by device and inode (the journal cannot name unnamed files).
    private static func filesByInode(under directory: String) -> [Inode: String] {
        var files: [Inode: String] = [:]
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return files }
        while let relative = walker.nextObject() as? String {
            var info = stat()
            let path = directory + "/" + relative
            if stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG {
                files[Inode(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))] = path
            }
        }
        return files
    }
}
