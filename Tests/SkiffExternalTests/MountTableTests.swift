import Foundation
import SkiffExternal
import Testing

/// A share that is not mounted is told from a plain directory, and no store is made on its mount point.
@Suite struct MountTableTests {
    static let fstab = """
        # <file system> <mount point> <type> <options> <dump> <pass>
        UUID=1234 / ext4 defaults 0 1
        /swapfile none swap sw 0 0
        tmpfs /tmp tmpfs defaults 0 0
        UUID=5678 /data ext4 noauto 0 2
        server:/exports/skiff /mnt/share/ nfs hard,sync 0 0
        server:/exports/other\t/mnt/share/deeper\tnfs4\thard 0 0
          //nas/spaced /mnt/with\\040space cifs credentials=/root/nas 0 0
        /dev/sdb1 /srv ext4 noauto,_netdev 0 0
        server:/exports/nested /srv/skiff nfs hard 0 0
        """
    static let mountinfo = """
        22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
        40 22 0:35 / /mnt/share rw,relatime shared:9 - nfs4 server:/exports/skiff rw
        41 22 0:36 / /srv/skiff rw,relatime shared:10 - nfs4 server:/exports/nested rw
        """

    @Test func anUnmountedShareAboveAPathIsFoundAndNothingElse() {
        let table = MountTable(fstab: Self.fstab, mountinfo: Self.mountinfo)
        #expect(table.shares == ["/mnt/share", "/mnt/share/deeper", "/mnt/with space", "/srv", "/srv/skiff"])
        #expect(table.unmountedMountPoint(containing: "/mnt/share/skiff") == nil)  // mounted (fstab's trailing slash)
        #expect(table.unmountedMountPoint(containing: "/mnt/share/deeper") == "/mnt/share/deeper")
        #expect(table.unmountedMountPoint(containing: "/mnt/share//deeper/store/") == "/mnt/share/deeper")
        #expect(table.unmountedMountPoint(containing: "/mnt/with space/store") == "/mnt/with space")
        #expect(table.unmountedMountPoint(containing: "/mnt/with") == nil)
        #expect(table.unmountedMountPoint(containing: "/mnt/shared/store") == nil)  // another directory
        #expect(table.unmountedMountPoint(containing: "/srv/skiff/store") == nil)  // the deepest mount is mounted
        #expect(table.unmountedMountPoint(containing: "/srv/other") == "/srv")  // _netdev
        #expect(table.unmountedMountPoint(containing: "/data/store") == nil)  // a local disk, not a share
        #expect(table.unmountedMountPoint(containing: "/tmp/store") == nil)
        #expect(table.unmountedMountPoint(containing: "relative/store") == nil)
        // Without mountinfo (no /proc) nothing is known to be unmounted, so nothing is refused.
        #expect(MountTable(fstab: Self.fstab, mountinfo: "").unmountedMountPoint(containing: "/mnt/share/deeper") == nil)
    }

    @Test func pathsAreResolvedThroughSymbolicLinksAsFarAsTheyExist() throws {
        let directory = StoreDirectory()
        try FileManager.default.createDirectory(atPath: directory.path + "/real", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: directory.path + "/link", withDestinationPath: directory.path + "/real")
        let real = MountTable.resolved(directory.path + "/real")
        #expect(MountTable.resolved(directory.path + "/link/not/yet") == real + "/not/yet")
        #expect(MountTable.resolved(directory.path + "/link/") == real)
    }

    @Test func aFirstClaimMakesNoStoreUnderAShareThatIsNotMounted() async throws {
        let directory = StoreDirectory()
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        let share = MountTable.resolved(directory.path)
        let root = directory.path + "/store"
        let fstab = "server:/exports/skiff \(share) nfs hard,sync 0 0\n"
        let rootMount = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        let claimant = try #require(ExternalStoreOwner(cluster: "c", uuid: "00000001-0000-8000-8000-00000000000A"))
        let unmounted = DirectoryExternalStore(root: root, mountTable: { MountTable(fstab: fstab, mountinfo: rootMount) })
        let refusal = await #expect(throws: ExternalLogError.self) { try await claimant.claim(unmounted) }
        #expect(refusal.map { "\($0)" }?.contains("a share that /etc/fstab mounts but that is not mounted now") == true, "\(String(describing: refusal))")
        #expect(!FileManager.default.fileExists(atPath: root), "nothing is made on the empty mount point")
        let mountinfo = rootMount + "40 22 0:35 / \(share) rw,relatime - nfs4 server:/exports/skiff rw\n"
        let mounted = DirectoryExternalStore(root: root, mountTable: { MountTable(fstab: fstab, mountinfo: mountinfo) })
        #expect(try await claimant.claim(mounted).uuid == claimant.uuid)
        #expect(FileManager.default.fileExists(atPath: root + "/owner"))
    }
}
