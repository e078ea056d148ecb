import SkiffExternal
import SkiffRaft

/// Raft's safety properties, checked incrementally as a simulation runs (each check is O(1) or O(new work)):
/// - election safety: at most one leader per term (counting leaders whose term and vote are durable);
/// - log matching: entries with the same index and term are the same entry, after the same previous term;
/// - leader completeness: a new leader holds every entry committed in an earlier term;
/// - state machine safety: every node applies the same entry at each index, in order;
/// - persisted hard state never goes back (term, a vote within a term, commit);
/// - a confirmed read is at or after every commit made before it was asked for;
/// - a node that knows it was removed never campaigns.
struct SafetyChecker {
    private var leaderOfTerm: [UInt64: NodeID] = [:]
    private var leaders = Set<NodeID>()
    /// (index, term) -> (the entry's kind and payload, the term of the entry before it).
    private var entries: [IndexTerm: (kind: Entry.Kind, payload: [UInt8], previousTerm: UInt64)] = [:]
    /// The applied log: index -> entry, for every index any node applied.
    private var applied: [UInt64: Entry] = [:]
    private(set) var appliedCount: UInt64 = 0
    private(set) var electionsWon = 0
    private var commitSeen: UInt64 = 0
    private var readFloor: [UInt64: UInt64] = [:]

    struct IndexTerm: Hashable { var index: UInt64; var term: UInt64 }

    mutating func checkLeaders(_ nodes: [SimulatedNode], step: Int) throws(SafetyViolation) {
        for node in nodes {
            if let core = node.core, core.isRemoved, core.role != .follower {
                throw SafetyViolation(step: step, invariant: "a removed node never campaigns", detail: "node \(node.id) is \(core.role) in term \(core.term)")
            }
            // A leader counts once its term and its vote for itself are durable. Before that it can send
            // nothing and commit nothing, and a crash makes it as if it never was: a single voter elects
            // itself in memory at once, and may restart in the term before and vote for someone else in it.
            guard let core = node.core, core.isLeader,
                  node.disk.hardState.term.rawValue == core.term, node.disk.hardState.vote == node.id
            else { leaders.remove(node.id); continue }
            if let other = leaderOfTerm[core.term], other != node.id {
                throw SafetyViolation(step: step, invariant: "election safety", detail: "nodes \(other) and \(node.id) both lead term \(core.term)")
            }
            leaderOfTerm[core.term] = node.id
            if leaders.insert(node.id).inserted {
                electionsWon += 1
                try checkCompleteness(core, step: step)
            }
        }
    }

    /// A leader of term T must hold every entry committed in a term before T (§5.4: Leader Completeness).
    /// A node can still win an old term late, say after a pause, from votes granted back then; it need not
    /// hold what later terms committed, and cannot commit anything itself since every quorum moved on.
    /// Entries below its snapshot point are in the snapshot.
    private func checkCompleteness(_ core: RaftCore, step: Int) throws(SafetyViolation) {
        guard committedThrough >= core.firstIndex.rawValue else { return }
        for index in core.firstIndex.rawValue...committedThrough {
            guard let known = committed[index], known.commitTerm < core.term else { continue }
            if core.term(at: LogIndex(index))?.rawValue != known.entryTerm {
                throw SafetyViolation(step: step, invariant: "leader completeness",
                                      detail: "leader \(core.id) of term \(core.term) lacks entry \(index) of term \(known.entryTerm), committed in term \(known.commitTerm)")
            }
        }
    }

    /// Checks entries just persisted (the disk already holds them) against every entry persisted anywhere.
    /// Only persisted logs count: an in-memory log that died with its node was never anyone's log.
    mutating func checkPersistedEntries(_ new: [Entry], disk: SimulatedDisk, node: NodeID, step: Int) throws(SafetyViolation) {
        let base = disk.snapshot?.index.rawValue ?? 0
        for entry in new {
            let index = entry.index.rawValue
            let previousTerm = index - 1 == base ? (disk.snapshot?.term.rawValue ?? 0) : disk.entries[Int(index - base - 2)].term.rawValue
            let key = IndexTerm(index: index, term: entry.term.rawValue)
            if let known = entries[key] {
                if known.kind != entry.kind || known.payload != entry.payload || known.previousTerm != previousTerm {
                    throw SafetyViolation(step: step, invariant: "log matching",
                                          detail: "node \(node) has a different entry at index \(index) term \(entry.term)")
                }
            } else {
                entries[key] = (entry.kind, entry.payload, previousTerm)
            }
        }
    }

