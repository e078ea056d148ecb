import SkiffStorage

/// The mount points this machine is configured to mount (`/etc/fstab`) and those mounted now
/// (`/proc/self/mountinfo`), to tell a mount point whose file system is missing from a plain directory.
///
/// A share that is not mounted leaves an empty directory at its mount point. A store made there would be a
/// second store of the same cluster, on the local disk; see "One store, one cluster" in the ExternalLog
/// article. Missing files read as empty tables, so where they do not exist nothing is ever refused.
public struct MountTable: Sendable {
    /// Mount points listed in `/etc/fstab` (swap and `none` left out).
    public var configured: [String]
    /// Mount points mounted now.
    public var mounted: Set<String>

    public init(fstab: String, mountinfo: String) {
        configured = fstab.split(separator: "\n").compactMap { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 3, !fields[0].hasPrefix("#"), fields[2] != "swap", fields[1].hasPrefix("/") else { return nil }
            return Self.unescaped(fields[1])
        }
        mounted = Set(mountinfo.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 ? Self.unescaped(fields[4]) : nil
        })
    }

    /// This machine's tables, read now.
    public static func system(fileSystem: any FileSystem = PosixFileSystem()) -> MountTable {
        MountTable(fstab: contents(of: "/etc/fstab", fileSystem: fileSystem), mountinfo: contents(of: "/proc/self/mountinfo", fileSystem: fileSystem))
    }

    /// The whole file, read until it ends (a `/proc` file says its size is 0); empty if it cannot be read.
    private static func contents(of path: String, fileSystem: any FileSystem) -> String {
        guard let file = try? fileSystem.openFile(path, writable: false) else { return "" }
        defer { try? file.close() }
        var bytes: [UInt8] = []
        while let chunk = try? file.read(count: 1 << 16, at: Int64(bytes.count)), !chunk.isEmpty {
            bytes += chunk
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The deepest configured mount point at or above `path` (absolute) that is not mounted now, if any.
    public func unmountedMountPoint(containing path: String) -> String? {
        configured.filter { point in
            !mounted.contains(point) && (path == point || path.hasPrefix(point.hasSuffix("/") ? point : point + "/"))
        }.max { $0.count < $1.count }
    }

    /// Both tables write a space in a path as `\040`, and so on: three octal digits after a backslash.
    private static func unescaped(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        var rest = Array(field.utf8)[...]
        while let byte = rest.popFirst() {
            if byte == UInt8(ascii: "\\"), rest.count >= 3, let value = UInt8(String(decoding: rest.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                rest = rest.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
