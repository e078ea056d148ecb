/// Decides whether a history of single-key operations is linearizable: whether every operation can be given
/// one instant between its invocation and its completion such that, in that order, each key behaves as a
/// register (`Register`) and every operation answered what the register held.
///
/// Keys are independent, so each is checked alone. For one key it is the search of Wing and Gong with
/// Lowe's memoisation, as Porcupine does it: walk the invocations and completions in time order; at an
/// invocation, try to linearize that operation now (its answer must fit the state); at the completion of
/// one not yet linearized, undo the last choice and try the next. A (set of linearized operations, state)
/// pair already explored is never explored again. An operation with an unknown result completes after
/// everything else, and fits any state; a read with an unknown result is left out, as it changes nothing.
/// So is a write (or swap) with an unknown result whose value nothing saw, when no delete that could come
/// after it found the key present: wherever it took effect, only writes followed before the next
/// observation, so leaving it out changes no answer. Unknown outcomes are what make the search explode (each
/// stays open to the end), and most of them are such writes.
///
/// Guarantee: `.linearizable` and `.violation` are exact answers; a key whose search exceeds the step
/// budget is reported as undecided, never as either.
public enum LinearizabilityChecker {
    public struct Report: Sendable {
        public var keys = 0
        public var operations = 0
        public var violations: [Violation] = []
        /// Keys whose search ran out of steps.
        public var undecided: [String] = []
        public var isLinearizable: Bool { violations.isEmpty && undecided.isEmpty }
    }

    /// A key with no linearization, with its operations in invocation order and the longest prefix the
    /// search could linearize (where it got stuck is what to look at first).
    public struct Violation: Sendable {
        public var key: String
        public var operations: [ClientOperation]
        public var longestLinearization: [ClientOperation]
    }

    /// Checks every key of `history`, which starts from an empty store, in at most `stepsPerKey` search steps each.
    public static func check(_ history: [ClientOperation], stepsPerKey: Int = 5_000_000) -> Report {
        check(history, stepsPerKey: stepsPerKey, prunesUnknowns: true)
    }

    /// `check`, optionally without leaving out unknown operations (to test that leaving them out changes no verdict).
    static func check(_ history: [ClientOperation], stepsPerKey: Int, prunesUnknowns: Bool) -> Report {
        var report = Report()
        let byKey = Dictionary(grouping: history, by: \.key)
        for key in byKey.keys.sorted() {
            let kept = prunesUnknowns ? withoutUnobservedUnknowns(byKey[key]!) : byKey[key]!
            let operations = kept.sorted { $0.invokedAt < $1.invokedAt }
            report.keys += 1
            report.operations += operations.count
            var search = Search(operations)
            switch search.run(stepsMax: stepsPerKey) {
            case true?: break
            case false?:
                report.violations.append(Violation(key: key, operations: operations,
                                                   longestLinearization: search.longest.map { operations[$0] }))
            case nil: report.undecided.append(key)
            }
        }
        return report
    }
}

extension LinearizabilityChecker {
    /// `operations` (of one key) less those with unknown results that cannot change any answer (see above).
    static func withoutUnobservedUnknowns(_ operations: [ClientOperation]) -> [ClientOperation] {
        var seen = Set<String>()
        var presentFoundBy: [UInt64] = []  // completion times of deletes that found the key (max if unknown)
        for operation in operations {
            if case .value(let value?) = operation.result { seen.insert(value) }
            if operation.action == .delete, operation.result != .existed(false) { presentFoundBy.append(operation.completedAt ?? .max) }
        }
        return operations.filter { operation in
            guard operation.result == .unknown else { return true }
            switch operation.action {
            case .read: return false
            case .delete: return true
            case .write(let value), .swap(let value):
                return seen.contains(value) || presentFoundBy.contains { $0 >= operation.invokedAt }
            }
        }
    }
}

/// The search for one key over a doubly linked list of events, from which linearized operations are lifted
/// (and put back when the search backtracks).
private struct Search {
    /// Event `2i` is operation i's invocation, `2i + 1` its completion; the list links them in time order
    /// after a head node (index `head`).
    private var next: [Int]
    private var previous: [Int]
    private let head: Int
    private let operations: [ClientOperation]
    /// The deepest stack of linearized operations seen.
    private(set) var longest: [Int] = []

    init(_ operations: [ClientOperation]) {
        self.operations = operations
        // Completions of unknown operations come after every other event; at equal times, invocations first
        // (operations that touch in time count as concurrent).
        let order = (0..<(2 * operations.count)).sorted { a, b in
            let times = [a, b].map { event in
                event % 2 == 0 ? operations[event / 2].invokedAt : operations[event / 2].completedAt ?? .max
            }
            return (times[0], a % 2, a) < (times[1], b % 2, b)
        }
        head = 2 * operations.count
        next = [Int](repeating: -1, count: head + 1)
        previous = [Int](repeating: -1, count: head + 1)
        var last = head
        for event in order {
            next[last] = event
            previous[event] = last
            last = event
        }
    }

    /// True if linearizable, false if not, nil if the search took more than `stepsMax` steps.
    mutating func run(stepsMax: Int) -> Bool? {
        var state: String? = nil
        var linearized = Bitset(count: operations.count)
        var stack: [(operation: Int, stateBefore: String?)] = []
        var explored = Set<Explored>()
        var event = next[head]
        var steps = 0
        while next[head] != -1 {
            steps += 1
            if steps > stepsMax { return nil }
            let operation = event / 2
            if event != -1, event % 2 == 0 {
                let step = Register.apply(operations[operation], to: state)
                var after = linearized
                after.insert(operation)
                if step.fits, explored.insert(Explored(linearized: after, state: step.next)).inserted {
                    stack.append((operation, state))
                    state = step.next
                    linearized = after
                    lift(operation)
                    if stack.count > longest.count { longest = stack.map(\.operation) }
                    event = next[head]
                    continue
                }
                event = next[event]
            } else {
                // The completion of an operation not linearized yet (or the end): undo the last choice.
                guard let (undone, stateBefore) = stack.popLast() else { return false }
                state = stateBefore
                linearized.remove(undone)
                unlift(undone)
                event = next[2 * undone]
            }
        }
        return true
    }

    private mutating func lift(_ operation: Int) {
        for event in [2 * operation, 2 * operation + 1] {
            next[previous[event]] = next[event]
            if next[event] != -1 { previous[next[event]] = previous[event] }
        }
    }

    /// Puts back what `lift` took out, in reverse order: the neighbours it saved are the right ones again.
    private mutating func unlift(_ operation: Int) {
        for event in [2 * operation + 1, 2 * operation] {
            next[previous[event]] = event
            if next[event] != -1 { previous[next[event]] = event }
        }
    }
}

private struct Explored: Hashable {
    var linearized: Bitset
    var state: String?
}

private struct Bitset: Hashable {
    private var words: [UInt64]
    init(count: Int) { words = [UInt64](repeating: 0, count: (count + 63) / 64) }
    mutating func insert(_ bit: Int) { words[bit / 64] |= 1 << UInt64(bit % 64) }
    mutating func remove(_ bit: Int) { words[bit / 64] &= ~(1 << UInt64(bit % 64)) }
}
