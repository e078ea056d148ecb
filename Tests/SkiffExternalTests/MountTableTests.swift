import Foundation
import SkiffExternal
import Testing

/// A share that is not mounted is told from a plain directory, and no store is made on its mount point.
@Suite struct MountTableTests {
    static let fstab = """
        # <file system> <mount point> <type> <options> <dump> <pass>
        UUID=1234 / ext4 defaults 0 1
        /swapfile none swap sw 0 0
        server:/exports/skiff /mnt/share nfs hard,sync 0 0
        server:/exports/other /mnt/share/deeper nfs hard 0 0
        server:/exports/spaced /mnt/with\\040space nfs hard 0 0
        """
    static let mountinfo = """
        22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
        40 22 0:35 / /mnt/share rw,relatime shared:9 - nfs4 server:/exports/skiff rw
        """

    @Test func anUnmountedMountPointAboveAPathIsFoundAndAMountedOneIsNot() {
        let table = MountTable(fstab: Self.fstab, mountinfo: Self.mountinfo)
        #expect(table.configured == ["/", "/mnt/share", "/mnt/share/deeper", "/mnt/with space"])
        #expect(table.unmountedMountPoint(containing: "/mnt/share/skiff") == nil)  // mounted
        #expect(table.unmountedMountPoint(containing: "/mnt/share/deeper") == "/mnt/share/deeper")
        #expect(table.unmountedMountPoint(containing: "/mnt/share/deeper/store") == "/mnt/share/deeper")
        #expect(table.unmountedMountPoint(containing: "/mnt/with space/store") == "/mnt/with space")
        #expect(table.unmountedMountPoint(containing: "/mnt/with") == nil)
        #expect(table.unmountedMountPoint(containing: "/mnt/shared/store") == nil)  // another directory
        #expect(table.unmountedMountPoint(containing: "/var/lib/skiff") == nil)
        #expect(MountTable(fstab: "", mountinfo: "").unmountedMountPoint(containing: "/mnt/share") == nil)
    }

    @Test func aFirstClaimMakesNoStoreUnderAMountPointThatIsNotMounted() async throws {
        let directory = StoreDirectory()
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        let root = directory.path + "/store"
        let fstab = "server:/exports/skiff \(directory.path) nfs hard,sync 0 0\n"
        let claimant = try #require(ExternalStoreOwner(cluster: "c", uuid: "00000001-0000-8000-8000-00000000000A"))
        let unmounted = DirectoryExternalStore(root: root, mountTable: { MountTable(fstab: fstab, mountinfo: "") })
        let refusal = await #expect(throws: ExternalLogError.self) { try await claimant.claim(unmounted) }
        #expect(refusal.map { "\($0)" }?.contains("which /etc/fstab mounts but which is not mounted now") == true, "\(String(describing: refusal))")
        #expect(!FileManager.default.fileExists(atPath: root), "nothing is made on the empty mount point")
        let mountinfo = "40 22 0:35 / \(directory.path) rw,relatime - nfs4 server:/exports/skiff rw\n"
        let mounted = DirectoryExternalStore(root: root, mountTable: { MountTable(fstab: fstab, mountinfo: mountinfo) })
        #expect(try await claimant.claim(mounted).uuid == claimant.uuid)
        #expect(FileManager.default.fileExists(atPath: root + "/owner"))
    }
}
