import SkiffKV
import Testing

/// The state machine's replies and effects, command by command, in Redis's terms.
@Suite struct KVStoreTests {
    static func b(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func setHonoursItsConditionsAndReturnsTheOldValue() {
        let store = KVStore()
        #expect(store.apply(.set(key: Self.b("k"), value: Self.b("1"), condition: .ifPresent, returnOld: false), at: 1) == .null)
        #expect(!store.contains(Self.b("k")))
        #expect(store.apply(.set(key: Self.b("k"), value: Self.b("1"), condition: .ifAbsent, returnOld: false), at: 2) == .ok)
        #expect(store.apply(.set(key: Self.b("k"), value: Self.b("2"), condition: .ifAbsent, returnOld: false), at: 3) == .null)
        #expect(store.apply(.set(key: Self.b("k"), value: Self.b("3"), condition: .always, returnOld: true), at: 4) == .bulk(Self.b("1")))
        #expect(store.value(for: Self.b("k")) == Self.b("3"))
        #expect(store.entry(for: Self.b("k"))?.revision == 4)
        // NX with GET: the old value comes back and nothing is written.
        #expect(store.apply(.set(key: Self.b("k"), value: Self.b("4"), condition: .ifAbsent, returnOld: true), at: 5) == .bulk(Self.b("3")))
        #expect(store.value(for: Self.b("k")) == Self.b("3"))
    }

    @Test func multiKeyCommandsApplyAsAWhole() {
        let store = KVStore()
        let pairs = [KVCommand.KeyValue(key: Self.b("a"), value: Self.b("1")), KVCommand.KeyValue(key: Self.b("b"), value: Self.b("2"))]
        #expect(store.apply(.setMany(pairs), at: 1) == .ok)
        #expect(store.apply(.setManyIfNoneExist([KVCommand.KeyValue(key: Self.b("c"), value: Self.b("3")), pairs[0]]), at: 2) == .integer(0))
        #expect(!store.contains(Self.b("c")))
        #expect(store.apply(.setManyIfNoneExist([KVCommand.KeyValue(key: Self.b("c"), value: Self.b("3"))]), at: 3) == .integer(1))
        #expect(store.apply(.delete(keys: [Self.b("a"), Self.b("nope"), Self.b("c")]), at: 4) == .integer(2))
        #expect(store.count == 1)
        #expect(store.apply(.removeAll, at: 5) == .ok)
        #expect(store.count == 0)
    }

    @Test func aTransactionAppliesItsWritesInOrderAtOneRevisionUnlessAWatchedKeyChanged() {
        let store = KVStore()
        _ = store.apply(.set(key: Self.b("a"), value: Self.b("1"), condition: .always, returnOld: false), at: 1)
        let writes: [KVCommand] = [.incrementBy(key: Self.b("a"), delta: 1), .append(key: Self.b("a"), value: Self.b("x")),
                                   .incrementBy(key: Self.b("a"), delta: 1), .set(key: Self.b("b"), value: Self.b("2"), condition: .always, returnOld: false)]
        var seen: [(Int, [UInt8]?)] = []
        let reply = store.applyTransaction(watched: [.init(key: Self.b("a"), revision: 1), .init(key: Self.b("b"), revision: 0)], writes: writes, at: 2) {
            seen.append(($0, store.value(for: Self.b("a"))))
        }
        // A write's error (INCRBY on "2x") does not stop the others, as in Redis.
        #expect(reply == .many([.integer(2), .integer(2), .error("ERR value is not an integer or out of range"), .ok]))
        #expect(seen.map(\.0) == [0, 1, 2, 3, 4])
        #expect(seen.map(\.1) == [Self.b("1"), Self.b("2"), Self.b("2x"), Self.b("2x"), Self.b("2x")])
        #expect(store.entry(for: Self.b("a"))?.revision == 2 && store.entry(for: Self.b("b"))?.revision == 2)
        // Both watched keys have changed since: nothing applies, and nothing runs between writes.
        var calls = 0
        #expect(store.applyTransaction(watched: [.init(key: Self.b("b"), revision: 0)], writes: [.removeAll], at: 3) { _ in calls += 1 } == .null)
        #expect(store.apply(.transaction(watched: [.init(key: Self.b("a"), revision: 1)], writes: [.removeAll]), at: 3) == .null)
        #expect(calls == 0 && store.count == 2)
        // A watched key that was removed has changed too; one watched as absent and still absent has not.
        _ = store.apply(.delete(keys: [Self.b("b")]), at: 4)
        #expect(store.apply(.transaction(watched: [.init(key: Self.b("b"), revision: 2)], writes: [.removeAll]), at: 5) == .null)
        #expect(store.apply(.transaction(watched: [.init(key: Self.b("b"), revision: 0), .init(key: Self.b("a"), revision: 2)],
                                         writes: [.removeAll]), at: 6) == .many([.ok]))
        #expect(store.count == 0)
    }

    @Test func countersFollowRedisRules() {
        let store = KVStore()
        #expect(store.apply(.incrementBy(key: Self.b("n"), delta: 5), at: 1) == .integer(5))
        #expect(store.apply(.incrementBy(key: Self.b("n"), delta: -7), at: 2) == .integer(-2))
        #expect(store.value(for: Self.b("n")) == Self.b("-2"))
        #expect(store.apply(.incrementBy(key: Self.b("n"), delta: .min), at: 3) == .error("ERR increment or decrement would overflow"))
        for bad in [" 1", "01", "1.5", "", "abc", "-0", "+1", "99999999999999999999"] {
            _ = store.apply(.set(key: Self.b("s"), value: Self.b(bad), condition: .always, returnOld: false), at: 4)
            #expect(store.apply(.incrementBy(key: Self.b("s"), delta: 1), at: 5) == .error("ERR value is not an integer or out of range"), "value \(bad)")
        }
        #expect(store.apply(.incrementByFloat(key: Self.b("f"), delta: 10.5), at: 6) == .bulk(Self.b("10.5")))
        #expect(store.apply(.incrementByFloat(key: Self.b("f"), delta: 0.1), at: 7) == .bulk(Self.b("10.6")))
        #expect(store.apply(.incrementByFloat(key: Self.b("f"), delta: -0.6), at: 8) == .bulk(Self.b("10")))
        #expect(store.apply(.incrementByFloat(key: Self.b("f"), delta: .greatestFiniteMagnitude), at: 9) != .error("ERR value is not a valid float"))
        #expect(store.apply(.incrementByFloat(key: Self.b("f"), delta: .greatestFiniteMagnitude), at: 10) == .error("ERR increment would produce NaN or Infinity"))
        _ = store.apply(.set(key: Self.b("s"), value: Self.b("nan"), condition: .always, returnOld: false), at: 11)
        #expect(store.apply(.incrementByFloat(key: Self.b("s"), delta: 1), at: 12) == .error("ERR value is not a valid float"))
    }

    @Test func stringEditing() {
        let store = KVStore()
        #expect(store.apply(.append(key: Self.b("s"), value: Self.b("Hello")), at: 1) == .integer(5))
        #expect(store.apply(.append(key: Self.b("s"), value: Self.b(" World")), at: 2) == .integer(11))
        #expect(store.apply(.setRange(key: Self.b("s"), offset: 6, value: Self.b("Redis")), at: 3) == .integer(11))
        #expect(store.value(for: Self.b("s")) == Self.b("Hello Redis"))
        #expect(store.apply(.setRange(key: Self.b("z"), offset: 3, value: Self.b("x")), at: 4) == .integer(4))
        #expect(store.value(for: Self.b("z")) == [0, 0, 0, UInt8(ascii: "x")])
        #expect(store.apply(.setRange(key: Self.b("empty"), offset: 3, value: []), at: 5) == .integer(0))
        #expect(!store.contains(Self.b("empty")))
        #expect(store.apply(.setRange(key: Self.b("big"), offset: KVStore.valueBytesMax, value: Self.b("x")), at: 6)
                == .error("ERR string exceeds maximum allowed size (proto-max-bulk-len)"))
        #expect(store.apply(.getDelete(key: Self.b("s")), at: 7) == .bulk(Self.b("Hello Redis")))
        #expect(store.apply(.getDelete(key: Self.b("s")), at: 8) == .null)
    }

    @Test func rename() {
        let store = KVStore()
        #expect(store.apply(.rename(from: Self.b("a"), to: Self.b("b"), onlyIfTargetAbsent: false), at: 1) == .error("ERR no such key"))
        _ = store.apply(.setMany([.init(key: Self.b("a"), value: Self.b("1")), .init(key: Self.b("c"), value: Self.b("3"))]), at: 2)
        #expect(store.apply(.rename(from: Self.b("a"), to: Self.b("c"), onlyIfTargetAbsent: true), at: 3) == .integer(0))
        #expect(store.apply(.rename(from: Self.b("a"), to: Self.b("b"), onlyIfTargetAbsent: true), at: 4) == .integer(1))
        #expect(store.apply(.rename(from: Self.b("b"), to: Self.b("c"), onlyIfTargetAbsent: false), at: 5) == .ok)
        #expect(store.value(for: Self.b("c")) == Self.b("1") && store.count == 1)
        #expect(store.apply(.rename(from: Self.b("c"), to: Self.b("c"), onlyIfTargetAbsent: false), at: 6) == .ok)
        #expect(store.value(for: Self.b("c")) == Self.b("1"))
    }

    /// A full SCAN returns every key exactly once when nothing changes, and every key present throughout at
    /// least once when keys come and go between calls.
    @Test func scanCoversEveryKeyWhileOthersComeAndGo() {
        let store = KVStore()
        for i in 0..<1000 { _ = store.apply(.set(key: Self.b("key:\(i)"), value: [], condition: .always, returnOld: false), at: UInt64(i + 1)) }
        func fullScan(count: Int, during change: (Int) -> Void = { _ in }) -> [[UInt8]] {
            var cursor: UInt64 = 0
            var seen: [[UInt8]] = []
            var calls = 0
            repeat {
                let (next, keys) = store.scan(cursor: cursor, count: count, pattern: nil)
                seen += keys
                cursor = next
                change(calls)
                calls += 1
            } while cursor != 0 && calls < 10_000
            return seen
        }
        let all = fullScan(count: 7)
        #expect(all.count == 1000 && Set(all).count == 1000)
        let churned = fullScan(count: 10) { call in
            _ = store.apply(.delete(keys: [Self.b("key:\(500 + call)")]), at: 2000)
            _ = store.apply(.set(key: Self.b("new:\(call)"), value: [], condition: .always, returnOld: false), at: 2000)
        }
        let stable = Set((0..<500).map { Self.b("key:\($0)") })
        #expect(stable.isSubset(of: Set(churned)))
        let matched = store.scan(cursor: 0, count: 100_000, pattern: GlobPattern(Self.b("key:1?"))).keys
        #expect(Set(matched) == Set((10..<20).map { Self.b("key:\($0)") }))
    }

    @Test(arguments: [
        ("*", "anything", true), ("h?llo", "hello", true), ("h?llo", "hllo", false), ("h*llo", "heeeello", true),
        ("h[ae]llo", "hallo", true), ("h[ae]llo", "hillo", false), ("h[^e]llo", "hallo", true), ("h[^e]llo", "hello", false),
        ("h[a-b]llo", "hbllo", true), ("h[a-b]llo", "hcllo", false), ("a\\*b", "a*b", true), ("a\\*b", "axb", false),
        ("*:*:end", "x:y:z:end", true), ("*a", "bbb", false), ("", "", true), ("a*", "", false), ("**", "", true),
    ])
    func globPatterns(pattern: String, subject: String, expected: Bool) {
        #expect(GlobPattern(Self.b(pattern)).matches(Self.b(subject)) == expected)
    }
}