    mutating func checkHardState(from old: HardState, to new: HardState, node: NodeID, step: Int) throws(SafetyViolation) {
        if new.term < old.term || new.commit < old.commit || (new.term == old.term && old.vote != .none && new.vote != old.vote) {
            throw SafetyViolation(step: step, invariant: "persisted state never goes back", detail: "node \(node): \(old) -> \(new)")
        }
    }

    /// Checks an entry applied by `node` (in term `nodeTerm`) against every entry applied anywhere at its index.
    mutating func checkApplied(_ entry: Entry, node: NodeID, nodeTerm: UInt64, after appliedIndex: UInt64, step: Int) throws(SafetyViolation) {
        let index = entry.index.rawValue
        guard index == appliedIndex + 1 else {
            throw SafetyViolation(step: step, invariant: "state machine safety", detail: "node \(node) applied \(index) after \(appliedIndex)")
        }
        if let known = applied[index] {
            if known != entry {
                throw SafetyViolation(step: step, invariant: "state machine safety",
                                      detail: "node \(node) applied a different entry at \(index): term \(entry.term) vs \(known.term)")
            }
        } else {
            applied[index] = entry
            appliedCount = max(appliedCount, index)
        }
        // A leader committed it in this node's term or earlier; if no leader was seen doing so (one that removed
        // itself steps down in the same step), this node's term is a safe upper bound for the completeness check.
        try record(index: index, entryTerm: entry.term.rawValue, commitTerm: nodeTerm, by: node, step: step)
        commitSeen = max(commitSeen, index)
    }

    /// Committed entries by index: the entry's term, and the (earliest known) term in which a leader committed it.
    private var committed: [UInt64: (entryTerm: UInt64, commitTerm: UInt64)] = [:]
    private var committedThrough: UInt64 = 0

    /// Records what a leader's commit index covers, and checks no committed index ever changes term. Called
    /// after every step of a node, so the term of each commit is exact.
    mutating func noteCommit(by core: RaftCore, step: Int) throws(SafetyViolation) {
        let commit = core.commitIndex.rawValue
        commitSeen = max(commitSeen, commit)
        // Indices at or below what was already recorded were checked when this leader was elected.
        let from = max(core.firstIndex.rawValue, committedThrough + 1)
        guard core.isLeader, commit >= from else { return }
        for index in from...commit {
            try record(index: index, entryTerm: core.term(at: LogIndex(index))!.rawValue, commitTerm: core.term, by: core.id, step: step)
        }
    }

    private mutating func record(index: UInt64, entryTerm: UInt64, commitTerm: UInt64, by node: NodeID, step: Int) throws(SafetyViolation) {
        if let known = committed[index] {
            if known.entryTerm != entryTerm {
                throw SafetyViolation(step: step, invariant: "committed entries never change",
                                      detail: "node \(node) has term \(entryTerm) at committed index \(index), committed before with term \(known.entryTerm)")
            }
            committed[index]!.commitTerm = min(known.commitTerm, commitTerm)
        } else {
            committed[index] = (entryTerm, commitTerm)
        }
        committedThrough = max(committedThrough, index)
    }

    /// Every committed entry must be in the external log (with `commitRequiresExternalLog`, a leader commits
    /// only what it holds, and it never loses an entry that was committed). Checked in full whenever the
    /// external log or the committed log changed.
    private var externalCheckedThrough: UInt64 = 0
    /// What was committed when the store was last replaced by an empty one: the new store holds those entries
    /// only once a leader has brought it up to date, which it must before it commits anything more.
    private var committedAtReplacement: UInt64 = 0

