import Foundation
import Synchronization

/// What must happen however the run ends: the nodes stopped and the namespaces removed. Runs once, from
/// `run()` or when SIGINT or SIGTERM arrives (then the tool exits with status 130 or 143). SIGKILL cannot be
/// caught; the next run removes what such a run left (`NamespaceNetwork.removeLeftovers`).
/// Unchecked: `sources` is set once, in `init`, and only kept alive after that.
final class Cleanup: @unchecked Sendable {
    private let action = Mutex<(@Sendable () -> Void)?>(nil)
    private let sources: [any DispatchSourceSignal]

    private init(_ body: @escaping @Sendable () -> Void) {
        action.withLock { $0 = body }
        sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            return DispatchSource.makeSignalSource(signal: number, queue: .global())
        }
    }

    static func onExit(_ body: @escaping @Sendable () -> Void) -> Cleanup {
        let cleanup = Cleanup(body)
        for (source, number) in zip(cleanup.sources, [SIGINT, SIGTERM]) {
            source.setEventHandler {
                say("skiff-torture: stopped by signal \(number); stopping the nodes and removing the namespaces")
                cleanup.run()
                exit(128 + number)
            }
            source.resume()
        }
        return cleanup
    }

    func run() {
        let body = action.withLock { action in
            defer { action = nil }
            return action
        }
        body?()
    }
}
