import ArgumentParser

/// `skiff-bench`: prints performance figures of Skiff's parts on this machine, with the machine's own
/// limits measured in the same run for comparison. Figures, not pass/fail: these machines are noisy.
@main
struct SkiffBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skiff-bench",
        abstract: "Measure Skiff on this machine (run with Tools/dev bench, which builds in release mode).",
        subcommands: [WALBench.self, RaftBench.self])
}
