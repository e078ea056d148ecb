/// One batch of work the core hands its owner. The owner must, in this order:
/// 1. send `messages` (they may leave before anything is persisted: they are the leader's appends and
///    heartbeats, and a leader counts itself towards commitment only once its own entries are durable);
/// 2. install `snapshot` if set, then persist `hardState` and `entries`, durably when `mustSync` says so (if
///    the first entry's index is at or below the last persisted one, truncate the persisted log after
///    `entries[0].index - 1` first).
///    The entries must be durable no later than the hard state: in one atomic write, or entries first, since
///    the hard state's commit index may cover them;
/// 3. send `messagesAfterPersist` (votes and acknowledgements, which promise what was just persisted);
/// 4. apply `committedEntries` in order, and serve `readStates` once their index is applied;
/// 5. call `RaftCore.advance(_:)` with this Ready.
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
    /// Whether the hard state's term or vote differs from the last one persisted.
    var termOrVoteChanged: Bool

    /// Whether anything here must be durable before step 3: entries, a snapshot, or a new term or vote. A hard
    /// state that differs from the last persisted one only in its commit index promises nothing to anyone; it
    /// may be written with the next entries, or not at all (as in etcd): a restarted node learns the commit
    /// index again from the leader or, alone, by committing an entry of its new term.
    public var mustSync: Bool { !entries.isEmpty || snapshot != nil || termOrVoteChanged }
}
