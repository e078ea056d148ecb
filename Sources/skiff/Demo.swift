import ArgumentParser
import Foundation
import Synchronization

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a local cluster of several nodes for trying Skiff out, and stop it with Ctrl-C.")

    @Option(help: "How many nodes (1 to 7).") var nodes = 3
    @Option(help: "Clients connect to BASE, BASE+1, ...; peers use BASE+100, BASE+101, ...") var basePort = 7379
    @Option(help: "Each node keeps its data in DIR/nNUMBER.") var dataDir = "./skiff-demo"

    func validate() throws {
        guard (1...7).contains(nodes) else { throw ValidationError("--nodes must be between 1 and 7") }
        guard basePort > 0, basePort + 100 + nodes < 65536 else { throw ValidationError("--base-port leaves no room for the nodes' ports") }
    }

    func run() async throws {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        let cluster = (1...nodes).map { "n\($0)=127.0.0.1:\(basePort + 99 + $0)" }.joined(separator: ",")
        var processes: [Process] = []
        for number in 1...nodes {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = ["serve", "--id", "n\(number)", "--data-dir", "\(dataDir)/n\(number)",
                                 "--client-addr", "127.0.0.1:\(basePort + number - 1)", "--peer-addr", "127.0.0.1:\(basePort + 99 + number)",
                                 "--initial-cluster", cluster]
            try process.run()
            processes.append(process)
        }
        print("""
            Started \(nodes) nodes (data in \(dataDir)). Connect to any of them:
            \((1...nodes).map { "  redis-cli -p \(basePort + $0 - 1)    # n\($0)" }.joined(separator: "\n"))
            Writes to any node are forwarded to the leader; SKIFF.STATUS shows who leads. Ctrl-C stops them all.
            """)
        let (interrupted, continuation) = AsyncStream<Void>.makeStream()
        var sources: [any DispatchSourceSignal] = []
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber)
            source.setEventHandler { continuation.yield() }
            source.resume()
            sources.append(source)
        }
        let remaining = Counter(processes.count)
        for (number, process) in processes.enumerated() {
            process.terminationHandler = { ended in
                print("node n\(number + 1) exited with status \(ended.terminationStatus)")
                if remaining.decrement() == 0 { continuation.yield() }  // the demo ends when no node is left
            }
        }
        for await _ in interrupted { break }
        for source in sources { source.cancel() }
        for process in processes where process.isRunning { process.terminate() }
        for process in processes { process.waitUntilExit() }
        print("stopped")
    }
}

/// A count shared with process termination handlers.
final class Counter: Sendable {
    private let value: Mutex<Int>
    init(_ value: Int) { self.value = Mutex(value) }
    func decrement() -> Int { value.withLock { $0 -= 1; return $0 } }
}
