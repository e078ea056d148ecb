#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SkiffStorage

/// The network file systems this machine is configured to mount (`/etc/fstab`) and the mount points
/// mounted now (`/proc/self/mountinfo`), to tell a share's mount point whose share is missing from a plain
/// directory.
///
/// A share that is not mounted leaves an empty directory at its mount point. A store made there would be a
/// second store of the same cluster, on the local disk; see "One store, one cluster" in the ExternalLog
/// article. Only shares count (NFS, SMB, Ceph, GlusterFS, sshfs, or entries marked `_netdev`): a local
/// disk left unmounted is not what this guards against. Where either table cannot be read, the table is
/// empty and nothing is ever refused.
public struct MountTable: Sendable {
    /// Mount points of the shares listed in `/etc/fstab`.
    public var shares: [String]
    /// Mount points mounted now.
    public var mounted: Set<String>

    static let shareTypes: Set<String> = ["nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.sshfs", "fuse.glusterfs", "fuse.ceph"]

    public init(fstab: String, mountinfo: String) {
        mounted = Set(mountinfo.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 ? Self.normalised(Self.unescaped(fields[4])) : nil
        })
        shares = mounted.isEmpty ? [] : fstab.split(separator: "\n").compactMap { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 3, !fields[0].hasPrefix("#"), fields[1].hasPrefix("/") else { return nil }
            let options = fields.count > 3 ? fields[3].split(separator: ",") : []
            guard Self.shareTypes.contains(String(fields[2])) || options.contains("_netdev") else { return nil }
            return Self.normalised(Self.unescaped(fields[1]))
        }
    }

    /// This machine's tables, read now; empty if either cannot be read whole.
    public static func system(fileSystem: any FileSystem = PosixFileSystem()) -> MountTable {
        guard let fstab = contents(of: "/etc/fstab", fileSystem: fileSystem),
              let mountinfo = contents(of: "/proc/self/mountinfo", fileSystem: fileSystem) else { return MountTable(fstab: "", mountinfo: "") }
        var table = MountTable(fstab: fstab, mountinfo: mountinfo)
        table.shares = table.shares.map(resolved)  // as the kernel names them in mountinfo (a symlinked /mnt, say)
        return table
    }

    /// The share's mount point that `path` lies under if that share is not mounted now: the deepest mount
    /// point, configured or mounted, at or above `path`, when it is a share that is not mounted. Nil if
    /// there is none, or `path` is not absolute.
    public func unmountedMountPoint(containing path: String) -> String? {
        guard path.hasPrefix("/") else { return nil }
        let path = Self.normalised(path)
        func contains(_ point: String) -> Bool { point == "/" || path == point || path.hasPrefix(point + "/") }
        let deepest = (shares + mounted).filter(contains).max { $0.count < $1.count }
        guard let deepest, shares.contains(deepest), !mounted.contains(deepest) else { return nil }
        return deepest
    }

    /// `path`, made absolute, with its symbolic links resolved as far up as it exists; the part that does not
    /// exist yet is kept as written.
    public static func resolved(_ path: String) -> String {
        var absolute = path
        if !path.hasPrefix("/"), let cwd = getcwd(nil, 0) {
            absolute = String(cString: cwd) + "/" + path
            free(cwd)
        }
        var existing = normalised(absolute)
        var missing: [Substring] = []
        while existing != "/" {
            if let real = realpath(existing, nil) {
                defer { free(real) }
                let base = String(cString: real)
                return normalised(([base] + missing.reversed().map(String.init)).joined(separator: "/"))
            }
            let cut = existing.lastIndex(of: "/")!
            missing.append(existing[existing.index(after: cut)...])
            existing = cut == existing.startIndex ? "/" : String(existing[..<cut])
        }
        return normalised("/" + missing.reversed().joined(separator: "/"))
    }

    /// Without repeated or trailing slashes (except the root's).
    static func normalised(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        return "/" + parts.joined(separator: "/")
    }

    /// The whole file, read until it ends (a `/proc` file says its size is 0); nil if any of it cannot be read.
    private static func contents(of path: String, fileSystem: any FileSystem) -> String? {
        guard let file = try? fileSystem.openFile(path, writable: false) else { return nil }
        defer { try? file.close() }
        var bytes: [UInt8] = []
        while true {
            guard let chunk = try? file.read(count: 1 << 16, at: Int64(bytes.count)) else { return nil }
            if chunk.isEmpty { return String(decoding: bytes, as: UTF8.self) }
            bytes += chunk
        }
    }

    /// Both tables write a space in a path as `\040`, and so on: three octal digits after a backslash.
    private static func unescaped(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        var rest = Array(field.utf8)[...]
        let octal = UInt8(ascii: "0")...UInt8(ascii: "7")
        while let byte = rest.popFirst() {
            if byte == UInt8(ascii: "\\"), rest.count >= 3, rest.prefix(3).allSatisfy(octal.contains) {
                bytes.append(rest.prefix(3).reduce(0) { $0 &* 8 &+ ($1 - UInt8(ascii: "0")) })
                rest = rest.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
