import Dispatch
import SkiffStorage
import Synchronization
import SystemPackage

/// Files for slot records made ahead of time on the store's queue, each shared by the slots of one group:
/// unnamed (`O_TMPFILE`), filled with zeros and synced, so that writing a slot neither waits for a file to be
/// made nor makes a new inode.
///
/// A slot's record lives in its own region of the file (`DirectoryExternalStore.offset(of:)`), and the file
/// is linked under the name of each slot of its group that it wins. So a leader makes one inode per
/// `DirectoryExternalStore.slotsPerFile` slots, not one per slot: on this machine's ext4, making an inode
/// while thousands were recently deleted (the trimmed slots) scans past every one of them, and cost the
/// leader about 40% of its CPU under load. A record written over zeros already on disk needs a data sync
/// but no change of the file's allocation, which leaves the directory's fsync as the one metadata write
/// per slot. A record too large for a region, a slot of a group older than the newest one started, a
/// write while no file is ready, or a filesystem without unnamed files (NFS) goes into a new named file.
/// A refill that fails for another reason (the store failing) is tried again `refillRetryDelay` later, so
/// an outage does not leave every later slot costing an inode. Unnamed files vanish with the process, so a
/// crashed writer leaves none behind.
final class PreparedSlotFiles: Sendable {
    /// Files kept ready; a refill starts when fewer than half are left.
    static let count = 4
    static let refillRetryDelay = Duration.seconds(1)

    private let directory: String
    private let fileSystem: any FileSystem
    private let queue: DispatchQueue
    private let state = Mutex(State())

    private struct State {
        var ready: [any StorageFile] = []
        var refilling = false
        /// The filesystem has no unnamed files: slots go into new named files for good.
        var unsupported = false
        /// The last refill failed otherwise: the next starts no earlier than this.
        var refillAfter: ContinuousClock.Instant?
        /// The files of groups in use, with how many writes are using each and which regions were given
        /// out (bit `slot % slotsPerFile`): a region is written once, since the file may already be named
        /// after its slot, and a second write of that slot (a seal racing this node's own batch) must not
        /// change what readers of the first see.
        var inUse: [UInt64: (file: any StorageFile, writers: Int, regions: UInt64)] = [:]
        /// The newest group given a file: older groups get none, and their files close once unused.
        var newestGroup: UInt64?
    }

    init(directory: String, fileSystem: any FileSystem, queue: DispatchQueue) {
        precondition(DirectoryExternalStore.slotsPerFile <= 64, "a group's regions are bits of a UInt64")
        self.directory = directory
        self.fileSystem = fileSystem
        self.queue = queue
    }

    /// Writes `framed` into the region of `slot` in the prepared file of its group, syncs it and links the
    /// file to `destination`. Returns whether the name was free, or nil, having named nothing, if the
    /// group has no file and none can be given, if the slot's region was given out before, or if the
    /// file can no longer be named: once every name of a linked unnamed file is gone (trimmed), Linux
    /// refuses to link it again. The first call starts preparing files, so a store that never writes slots
    /// makes none.
    func write(_ framed: [UInt8], slot: UInt64, naming destination: String) throws -> Bool? {
        precondition(framed.count <= DirectoryExternalStore.regionSize, "a record larger than its region")
        let group = slot / DirectoryExternalStore.slotsPerFile
        let (file, refill, unused) = state.withLock { state -> ((any StorageFile)?, Bool, [any StorageFile]) in
            var unused: [any StorageFile] = []  // files of older groups that no write uses any more
            let region = UInt64(1) << (slot % DirectoryExternalStore.slotsPerFile)
            var file: (any StorageFile)?
            if let use = state.inUse[group] {
                if use.regions & region == 0 {
                    file = use.file
                    state.inUse[group]!.writers += 1
                    state.inUse[group]!.regions |= region
                }
            } else if group >= state.newestGroup ?? 0, let fresh = state.ready.popLast() {
                file = fresh
                state.inUse[group] = (fresh, 1, region)
                state.newestGroup = group
                let idle = state.inUse.filter { $0.key < group && $0.value.writers == 0 }
                unused = idle.values.map(\.file)
                for old in idle.keys { state.inUse[old] = nil }
            }
            let refill = !state.refilling && !state.unsupported && state.ready.count < Self.count / 2
                && state.refillAfter.map { ContinuousClock.now >= $0 } != false
            if refill { state.refilling = true }
            return (file, refill, unused)
        }
        for old in unused { try? old.close() }
        if refill { queue.async { [self] in self.refill() } }
        guard let file else { return nil }
        defer { release(group) }
        try file.write(framed, at: DirectoryExternalStore.offset(of: slot))
        try file.sync()
        do {
            try fileSystem.name(file, as: destination)
        } catch Errno.fileExists {
            return false
        } catch Errno.noSuchFileOrDirectory {
            state.withLock { $0.inUse[group]!.regions = .max }  // no more slots through it
            return nil
        }
        return true
    }

    private func release(_ group: UInt64) {
        let unused = state.withLock { state -> (any StorageFile)? in
            state.inUse[group]!.writers -= 1
            guard state.inUse[group]!.writers == 0, group < state.newestGroup! else { return nil }
            return state.inUse.removeValue(forKey: group)!.file
        }
        try? unused?.close()
    }

    private func refill() {
        let zeros = [UInt8](repeating: 0, count: DirectoryExternalStore.regionSize * Int(DirectoryExternalStore.slotsPerFile))
        var failure: (any Error)?
        var unsupported = false
        while failure == nil, state.withLock({ $0.ready.count }) < Self.count {
            do {
                let file: any StorageFile
                do { file = try fileSystem.createUnnamedFile(in: directory) } catch {
                    // What open(O_TMPFILE) says where there are no unnamed files; anything else may pass.
                    unsupported = [Errno.notSupported, .isDirectory, .invalidArgument].contains(error as? Errno)
                    throw error
                }
                do {
                    try file.write(zeros, at: 0)
                    try file.sync()
                } catch {
                    try? file.close()
                    throw error
                }
                state.withLock { $0.ready.append(file) }
            } catch {
                failure = error
            }
        }
        state.withLock { state in
            state.refilling = false
            state.unsupported = unsupported
            state.refillAfter = failure == nil ? nil : .now + Self.refillRetryDelay
        }
    }
}
