import ArgumentParser
import Logging
import SkiffExternal
import SkiffServer

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild a node's data directory from the external store alone, then exit.",
        discussion: """
            For when every node lost its disk: the result holds every write the cluster acknowledged (the \
            newest snapshot in the store, then the external log after it). Run it for each node's empty data \
            directory, then start the nodes as before: they take the cluster the store belongs to. `skiff serve \
            --restore-from-external` does the same as it starts. A node that lost its disk while the rest of \
            its cluster runs must not be rebuilt this way under its old name: see the ExternalLog article.
            """)

    @Option(help: "The external store, dir:PATH.") var externalLog: String
    @Option(help: "The data directory to create; it must not hold a node's data.") var dataDir: String

    func run() async throws {
        let store: any ExternalStore
        do { store = try NodeConfiguration.openExternalStore(externalLog) } catch { throw ValidationError(error.description) }
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        do {
            let report = try await SkiffServer.rebuild(directory: dataDir, from: store, logger: Logger(label: "skiff.restore"))
            print("restored \(dataDir): \(report)")
        } catch {
            print("skiff restore: \(error)")
            throw ExitCode(1)
        }
    }
}
