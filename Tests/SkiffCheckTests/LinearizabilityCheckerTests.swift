@testable import SkiffCheck
import SkiffRaft
import Testing

/// An operation on key "k" (unless given) over [invoked, completed]; no completion for an unknown result.
func op(_ client: Int, _ action: ClientOperation.Action, _ result: ClientOperation.Result, _ invoked: UInt64, _ completed: UInt64?,
        key: String = "k") -> ClientOperation {
    ClientOperation(client: client, key: key, action: action, result: result, invokedAt: invoked, completedAt: completed)
}

func check(_ history: [ClientOperation]) -> LinearizabilityChecker.Report { LinearizabilityChecker.check(history) }

/// Histories known to be linearizable, and the classic ways of not being so.
@Suite struct LinearizabilityCheckerTests {
    @Test func aSequentialHistoryOfEveryKindOfOperationIsLinearizable() {
        let report = check([
            op(1, .read, .value(nil), 0, 1), op(1, .write("a"), .ok, 2, 3), op(2, .read, .value("a"), 4, 5),
            op(2, .swap("b"), .value("a"), 6, 7), op(1, .delete, .existed(true), 8, 9), op(2, .delete, .existed(false), 10, 11),
            op(1, .read, .value(nil), 12, 13),
        ])
        #expect(report.isLinearizable && report.keys == 1 && report.operations == 7)
    }

    /// A read that overlaps a write may see either value; two overlapping writes may land in either order.
    @Test func concurrentOperationsMayTakeEffectInEitherOrder() {
        let write = op(1, .write("1"), .ok, 0, 10)
        #expect(check([write, op(2, .read, .value(nil), 1, 5)]).isLinearizable)
        #expect(check([write, op(2, .read, .value("1"), 1, 5)]).isLinearizable)
        // Both writes overlap; the later read sees the one that was invoked first, so it went second.
        #expect(check([op(1, .write("a"), .ok, 0, 10), op(2, .write("b"), .ok, 1, 9), op(3, .read, .value("a"), 11, 12)]).isLinearizable)
        // A read may see the value of a write that is still in progress, and a later read must then see it too.
        #expect(!check([write, op(2, .read, .value("1"), 1, 2), op(3, .read, .value(nil), 3, 4)]).isLinearizable)
    }

    /// The stale read: a read that starts after a write completed returns what was there before it.
    @Test func aStaleReadIsCaught() {
        let report = check([op(1, .write("1"), .ok, 0, 1), op(1, .write("2"), .ok, 2, 3), op(2, .read, .value("1"), 4, 5)])
        #expect(!report.isLinearizable && report.violations.map(\.key) == ["k"])
        #expect(report.violations.first?.longestLinearization.count == 2)
    }

    /// The lost update: two read-modify-writes that overlap both saw the same value, so one overwrote the
    /// other without seeing it.
    @Test func aLostUpdateIsCaught() {
        let start = op(1, .write("x"), .ok, 0, 1)
        #expect(!check([start, op(2, .swap("y"), .value("x"), 2, 10), op(3, .swap("z"), .value("x"), 3, 11)]).isLinearizable)
        #expect(check([start, op(2, .swap("y"), .value("x"), 2, 10), op(3, .swap("z"), .value("y"), 3, 11)]).isLinearizable)
    }

    @Test func aValueNobodyWroteOrADeleteThatMissedTheKeyIsCaught() {
        #expect(!check([op(1, .write("1"), .ok, 0, 1), op(2, .read, .value("7"), 2, 3)]).isLinearizable)
        #expect(!check([op(1, .write("1"), .ok, 0, 1), op(2, .delete, .existed(false), 2, 3)]).isLinearizable)
    }

