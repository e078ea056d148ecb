import SkiffRaft

/// Raft's safety properties, checked incrementally as a simulation runs (each check is O(1) or O(new work)):
/// - election safety: at most one leader per term;
/// - log matching: entries with the same index and term are the same entry, after the same previous term;
/// - leader completeness: a new leader holds every entry applied anywhere;
/// - state machine safety: every node applies the same entry at each index, in order;
/// - persisted hard state never goes back (term, a vote within a term, commit);
/// - a confirmed read is at or after every commit made before it was asked for.
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
            guard let core = node.core else { leaders.remove(node.id); continue }
            guard core.isLeader else { leaders.remove(node.id); continue }
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

    /// A new leader must hold every entry committed or applied anywhere (those below its snapshot point are
    /// in the snapshot).
    private func checkCompleteness(_ core: RaftCore, step: Int) throws(SafetyViolation) {
        let through = max(appliedCount, committedThrough)
        guard through >= core.firstIndex.rawValue else { return }
        for index in core.firstIndex.rawValue...through {
            guard let term = applied[index]?.term.rawValue ?? committedTerms[index] else { continue }
            if core.term(at: LogIndex(index))?.rawValue != term {
                throw SafetyViolation(step: step, invariant: "leader completeness",
                                      detail: "leader \(core.id) of term \(core.term) lacks committed entry \(index) of term \(term)")
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

    mutating func checkApplied(_ entry: Entry, node: NodeID, after appliedIndex: UInt64, step: Int) throws(SafetyViolation) {
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
        commitSeen = max(commitSeen, index)
    }

    /// Entries a leader has committed, by index: its term there. A later leader must hold every one.
    private var committedTerms: [UInt64: UInt64] = [:]
    private var committedThrough: UInt64 = 0

    /// Records what a leader's commit index covers, and checks no committed index ever changes term.
    mutating func noteCommit(by core: RaftCore, step: Int) throws(SafetyViolation) {
        let commit = core.commitIndex.rawValue
        commitSeen = max(commitSeen, commit)
        // Indices at or below what was already recorded were checked when this leader was elected.
        let from = max(core.firstIndex.rawValue, committedThrough + 1)
        guard core.isLeader, commit >= from else { return }
        for index in from...commit {
            let term = core.term(at: LogIndex(index))!.rawValue
            if let known = committedTerms[index], known != term {
                throw SafetyViolation(step: step, invariant: "committed entries never change",
                                      detail: "leader \(core.id) of term \(core.term) has term \(term) at committed index \(index), committed before with term \(known)")
            }
            committedTerms[index] = term
        }
        committedThrough = max(committedThrough, commit)
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
