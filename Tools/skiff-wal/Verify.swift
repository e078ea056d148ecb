import ArgumentParser
import SkiffStorage

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify every record. Exit 0 when sound; 1, listing each problem, when not.",
        discussion: """
            A torn tail (an unfinished write at the end of the newest segment) is listed as a problem that \
            the next open repairs by cutting it off; corruption anywhere else makes the node refuse to start.
            """)

    @Argument(help: "WAL directory or node data directory.") var directory: String

    func run() throws {
        let inspection = try failing { try WALInspection.inspect(directory: directory) }
        let entries = inspection.segments.reduce(0) { $0 + $1.entries }
        print("\(inspection.directory): \(inspection.segments.count) segments, \(entries) entries written; log \(describe(first: inspection.firstIndex, last: inspection.lastIndex))")
        for problem in inspection.problems {
            print("corruption: \(problem)")
        }
        if let tail = inspection.unfinishedTail {
            if tail.allZero {
                print("note: \(tail.bytes) zero bytes of preallocated space after byte \(tail.offset) of \(tail.fileName)")
            } else {
                print("torn tail: \(tail.fileName) from byte \(tail.offset), \(tail.bytes) bytes of an unfinished write; the next open cuts them off")
            }
        }
        if inspection.isSound {
            print("ok")
        } else {
            throw ExitCode(1)
        }
    }
}
