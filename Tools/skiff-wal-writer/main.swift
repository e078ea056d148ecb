// Appends to a WAL from many concurrent tasks and prints "<index> <appender> <sequence>" once each append
// is durable. The crash tests SIGKILL it mid-append and check that every printed append is in the log;
// `Tools/dev run` uses it to write a demo WAL. Usage: skiff-wal-writer DIR APPENDERS [APPENDS-EACH]
import Foundation
import SkiffRaft
import SkiffStorage

let arguments = CommandLine.arguments
guard arguments.count == 3 || arguments.count == 4, let appenders = Int(arguments[2]), appenders > 0,
      let appendsEach = arguments.count == 4 ? Int(arguments[3]) : 1_000_000, appendsEach > 0 else {
    FileHandle.standardError.write(Data("usage: skiff-wal-writer DIR APPENDERS [APPENDS-EACH]\n".utf8))
    exit(2)
}
var options = WALOptions()
options.segmentBytesMax = 256 << 10
let (wal, report) = try WAL.open(directory: arguments[1], options: options)
let term = Term(UInt64(report.segments.count + 1))  // a new term per run, as after a restart
let output = FileHandle.standardOutput
output.write(Data("ready \(report.lastIndex)\n".utf8))

try await withThrowingTaskGroup(of: Void.self) { group in
    for appender in 0..<appenders {
        group.addTask {
            for sequence in 0..<appendsEach {
                let text = "a\(appender)s\(sequence) " + String(repeating: "payload-\(appender) ", count: 16)
                let index = try await wal.append(payload: Array(text.utf8), term: term)
                output.write(Data("\(index) \(appender) \(sequence)\n".utf8))
            }
        }
    }
    try await group.waitForAll()
}
await wal.close()
