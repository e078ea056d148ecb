import Foundation
import SkiffCheck
import SkiffClient
import SkiffRaft
import Synchronization

/// Concurrent clients, each on a thread of its own, sending GET, SET, SET..GET and DEL over a small key space
/// to any node, and recording every operation: invoked and completed on one monotonic clock, with its
/// answer, or as unknown when no definite answer came. About half the swaps (SET..GET: those whose write
/// number is even) go as a transaction instead, `MULTI`, `GET`, `SET`, `EXEC` in one pipeline: one log entry whose read the node answers while
/// it applies it, checked by the same rules.
///
/// Some writes carry a large value (`largeValueBytes`, above the WAL's hand-over size), so that a node's
/// WAL writes the next group while the previous one is being synced, the state a power cut must be able to
/// hit. A large value is its short name, `:`, and padding that the name determines, incompressible; the
/// history holds only the name, and a read whose padding differs records the value as corrupt.
///
/// A write answered `-TRYAGAIN` (the server says it was not applied) is a definite failure and left out of
/// the history; any other error, a timeout or a lost connection leaves it unknown. A read that fails is left
/// out. After an unknown outcome the client reconnects to another node. Keys are renamed every
/// `keyRotationSeconds`, so that each key's history stays short enough to check.
final class Workload: Sendable {
    struct Options {
        var clients = 6
        var keys = 4
        var keyRotationSeconds = 3.0
        var timeoutSeconds = 2.0
        /// Of every 100 writes, how many carry a large value.
        var largeWritesPercent = 5
    }

    /// Above `WAL.handOverBytesMin` (64 KiB), so that a group holding one goes to the sync stage.
    static let largeValueBytes = 96 << 10

    struct Counts {
        var ok = 0
        var writesAcknowledged = 0
        var failed = 0
        var unknown = 0
    }

    private let cluster: Cluster.Addresses
    private let options: Options
    private let seed: UInt64
    private let history = Mutex<[ClientOperation]>([])
    private let counts = Mutex(Counts())

    init(cluster: Cluster.Addresses, options: Options, seed: UInt64) {
        self.cluster = cluster
        self.options = options
        self.seed = seed
    }

    var operations: [ClientOperation] { history.withLock { $0 } }
    var tally: Counts { counts.withLock { $0 } }

    /// Runs the clients until `deadline` (monotonic nanoseconds); returns once all have stopped.
    func run(until deadline: UInt64) {
        let start = monotonicNow()
        let done = DispatchGroup()
        for client in 0..<options.clients {
            done.enter()
            // Threads start in the namespace of the thread that makes them: the driver's.
            Thread.detachNewThread { [self] in
                runClient(client, start: start, deadline: deadline)
                done.leave()
            }
        }
        done.wait()
    }

    private func runClient(_ id: Int, start: UInt64, deadline: UInt64) {
        var random = SplitMix64(seed: seed ^ (UInt64(id + 1) &* 0x9E37_79B9_7F4A_7C15))
        var node = Int(random.below(UInt64(cluster.nodes))) + 1
        var connection: RESPClient?
        var written = 0
        while monotonicNow() < deadline {
            guard let client = connection ?? cluster.client(node, timeoutSeconds: options.timeoutSeconds) else {
                node = node % cluster.nodes + 1
                Thread.sleep(forTimeInterval: 0.05)
                continue
            }
            connection = client
            let epoch = Int(Double(monotonicNow() - start) / 1e9 / options.keyRotationSeconds)
            let key = "k\(epoch)-\(random.below(UInt64(options.keys)))"
            let value = "c\(id)-\(written)"
            let roll = random.below(100)
            let action: ClientOperation.Action = roll < 40 ? .read : roll < 75 ? .write(value) : roll < 90 ? .swap(value) : .delete
            if case .read = action {} else { written += 1 }
            let large = options.largeWritesPercent > 0 && action != .read && random.below(100) < options.largeWritesPercent
            let invoked = monotonicNow()
            let reply: RESPClient.Reply?
            do {
                if case .swap = action, written.isMultiple(of: 2) {
                    let set = command(for: action, key: key, large: large).dropLast()
                    reply = Self.swapReply(ofTransaction: try client.pipeline([["MULTI"], ["GET", key], Array(set), ["EXEC"]]))
                } else {
                    reply = try client.call(command(for: action, key: key, large: large))
                }
            } catch { reply = nil }
            let completed = monotonicNow()
            guard let reply, let result = Self.result(of: reply, for: action) else {
                // No definite answer: unknown for a write, nothing for a read; try another node.
                if case .read = action {} else {
                    record(ClientOperation(client: id, key: key, action: action, result: .unknown, invokedAt: invoked, completedAt: nil), .unknown)
                }
                connection = nil
                node = node % cluster.nodes + 1
                continue
            }
            switch result {
            case .failed: counts.withLock { $0.failed += 1 }
            case .answered(let answer):
                record(ClientOperation(client: id, key: key, action: action, result: answer, invokedAt: invoked, completedAt: completed), answer)
            }
        }
    }

