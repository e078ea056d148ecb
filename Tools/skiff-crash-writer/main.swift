// Test helper: appends to a WAL from many concurrent tasks until it is killed, and prints
// "<index> <appender> <sequence>" for every append once it is durable. The crash tests SIGKILL it
// and then check that every printed append is in the log. Not for operators.
import Foundation
import SkiffRaft
import SkiffStorage

let arguments = CommandLine.arguments
guard arguments.count == 3, let appenders = Int(arguments[2]) else {
    FileHandle.standardError.write("usage: skiff-crash-writer DIR APPENDERS\n".data(using: .utf8)!)
    exit(2)
}
var options = WALOptions()
options.segmentBytesMax = 256 << 10
let (wal, report) = try WAL.open(directory: arguments[1], options: options)
let term = Term(UInt64(report.segments.count + 1))  // a new term per run, as after a restart
let output = FileHandle.standardOutput
output.write("ready \(report.lastIndex)\n".data(using: .utf8)!)

try await withThrowingTaskGroup(of: Void.self) { group in
    for appender in 0..<appenders {
        group.addTask {
            for sequence in 0..<1_000_000 {
                let text = "a\(appender)s\(sequence)"
                let payload = Array(text.utf8) + Array(repeating: UInt8(appender & 0xff), count: 200)
                let index = try await wal.append(payload: payload, term: term)
                output.write("\(index) \(appender) \(sequence)\n".data(using: .utf8)!)
            }
        }
    }
    try await group.waitForAll()
}
