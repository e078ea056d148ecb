import ArgumentParser
import Foundation

@main
struct Skiff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skiff",
        abstract: "A Raft-replicated key-value server that speaks the Redis protocol.",
        discussion: """
            Every option of `skiff serve` can also come from an environment variable (SKIFF_ and the option's \
            name in capitals with _ for -, e.g. SKIFF_DATA_DIR) or a config file (--config FILE or SKIFF_CONFIG: \
            one `name = value` per line, # for comments). Flags win over the environment, which wins over the file.
            """,
        subcommands: [Serve.self, Demo.self, Restore.self, Init.self, Status.self, Members.self, AddLearner.self, Promote.self, Remove.self,
                      TransferLeader.self, Watch.self],
        defaultSubcommand: Serve.self)

    /// Parses the command line with the config file's and the environment's settings placed before it, so
    /// that later sources win.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            let expanded = try SettingSources.expand(arguments, environment: ProcessInfo.processInfo.environment)
            var command = try parseAsRoot(expanded)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
