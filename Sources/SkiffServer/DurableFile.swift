import SkiffStorage

/// Small files the server keeps beside a node's data (the cluster file, the init's pending voters),
/// written so that a crash leaves either the old contents or the new, never a mix: a temporary file,
/// synced, renamed into place, then the directory synced.
enum DurableFile {
    static func write(_ text: String, to path: String, in directory: String) throws {
        let fileSystem = PosixFileSystem()
        try fileSystem.createDirectory(directory)
        let temporary = path + ".tmp"
        if fileSystem.fileExists(temporary) { try fileSystem.removeFile(temporary) }  // left by a crash
        let file = try fileSystem.createFile(temporary)
        try Array(text.utf8).withUnsafeBytes { try file.write($0, at: 0) }
        try file.sync()
        try file.close()
        try fileSystem.rename(temporary, to: path)
        try fileSystem.syncDirectory(directory)
    }

    /// Removes `path`, if it is there, and syncs its directory.
    static func remove(_ path: String, in directory: String) throws {
        let fileSystem = PosixFileSystem()
        guard fileSystem.fileExists(path) else { return }
        try fileSystem.removeFile(path)
        try fileSystem.syncDirectory(directory)
    }
}
