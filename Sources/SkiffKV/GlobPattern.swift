/// A Redis glob pattern, as KEYS and SCAN MATCH take it: `*` any run of bytes, `?` any one byte,
/// `[abc]`, `[^abc]` and `[a-z]` classes, and `\` to take the next byte literally. Matching works on bytes.
public struct GlobPattern: Sendable {
    let pattern: [UInt8]

    public init(_ pattern: [UInt8]) { self.pattern = pattern }

    /// `*` alone: KEYS can skip matching altogether.
    public var matchesEverything: Bool { pattern == [UInt8(ascii: "*")] }

    public func matches(_ subject: [UInt8]) -> Bool {
        var p = 0
        var s = 0
        // Where to resume after the last `*`: the pattern just past it, and the subject position it covers up to.
        var star: (pattern: Int, subject: Int)?
        while s < subject.count {
            if p < pattern.count, pattern[p] == UInt8(ascii: "*") {
                while p < pattern.count, pattern[p] == UInt8(ascii: "*") { p += 1 }
                if p == pattern.count { return true }
                star = (p, s)
                continue
            }
            if p < pattern.count, let next = matchOne(at: p, subject[s]) {
                p = next
                s += 1
                continue
            }
            guard let resume = star else { return false }
            star = (resume.pattern, resume.subject + 1)
            p = resume.pattern
            s = resume.subject + 1
        }
        while p < pattern.count, pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }

    /// If the pattern element at `p` matches `byte`, the position after that element.
    private func matchOne(at p: Int, _ byte: UInt8) -> Int? {
        switch pattern[p] {
        case UInt8(ascii: "?"):
            return p + 1
        case UInt8(ascii: "\\") where p + 1 < pattern.count:
            return pattern[p + 1] == byte ? p + 2 : nil
        case UInt8(ascii: "["):
            return matchClass(at: p, byte)
        default:
            return pattern[p] == byte ? p + 1 : nil
        }
    }

    /// A `[...]` class starting at `p`; an unclosed class runs to the end of the pattern, as in Redis.
    private func matchClass(at start: Int, _ byte: UInt8) -> Int? {
        var p = start + 1
        let negated = p < pattern.count && pattern[p] == UInt8(ascii: "^")
        if negated { p += 1 }
        var matched = false
        while p < pattern.count, pattern[p] != UInt8(ascii: "]") {
            if pattern[p] == UInt8(ascii: "\\"), p + 1 < pattern.count {
                if pattern[p + 1] == byte { matched = true }
                p += 2
            } else if p + 2 < pattern.count, pattern[p + 1] == UInt8(ascii: "-"), pattern[p + 2] != UInt8(ascii: "]") {
                let (low, high) = (min(pattern[p], pattern[p + 2]), max(pattern[p], pattern[p + 2]))
                if (low...high).contains(byte) { matched = true }
                p += 3
            } else {
                if pattern[p] == byte { matched = true }
                p += 1
            }
        }
        guard matched != negated else { return nil }
        return min(p + 1, pattern.count)
    }
}