    /// A write whose outcome is unknown may never have happened, or may happen at any time after it was
    /// invoked; but once a read saw it, it cannot be undone.
    @Test func aWriteWithAnUnknownOutcomeMayOrMayNotTakeEffect() {
        let known = op(1, .write("1"), .ok, 0, 1)
        let unknown = op(2, .write("2"), .unknown, 2, nil)
        #expect(check([known, unknown, op(3, .read, .value("1"), 5, 6)]).isLinearizable)
        #expect(check([known, unknown, op(3, .read, .value("2"), 5, 6)]).isLinearizable)
        #expect(check([known, unknown, op(3, .read, .value("1"), 5, 6), op(3, .read, .value("2"), 7, 8)]).isLinearizable)
        #expect(!check([known, unknown, op(3, .read, .value("2"), 5, 6), op(3, .read, .value("1"), 7, 8)]).isLinearizable)
        // Not before it was invoked.
        #expect(!check([known, op(3, .read, .value("2"), 0, 1), unknown]).isLinearizable)
        // A read with an unknown outcome says nothing.
        #expect(check([known, op(3, .read, .unknown, 2, nil)]).operations == 1)
    }

    @Test func keysAreCheckedApartAndOnlyTheBrokenOneIsReported() {
        let report = check([
            op(1, .write("1"), .ok, 0, 1, key: "a"), op(2, .read, .value("1"), 2, 3, key: "a"),
            op(1, .write("1"), .ok, 0, 1, key: "b"), op(2, .read, .value(nil), 2, 3, key: "b"),
        ])
        #expect(report.keys == 2 && report.violations.map(\.key) == ["b"] && report.undecided.isEmpty)
    }

    @Test func aSearchOverItsBudgetIsUndecidedNeverAVerdict() {
        let history = (0..<12).map { op($0, .write("\($0)"), .ok, 0, 100) } + [op(99, .read, .value("nothing"), 101, 102)]
        let report = LinearizabilityChecker.check(history, stepsPerKey: 50)
        #expect(report.undecided == ["k"] && report.violations.isEmpty && !report.isLinearizable)
        #expect(LinearizabilityChecker.check(history).violations.map(\.key) == ["k"])
    }

    /// Histories made by a real register, each operation taking effect at a random instant within its
    /// interval (some outcomes unknown, some of those never taking effect), are linearizable; changing one
    /// read to a value nobody wrote makes them not.
    @Test(arguments: 0..<100)
    func historiesFromARegisterPassAndACorruptedReadFails(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let history = randomHistory(&random, clients: 4, operationsPerClient: 25)
        let report = check(history)
        #expect(report.isLinearizable, "seed \(seed): \(report.violations.first?.operations.map(\.description) ?? [])")
        let reads = history.indices.filter { history[$0].action == .read && history[$0].result != .unknown }
        guard !reads.isEmpty else { return }
        let victim = reads[Int(random.below(UInt64(reads.count)))]
        var corrupted = history
        corrupted[victim].result = .value("never written")
        #expect(check(corrupted).violations.count == 1, "seed \(seed)")
    }

    /// Operations that touch in time (one completes when the other is invoked) count as concurrent.
    @Test func operationsThatTouchAreConcurrent() {
        #expect(check([op(1, .write("1"), .ok, 0, 5), op(2, .read, .value(nil), 5, 6)]).isLinearizable)
        #expect(!check([op(1, .write("1"), .ok, 0, 5), op(2, .read, .value(nil), 6, 7)]).isLinearizable)
    }

