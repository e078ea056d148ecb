import ArgumentParser
import Foundation
import SkiffStorage

/// `skiff-wal`: look inside a Skiff WAL or snapshot without changing it. Safe on a running node's files.
@main
struct SkiffWAL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skiff-wal",
        abstract: "Inspect a Skiff write-ahead log, snapshot or external log. Read-only: safe on a running node.",
        discussion: "DIR is a WAL directory, or a node data directory that holds one under wal/.",
        subcommands: [List.self, Dump.self, Verify.self, Snapshot.self, External.self])
}

/// Turns any error into one line on standard error and a non-zero exit.
func failing<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as ExitCode { throw error } catch {
        printError("skiff-wal: error: \(error)")
        throw ExitCode(2)
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
