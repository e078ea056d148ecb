import Dispatch
import SkiffStorage
import Synchronization

/// Files for slot records made ahead of time on the store's queue: unnamed (`O_TMPFILE`), filled with
/// zeros and synced, so that writing a slot does not wait for a file to be made.
///
/// A record written into a new file needs that file's allocation made durable: a journal commit of its own
/// (about 0.7 ms on this machine's ext4), before the one that makes the slot's name durable. Written over
/// zeros already on disk, it needs only a data sync, and the directory sync after naming it is the one
/// journal commit left. A record too large for a prepared file, or written while none is ready, or on a
/// filesystem without unnamed files (NFS), goes into a new named file as before. Unnamed files vanish with
/// the process, so a crashed writer leaves none behind.
final class PreparedSlotFiles: Sendable {
    /// The size of each prepared file: room for a framed record of this many bytes.
    static let size = 16 << 10
    /// Files kept ready; a refill starts when fewer than half are left.
    static let count = 32

    private let directory: String
    private let fileSystem: any FileSystem
    private let queue: DispatchQueue
    private let state = Mutex((ready: [any StorageFile](), refilling: false, failed: false))

    init(directory: String, fileSystem: any FileSystem, queue: DispatchQueue) {
        self.directory = directory
        self.fileSystem = fileSystem
        self.queue = queue
    }

    /// A prepared file, now the caller's to write, name and close, or nil if none is ready. The first call
    /// starts preparing them, so a store that never writes slots makes none.
    func take() -> (any StorageFile)? {
        let (file, refill) = state.withLock { state -> ((any StorageFile)?, Bool) in
            let file = state.ready.popLast()
            let refill = !state.refilling && !state.failed && state.ready.count < Self.count / 2
            if refill { state.refilling = true }
            return (file, refill)
        }
        if refill { queue.async { [self] in self.refill() } }
        return file
    }

    private func refill() {
        let zeros = [UInt8](repeating: 0, count: Self.size)
        var failed = false
        while !failed, state.withLock({ $0.ready.count }) < Self.count {
            do {
                let file = try fileSystem.createUnnamedFile(in: directory)
                do {
                    try file.write(zeros, at: 0)
                    try file.sync()
                } catch {
                    try? file.close()
                    throw error
                }
                state.withLock { $0.ready.append(file) }
            } catch {
                failed = true  // not supported here, or the store failing: slots go into new files from now on
            }
        }
        state.withLock { state in
            state.refilling = false
            state.failed = failed
        }
    }
}
