/// One batch of work the core hands its owner. The owner may take the next Ready before this one is
/// persisted (so that the next batch's messages leave, and entries committed meanwhile are applied, while
/// the disk is busy); Readys are persisted in the order they were taken and each is advanced once it is
/// durable, in the same order. For each Ready the owner must:
/// 1. send `messages` at once (they are the leader's appends and heartbeats: a leader counts itself towards
///    commitment only once its own entries are durable);
/// 2. apply `committedEntries` in order (they are durable on a majority, though maybe not yet here: a
///    snapshot of the state machine must not cover entries beyond `RaftCore.persistedIndex`), and serve
///    `readStates` once their index is applied;
/// 3. install `snapshot` if set, then persist `hardState` and `entries`, after every earlier Ready's, durably
///    when `mustSync` says so (if the first entry's index is at or below the last index written, truncate
///    the written log after `entries[0].index - 1` first). The entries must be durable no later than the
///    hard state: in one atomic write, or entries first, since the hard state's commit index may cover them.
///    A Ready with a snapshot carries no committed entries and is never out together with another one;
/// 4. once this Ready and every earlier one are durable, send `messagesAfterPersist` (votes and
///    acknowledgements, which promise what was persisted) and call `RaftCore.advance(_:)` with it.
public struct Ready: Sendable {
    public var hardState: HardState?
    public var snapshot: RaftSnapshot?
    public var entries: [Entry]
    public var committedEntries: [Entry]
    public var messages: [Message]
    public var messagesAfterPersist: [Message]
    public var readStates: [ReadState]
    /// Set when the core wants the external log's tail before it campaigns.
    public var externalTailRequest: ExternalTailRequest?
    /// Whether the hard state's term or vote differs from the one in the previous Ready.
    var termOrVoteChanged: Bool
    /// The order in which the core handed it out, which is the order of `advance`.
    var sequence: UInt64

    /// Whether anything here must be durable before step 4: entries, a snapshot, or a new term or vote. A hard
    /// state that differs from the previous one only in its commit index promises nothing to anyone; it
    /// may be written with the next entries, or not at all (as in etcd): a restarted node learns the commit
    /// index again from the leader or, alone, by committing an entry of its new term.
    public var mustSync: Bool { !entries.isEmpty || snapshot != nil || termOrVoteChanged }
}