    mutating func externalStoreReplaced() {
        committedAtReplacement = committedThrough
        externalCheckedThrough = 0
    }

    mutating func checkExternalLog(_ view: ExternalLogView, snapshotIndex: UInt64, changed: Bool, step: Int) throws(SafetyViolation) {
        guard changed || committedThrough > externalCheckedThrough, committedThrough > 0 else { return }
        let base = view.baseIndex.rawValue
        if base > 0 {
            // Entries up to the base were trimmed: they must be committed, and in a snapshot in the store.
            guard base <= committedThrough, committed[base].map({ $0.entryTerm == view.baseTerm.rawValue }) ?? true,
                  base <= snapshotIndex else {
                throw SafetyViolation(step: step, invariant: "the external log is trimmed only behind committed, stored entries",
                                      detail: "it starts after \(view.baseIndex)/\(view.baseTerm); committed through \(committedThrough), "
                                          + "the stored snapshot reaches \(snapshotIndex)")
            }
        }
        guard committedThrough > committedAtReplacement else { return }
        for index in (base + 1)..<max(base + 1, committedThrough + 1) {
            guard let known = committed[index], view.term(at: LogIndex(index))?.rawValue != known.entryTerm else { continue }
            throw SafetyViolation(step: step, invariant: "committed entries are in the external log",
                                  detail: "index \(index) of term \(known.entryTerm) is committed, but the external log holds "
                                      + "\(view.term(at: LogIndex(index)).map { "term \($0)" } ?? "nothing") there (it ends at \(view.lastIndex))")
        }
        externalCheckedThrough = committedThrough
    }

    /// A reader that started at a checkpoint must reach the state of one that read every slot ever written,
    /// less the entries up to the checkpoint's base.
    func checkCheckpoint(_ view: ExternalLogView, against whole: ExternalLogView, step: Int) throws(SafetyViolation) {
        let same = view.nextSlot == whole.nextSlot && view.floor == whole.floor && view.lastWriterTerm == whole.lastWriterTerm
            && view.writerLastIndex == whole.writerLastIndex && view.lastIndex == whole.lastIndex && view.witnessTerm == whole.witnessTerm
            && (view.baseIndex.rawValue...view.lastIndex.rawValue).allSatisfy { view.term(at: LogIndex($0)) == whole.term(at: LogIndex($0)) }
        guard !same else { return }
        throw SafetyViolation(step: step, invariant: "a checkpoint stands for the slots it replaces",
                              detail: "from the checkpoint: slot \(view.nextSlot), floor \(view.floor), writer \(view.lastWriterTerm) "
                                  + "through \(view.writerLastIndex), last \(view.lastIndex)/\(view.lastTerm); from every slot: slot "
                                  + "\(whole.nextSlot), floor \(whole.floor), writer \(whole.lastWriterTerm) through \(whole.writerLastIndex), "
                                  + "last \(whole.lastIndex)/\(whole.lastTerm)")
    }

    /// A read asked for now must come back at or after every commit any node has made so far.
    mutating func noteReadRequested(_ id: UInt64, nodes: [SimulatedNode]) {
        let commits = nodes.compactMap { $0.core?.commitIndex.rawValue }
        readFloor[id] = max(commitSeen, commits.max() ?? 0)
    }

    mutating func checkRead(_ read: ReadState, step: Int) throws(SafetyViolation) {
        guard let index = read.index?.rawValue, let floor = readFloor.removeValue(forKey: read.requestID) else { return }
        if index < floor {
            throw SafetyViolation(step: step, invariant: "linearizable reads",
                                  detail: "read \(read.requestID) confirmed at \(index), but \(floor) was committed before it was asked")
        }
    }

    /// The ids of the commands in the applied log through `index`, in order: a snapshot's contents.
    func commandIDs(through index: UInt64) -> [UInt64] {
        guard index > 0 else { return [] }
        return (1...index).compactMap { position -> UInt64? in
            guard let entry = applied[position], entry.kind == .command else { return nil }
            return entry.payload.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        }
    }
}
