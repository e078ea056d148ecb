import ArgumentParser
import SkiffStorage

struct Snapshot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a snapshot file's metadata and verify every chunk. Exit 1 if it does not verify.")

    @Argument(help: "A .snap file.") var file: String

    func run() throws {
        let reader = try failing { try SnapshotReader(path: file) }
        defer { reader.close() }
        print("snapshot: \(file)")
        print("index: \(reader.metadata.index)")
        print("term: \(reader.metadata.term)")
        print("configuration: \(reader.metadata.configuration.count) bytes \(escaped(reader.metadata.configuration[...], limit: 64))")
        var chunks = 0, total = 0
        do {
            while let chunk = try reader.nextChunk() {
                chunks += 1
                total += chunk.count
            }
        } catch {
            print("verification: FAILED after \(chunks) chunks: \(error)")
            throw ExitCode(1)
        }
        print("body: \(total) bytes in \(chunks) chunks")
        print("verification: ok")
    }
}
