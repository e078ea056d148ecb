/// A position in the replicated log. Index 0 means "before the first entry"; real entries start at 1.
///
/// A distinct type so that an index can never be passed where a term is expected.
public struct LogIndex: RawRepresentable, Comparable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    public static let zero = LogIndex(0)
    /// The index right after this one.
    public var next: LogIndex { LogIndex(rawValue + 1) }
    /// The index right before this one. Precondition: not zero.
    public var previous: LogIndex {
        precondition(rawValue > 0, "index 0 has no predecessor")
        return LogIndex(rawValue - 1)
    }
    public static func < (a: LogIndex, b: LogIndex) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// A Raft term: a logical clock that only grows. Term 0 is the term before any election.
public struct Term: RawRepresentable, Comparable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    public static let zero = Term(0)
    public static func < (a: Term, b: Term) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// The identity of one cluster member. Zero is reserved for "nobody" (no vote, no known leader).
public struct NodeID: RawRepresentable, Comparable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    public static let none = NodeID(0)
    public static func < (a: NodeID, b: NodeID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}