    /// Leaving out unknown operations is exact: on register histories with one read changed to another
    /// value written to the key (which may or may not break them), the verdict is the same without it.
    @Test func leavingOutUnknownsChangesNoVerdict() {
        var (pruned, broken) = (0, 0)
        for seed: UInt64 in 0..<150 {
            var random = SplitMix64(seed: seed ^ 0xABCD)
            var history = randomHistory(&random, clients: 3, operationsPerClient: 12)
            let values = history.compactMap { operation -> String? in
                switch operation.action {
                case .write(let value), .swap(let value): value
                default: nil
                }
            }
            let reads = history.indices.filter { history[$0].action == .read && history[$0].result != .unknown }
            if !reads.isEmpty, !values.isEmpty {
                history[reads[Int(random.below(UInt64(reads.count)))]].result = .value(values[Int(random.below(UInt64(values.count)))])
            }
            let withPruning = LinearizabilityChecker.check(history, stepsPerKey: 5_000_000, prunesUnknowns: true)
            let without = LinearizabilityChecker.check(history, stepsPerKey: 5_000_000, prunesUnknowns: false)
            #expect(withPruning.undecided.isEmpty && without.undecided.isEmpty)
            #expect(withPruning.isLinearizable == without.isLinearizable, "seed \(seed)")
            if withPruning.operations < without.operations { pruned += 1 }
            if !without.isLinearizable { broken += 1 }
        }
        // The comparison means something only if both happened often.
        #expect(pruned >= 20 && broken >= 20, "pruned in \(pruned) histories, \(broken) not linearizable")
    }

    /// Leaving out an unknown write nothing saw changes no verdict: here it is what explains a delete that
    /// found the key, so it stays.
    @Test func anUnknownWriteIsLeftOutOnlyWhenNothingCouldHaveSeenIt() {
        let unseen = op(2, .write("v"), .unknown, 2, nil)
        let start = [op(1, .write("a"), .ok, 0, 1), op(1, .delete, .existed(true), 3, 4)]
        #expect(LinearizabilityChecker.withoutUnobservedUnknowns(start + [unseen]).count == 3)
        #expect(check(start + [unseen, op(1, .delete, .existed(true), 5, 6)]).isLinearizable)
        #expect(!check(start + [op(1, .delete, .existed(true), 5, 6)]).isLinearizable)
        let noDelete = [op(1, .write("a"), .ok, 0, 1), unseen, op(1, .read, .value("a"), 3, 4)]
        #expect(LinearizabilityChecker.withoutUnobservedUnknowns(noDelete).count == 2 && check(noDelete).isLinearizable)
    }
}

/// Client histories on one key from a register: each client runs its operations one after another, each
/// taking effect at an instant inside its interval; one in ten has an unknown outcome, and half of those
/// never take effect.
func randomHistory(_ random: inout SplitMix64, clients: Int, operationsPerClient: Int) -> [ClientOperation] {
    var planned: [(operation: ClientOperation, effectAt: UInt64?)] = []
    var written = 0
    for client in 0..<clients {
        var now = random.below(20)
        for _ in 0..<operationsPerClient {
            let action: ClientOperation.Action = switch random.below(4) {
            case 0: .read
            case 1: .delete
            case 2: .swap("\(client)-\(written)")
            default: .write("\(client)-\(written)")
            }
            written += 1
            let invoked = now
            let effect = invoked + random.below(30)
            let completed = effect + random.below(30)
            let unknown = random.below(10) == 0
            planned.append((ClientOperation(client: client, key: "k", action: action, result: unknown ? .unknown : .ok,
                                      invokedAt: invoked, completedAt: unknown ? nil : completed),
                            unknown && random.below(2) == 0 ? nil : effect))
            now = completed + 1 + random.below(10)
        }
    }
    // Apply in the order the operations took effect, recording what each answered.
    var state: String? = nil
    for position in planned.indices.sorted(by: { (planned[$0].effectAt ?? .max, $0) < (planned[$1].effectAt ?? .max, $1) }) {
        guard planned[position].effectAt != nil else { continue }
        let before = state
        switch planned[position].operation.action {
        case .read: planned[position].operation.result = .value(before)
        case .write(let value): state = value
        case .swap(let value): planned[position].operation.result = .value(before); state = value
        case .delete: planned[position].operation.result = .existed(before != nil); state = nil
        }
        if planned[position].operation.completedAt == nil { planned[position].operation.result = .unknown }
    }
    return planned.map(\.operation)
}