    private func record(_ operation: ClientOperation, _ result: ClientOperation.Result) {
        history.withLock { $0.append(operation) }
        counts.withLock { counts in
            if result == .unknown { counts.unknown += 1 } else { counts.ok += 1 }
            if result != .unknown, operation.action != .read { counts.writesAcknowledged += 1 }
        }
    }

    func command(for action: ClientOperation.Action, key: String, large: Bool = false) -> [String] {
        switch action {
        case .read: ["GET", key]
        case .write(let value): ["SET", key, large ? Self.largeValue(named: value) : value]
        case .swap(let value): ["SET", key, large ? Self.largeValue(named: value) : value, "GET"]
        case .delete: ["DEL", key]
        }
    }

    /// `name`, `:`, and `largeValueBytes` of hex digits drawn from a generator seeded by the name.
    static func largeValue(named name: String) -> String {
        var random = SplitMix64(seed: name.utf8.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 })
        let digits = Array("0123456789abcdef".utf8)
        var padding = [UInt8](repeating: 0, count: largeValueBytes)
        for position in stride(from: 0, to: largeValueBytes, by: 16) {
            let word = random.next()
            for nibble in 0..<16 where position + nibble < largeValueBytes { padding[position + nibble] = digits[Int(word >> (4 * UInt64(nibble)) & 0xF)] }
        }
        return name + ":" + String(decoding: padding, as: UTF8.self)
    }

    /// The value a read returned, as the history records it: a large value by its name, or marked corrupt
    /// if its padding is not what its name determines.
    static func recorded(_ bytes: [UInt8]) -> String {
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { return String(decoding: bytes, as: UTF8.self) }
        let name = String(decoding: bytes[..<colon], as: UTF8.self)
        return Array(largeValue(named: name).utf8) == bytes ? name : "corrupt large value of \(name) (\(bytes.count) bytes)"
    }

    /// What a swap sent as `MULTI`, `GET`, `SET`, `EXEC` amounts to, as `SET ... GET` would reply: the old
    /// value, or EXEC's error as it came; nil (unknown) for anything else.
    static func swapReply(ofTransaction replies: [RESPClient.Reply]) -> RESPClient.Reply? {
        guard replies.count == 4, replies[0] == .simple("OK"), replies[1] == .simple("QUEUED"), replies[2] == .simple("QUEUED") else { return nil }
        switch replies[3] {
        case .array(let results) where results.count == 2 && results[1] == .simple("OK"):
            if case .bulk = results[0] { return results[0] } else { return nil }
        case .error: return replies[3]
        default: return nil
        }
    }

    enum Outcome { case answered(ClientOperation.Result), failed }

    /// What a reply says about an operation: its answer, a definite failure, or nil (unknown).
    static func result(of reply: RESPClient.Reply, for action: ClientOperation.Action) -> Outcome? {
        switch (action, reply) {
        case (.read, .bulk(let bytes)), (.swap, .bulk(let bytes)):
            return .answered(.value(bytes.map(recorded)))
        case (.write, .simple("OK")): return .answered(.ok)
        case (.delete, .integer(let count)): return .answered(.existed(count > 0))
        case (.read, .error): return .failed
        case (_, .error(let message)) where message.hasPrefix("TRYAGAIN"): return .failed
        default: return nil
        }
    }
}

/// Nanoseconds of the monotonic clock, shared by every thread.
func monotonicNow() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}
