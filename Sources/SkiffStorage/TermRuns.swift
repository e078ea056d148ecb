import SkiffRaft

/// The term of every index in a contiguous log, stored as runs: terms change rarely, so this stays small.
package struct TermRuns: Sendable {
    /// (first index of the run, its term), ascending by index and by term.
    private var runs: [(first: UInt64, term: UInt64)] = []
    package private(set) var lastIndex: UInt64 = 0

    package var isEmpty: Bool { runs.isEmpty }

    package init() {}

    package mutating func append(index: UInt64, term: UInt64) {
        precondition(runs.isEmpty || index == lastIndex + 1, "term runs must grow contiguously: \(index) after \(lastIndex)")
        if let last = runs.last, last.term == term {
            // same run
        } else {
            precondition(runs.last.map { $0.term <= term } ?? true, "terms in a log never decrease: \(term) at \(index)")
            runs.append((index, term))
        }
        lastIndex = index
    }

    /// The term of `index`, or nil if it is not in the log.
    package func term(at index: UInt64) -> UInt64? {
        guard let first = runs.first, index >= first.first, index <= lastIndex else { return nil }
        var low = 0, high = runs.count - 1
        while low < high {  // last run whose first <= index
            let mid = (low + high + 1) / 2
            if runs[mid].first <= index { low = mid } else { high = mid - 1 }
        }
        return runs[low].term
    }

    /// Drops every index above `index`.
    package mutating func truncate(after index: UInt64) {
        guard !runs.isEmpty, index < lastIndex else { return }
        while let last = runs.last, last.first > index { runs.removeLast() }
        lastIndex = runs.isEmpty ? 0 : index
    }

    /// Drops every index below `index`.
    package mutating func removePrefix(below index: UInt64) {
        guard let first = runs.first, index > first.first else { return }
        if index > lastIndex { runs.removeAll(); lastIndex = 0; return }
        while runs.count > 1 && runs[1].first <= index { runs.removeFirst() }
        runs[0].first = index
    }
}
