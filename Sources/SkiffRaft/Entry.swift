/// One record of the replicated log: what the leader proposed, at which position, in which term.
///
/// The payload is opaque to Raft; the state machine gives it meaning. `kind` tells Raft-internal
/// entries (the leader's no-op, configuration changes) from application commands.
public struct Entry: Hashable, Sendable {
    /// What an entry is for. Stored as one byte on disk; unknown values are rejected by decoders.
    public enum Kind: UInt8, Sendable, CaseIterable {
        /// An application command, applied to the state machine.
        case command = 0
        /// The empty entry a new leader appends to commit entries of earlier terms.
        case noop = 1
        /// A change of cluster membership.
        case configuration = 2
    }

    public var index: LogIndex
    public var term: Term
    public var kind: Kind
    public var payload: [UInt8]

    public init(index: LogIndex, term: Term, kind: Kind = .command, payload: [UInt8]) {
        self.index = index
        self.term = term
        self.kind = kind
        self.payload = payload
    }
}

/// The part of a node's Raft state that must survive a crash before it may answer anyone:
/// the current term, whom it voted for in that term, and how far it knows the log is committed.
public struct HardState: Hashable, Sendable, CustomStringConvertible {
    public var term: Term
    public var vote: NodeID
    public var commit: LogIndex

    public init(term: Term = .zero, vote: NodeID = .none, commit: LogIndex = .zero) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }

    public static let initial = HardState()
    public var description: String { "term=\(term) vote=\(vote) commit=\(commit)" }
}
