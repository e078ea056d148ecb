/// One client operation on one key of a key-value store, as a test driver recorded it: what was asked, when
/// it was invoked and when it completed (nanoseconds of one monotonic clock), and what came back.
///
/// An operation that failed definitely (the store said it did nothing) does not belong in a history. One
/// whose outcome is unknown (a timeout, a lost connection) does, with `result == .unknown` and no completion
/// time: it may have taken effect at any moment after it was invoked, or never.
public struct ClientOperation: Hashable, Sendable, CustomStringConvertible {
    public enum Action: Hashable, Sendable {
        /// GET: answers the value, or nil if the key is absent.
        case read
        /// SET: answers OK.
        case write(String)
        /// SET with GET, a read-modify-write: writes the value and answers the one it replaced.
        case swap(String)
        /// DEL: answers whether the key existed.
        case delete
    }

    public enum Result: Hashable, Sendable {
        case ok
        case value(String?)
        case existed(Bool)
        case unknown
    }

    public var client: Int
    public var key: String
    public var action: Action
    public var result: Result
    public var invokedAt: UInt64
    /// Nil exactly when the result is unknown.
    public var completedAt: UInt64?

    public init(client: Int, key: String, action: Action, result: Result, invokedAt: UInt64, completedAt: UInt64?) {
        precondition((result == .unknown) == (completedAt == nil), "only an operation with an unknown result has no completion time")
        precondition(completedAt.map { $0 >= invokedAt } ?? true, "an operation completes after it is invoked")
        self.client = client
        self.key = key
        self.action = action
        self.result = result
        self.invokedAt = invokedAt
        self.completedAt = completedAt
    }

    public var description: String {
        let action = switch self.action {
        case .read: "GET"
        case .write(let value): "SET \(value)"
        case .swap(let value): "SET \(value) GET"
        case .delete: "DEL"
        }
        let result = switch self.result {
        case .ok: "OK"
        case .value(let value): value ?? "(nil)"
        case .existed(let existed): existed ? "1" : "0"
        case .unknown: "unknown"
        }
        return "client \(client) \(key): \(action) -> \(result) [\(invokedAt), \(completedAt.map(String.init) ?? "...")]"
    }
}

/// The sequential specification of one key: a register that is absent (nil) or holds a value.
enum Register {
    /// Whether `operation`, applied to `state`, can have answered what it did, and the state after it. An
    /// unknown result fits any state.
    static func apply(_ operation: ClientOperation, to state: String?) -> (fits: Bool, next: String?) {
        let next: String? = switch operation.action {
        case .read: state
        case .write(let value), .swap(let value): value
        case .delete: nil
        }
        let fits = switch (operation.action, operation.result) {
        case (_, .unknown): true
        case (.read, .value(let seen)), (.swap, .value(let seen)): seen == state
        case (.write, .ok): true
        case (.delete, .existed(let existed)): existed == (state != nil)
        default: false
        }
        return (fits, next)
    }
}
