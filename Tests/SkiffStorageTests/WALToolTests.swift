import Foundation
import SkiffRaft
@testable import SkiffStorage
import Testing

/// `skiff-wal` as an operator meets it: bad input, help, and a WAL that is being written right now.
@Suite struct WALToolTests {
    static func badInputs(in scratch: TemporaryDirectory) throws -> [(String, [String])] {
        let root = scratch.path
        _ = FileManager.default.createFile(atPath: root + "/plain-file", contents: Data("hello".utf8))
        try FileManager.default.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/others", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: root + "/others/notes.txt", contents: Data("x".utf8))
        try FileManager.default.createDirectory(atPath: root + "/garbage", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: root + "/garbage/0000000001-00000000000000000001.wal",
                                           contents: Data((0..<9000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }))
        try FileManager.default.createDirectory(atPath: root + "/short", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: root + "/short/0000000001-00000000000000000001.wal", contents: Data("SKIFFWAL".utf8))
        return [
            ("missing", [root + "/does-not-exist"]), ("file", [root + "/plain-file"]), ("empty", [root + "/empty"]),
            ("other files", [root + "/others"]), ("garbage segment", [root + "/garbage"]), ("short segment", [root + "/short"]),
        ]
    }

    @Test func badInputGetsOneLineAndANonZeroExit() throws {
        let scratch = TemporaryDirectory("skiff-bad")
        for (name, arguments) in try Self.badInputs(in: scratch) {
            let damagedSegment = name.hasSuffix("segment")
            for command in ["ls", "dump", "verify"] {
                let (status, output, error) = try runTool("skiff-wal", [command] + arguments)
                #expect(status != 0, "\(command) on \(name)")
                if command == "verify" && damagedSegment {
                    // verify's job: list each problem on standard output and exit 1.
                    #expect(status == 1 && output.contains("corruption: not a WAL"), "\(output)")
                    continue
                }
                let lines = error.split(separator: "\n")
                #expect(lines.count == 1, "\(command) on \(name) printed: \(error)")
                #expect(lines.first?.hasPrefix("skiff-wal:") == true, "\(command) on \(name) printed: \(error)")
            }
        }
        for target in ["/etc/hostname", "/does/not/exist.snap"] {
            let (status, _, error) = try runTool("skiff-wal", ["snapshot", target])
            #expect(status != 0 && error.split(separator: "\n").count == 1, "snapshot \(target): \(error)")
        }
    }

    @Test func everySubcommandHasHelp() throws {
        for command in [[], ["ls"], ["dump"], ["verify"], ["snapshot"]] {
            let (status, output, _) = try runTool("skiff-wal", command + ["--help"])
            #expect(status == 0)
            #expect(output.contains("USAGE: skiff-wal"))
        }
    }

    @Test func verifyingAWALWhileItIsWrittenFindsNoCorruption() async throws {
        let dir = TemporaryDirectory()
        let writer = Process()
        writer.executableURL = try toolURL("skiff-wal-writer")
        // Bounded: 8 × 5,000 appends (about 10 s of writing here). Unbounded, the WAL grew for as long as the
        // loop ran, each verify read all of it, and a loaded machine made the test take over 13 minutes.
        writer.arguments = [dir.path, "8", "5000"]
        writer.standardOutput = FileHandle.nullDevice
        try writer.run()
        defer { writer.terminate(); writer.waitUntilExit() }
        var sawEntries = false
        let deadline = Date().addingTimeInterval(90)
        for _ in 0..<20 where Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
            let (status, output, error) = try runTool("skiff-wal", ["verify", dir.path])
            #expect(!output.contains("corruption"), "\(output)")
            #expect(status == 0 || (status == 1 && output.contains("torn tail")), "exit \(status): \(output) \(error)")
            sawEntries = sawEntries || output.contains("log entries 1...")
            let (dumpStatus, _, dumpError) = try runTool("skiff-wal", ["dump", dir.path, "--to", "5"])
            #expect(dumpStatus == 0 || dumpError.contains("unfinished write"), "\(dumpError)")
        }
        #expect(sawEntries)
    }
}
