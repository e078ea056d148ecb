import SkiffKV
@testable import SkiffRESP
import Testing

/// Command parsing, every command and every refusal in Redis's words, and reads run against a store.
@Suite struct ClientCommandTests {
    static func b(_ text: String) -> [UInt8] { Array(text.utf8) }
    static func plain(_ command: KVCommand) -> ClientCommand { .write(command, reply: .plain) }
    static func pair(_ key: String, _ value: String) -> KVCommand.KeyValue { KVCommand.KeyValue(key: b(key), value: b(value)) }

    static func store(_ values: [String: String]) -> KVStore {
        let store = KVStore()
        for (key, value) in values {
            _ = store.apply(.set(key: b(key), value: b(value), condition: .always, returnOld: false), at: 1)
        }
        return store
    }

    // MARK: Parsing

    static let connectionCommands: [([String], ClientCommand)] = [
        (["PING"], .ping(message: nil)),
        (["ping", "hi"], .ping(message: b("hi"))),
        (["ECHO", "x y"], .echo(b("x y"))),
        (["HELLO"], .hello(HelloOptions())),
        (["HELLO", "2"], .hello(HelloOptions(protocolVersion: 2))),
        (["hello", "3", "auth", "u", "p", "SETNAME", "app"],
         .hello(HelloOptions(protocolVersion: 3, user: b("u"), password: b("p"), clientName: b("app")))),
        (["HELLO", "3", "SETNAME", "app", "AUTH", "u", "p"],
         .hello(HelloOptions(protocolVersion: 3, user: b("u"), password: b("p"), clientName: b("app")))),
        (["AUTH", "secret"], .auth(user: nil, password: b("secret"))),
        (["AUTH", "u", "secret"], .auth(user: b("u"), password: b("secret"))),
        (["SELECT", "0"], .select(0)),
        (["QUIT"], .quit),
        (["MULTI"], .multi),
        (["exec"], .exec),
        (["Discard"], .discard),
        (["WATCH", "a", "b c"], .watchKeys([b("a"), b("b c")])),
        (["UNWATCH"], .unwatch),
        (["READONLY"], .readOnly),
        (["readwrite"], .readWrite),
        (["CLIENT", "SETNAME", "app-1"], .client(.setName(b("app-1")))),
        (["client", "setname", ""], .client(.setName([]))),
        (["CLIENT", "GETNAME"], .client(.getName)),
        (["CLIENT", "ID"], .client(.id)),
        (["CLIENT", "SETINFO", "LIB-NAME", "redis-py"], .client(.setInfo)),
        (["CLIENT", "INFO"], .client(.info)),
        (["CLIENT", "LIST"], .client(.list(ids: nil))),
        (["client", "list", "type", "NORMAL"], .client(.list(ids: nil))),
        (["CLIENT", "LIST", "TYPE", "pubsub"], .client(.list(ids: []))),
        (["CLIENT", "LIST", "ID", "3", "7", "3", "-1"], .client(.list(ids: [3, 7, 3, -1]))),
        (["CLIENT", "KILL", "127.0.0.1:6000"], .client(.kill(ClientKillFilter(address: "127.0.0.1:6000", skipMe: false, oldForm: true)))),
        (["CLIENT", "KILL", "ID", "9"], .client(.kill(ClientKillFilter(id: 9)))),
        (["CLIENT", "KILL", "TYPE", "normal", "USER", "default"], .client(.kill(ClientKillFilter()))),
        (["CLIENT", "KILL", "ID", "9", "TYPE", "Replica"], .client(.kill(ClientKillFilter(id: 9, matchesNone: true)))),
        (["client", "kill", "addr", "127.0.0.1:6000", "LADDR", "127.0.0.1:7379", "skipme", "NO"],
         .client(.kill(ClientKillFilter(address: "127.0.0.1:6000", localAddress: "127.0.0.1:7379", skipMe: false)))),
    ]

    static let reads: [([String], ClientCommand)] = [
        (["GET", "k"], .read(.get(b("k")))),
        (["gEt", "k"], .read(.get(b("k")))),
        (["MGET", "a", "b"], .read(.mget([b("a"), b("b")]))),
        (["EXISTS", "a", "a"], .read(.exists([b("a"), b("a")]))),
        (["STRLEN", "k"], .read(.strlen(b("k")))),
        (["GETRANGE", "k", "-3", "-1"], .read(.getRange(b("k"), start: -3, end: -1))),
        (["SUBSTR", "k", "0", "9223372036854775807"], .read(.getRange(b("k"), start: 0, end: .max))),
        (["KEYS", "user:*"], .read(.keys(pattern: b("user:*")))),
        (["SCAN", "0"], .read(.scan(cursor: 0, pattern: nil, count: 10))),
        (["scan", "18446744073709551615", "match", "a*", "COUNT", "100", "TYPE", "STRING"],
         .read(.scan(cursor: .max, pattern: b("a*"), count: 100))),
        (["RANDOMKEY"], .read(.randomKey)),
        (["DBSIZE"], .read(.dbSize)),
        (["TYPE", "k"], .read(.type(b("k")))),
        (["TTL", "k"], .read(.timeToLive(b("k")))),
        (["pttl", "k"], .read(.timeToLive(b("k")))),
        (["EXPIRETIME", "k"], .read(.timeToLive(b("k")))),
        (["PEXPIRETIME", "k"], .read(.timeToLive(b("k")))),
        (["PERSIST", "k"], .read(.persist(b("k")))),
        (["TOUCH", "a", "a", "b"], .read(.exists([b("a"), b("a"), b("b")]))),
        (["GETEX", "k"], .read(.get(b("k")))),
        (["getex", "k", "Persist"], .read(.get(b("k")))),
    ]

    static let writes: [([String], ClientCommand)] = [
        (["SET", "k", "v"], plain(.set(key: b("k"), value: b("v"), condition: .always, returnOld: false))),
        (["set", "k", "v", "nx", "GET"], plain(.set(key: b("k"), value: b("v"), condition: .ifAbsent, returnOld: true))),
        (["SET", "k", "v", "XX"], plain(.set(key: b("k"), value: b("v"), condition: .ifPresent, returnOld: false))),
        (["SET", "k", "v", "KEEPTTL", "nx"], plain(.set(key: b("k"), value: b("v"), condition: .ifAbsent, returnOld: false))),
        (["SETNX", "k", "v"],
         .write(.set(key: b("k"), value: b("v"), condition: .ifAbsent, returnOld: false), reply: .setIfAbsentAsInteger)),
        (["GETSET", "k", "v"], plain(.set(key: b("k"), value: b("v"), condition: .always, returnOld: true))),
        (["GETDEL", "k"], plain(.getDelete(key: b("k")))),
        (["DEL", "a", "b"], plain(.delete(keys: [b("a"), b("b")]))),
        (["UNLINK", "a"], plain(.delete(keys: [b("a")]))),
        (["MSET", "a", "1", "b", "2"], plain(.setMany([pair("a", "1"), pair("b", "2")]))),
        (["MSETNX", "a", "1"], plain(.setManyIfNoneExist([pair("a", "1")]))),
        (["INCR", "n"], plain(.incrementBy(key: b("n"), delta: 1))),
        (["DECR", "n"], plain(.incrementBy(key: b("n"), delta: -1))),
        (["INCRBY", "n", "-5"], plain(.incrementBy(key: b("n"), delta: -5))),
        (["DECRBY", "n", "5"], plain(.incrementBy(key: b("n"), delta: -5))),
        (["DECRBY", "n", "9223372036854775807"], plain(.incrementBy(key: b("n"), delta: -9_223_372_036_854_775_807))),
        (["INCRBYFLOAT", "n", "2.5e2"], plain(.incrementByFloat(key: b("n"), delta: 250))),
        (["APPEND", "k", "v"], plain(.append(key: b("k"), value: b("v")))),
        (["SETRANGE", "k", "5", "xyz"], plain(.setRange(key: b("k"), offset: 5, value: b("xyz")))),
        (["SETRANGE", "k", "536870911", "x"], plain(.setRange(key: b("k"), offset: 536_870_911, value: b("x")))),
        (["SETRANGE", "k", "999999999999", ""], plain(.setRange(key: b("k"), offset: 999_999_999_999, value: []))),
        (["RENAME", "a", "b"], plain(.rename(from: b("a"), to: b("b"), onlyIfTargetAbsent: false))),
        (["RENAMENX", "a", "b"], plain(.rename(from: b("a"), to: b("b"), onlyIfTargetAbsent: true))),
        (["FLUSHDB"], plain(.removeAll)),
        (["FLUSHALL", "async"], plain(.removeAll)),
        (["flushall", "SYNC"], plain(.removeAll)),
    ]

    static let serverCommands: [([String], ClientCommand)] = [
        (["INFO"], .info(sections: [])),
        (["INFO", "Server", "REPLICATION"], .info(sections: ["server", "replication"])),
        (["COMMAND"], .command(.list)),
        (["COMMAND", "COUNT"], .command(.count)),
        (["COMMAND", "DOCS", "get"], .command(.docs)),
        (["command", "info", "GET", "set"], .command(.info(["get", "set"]))),
        (["CONFIG", "GET", "maxmemory", "save"], .configGet(patterns: [b("maxmemory"), b("save")])),
        (["TIME"], .time),
        (["SKIFF.STATUS"], .skiffStatus),
        (["skiff.members"], .skiffMembers),
    ]

    static let parsedCommands: [([String], ClientCommand)] = connectionCommands + reads + writes + serverCommands

    @Test(arguments: ClientCommandTests.parsedCommands)
    func parses(words: [String], expected: ClientCommand) {
        let parsed: Result<ClientCommand, RESPCommandError> = .success(expected)
        #expect(ClientCommand.parse(words.map(Self.b)) == parsed)
    }

    static let notAnInteger = "ERR value is not an integer or out of range"
    static let expiry = "ERR key expiry is not supported by Skiff"
    static let clientName = "ERR Client names cannot contain spaces, newlines or special characters."

    static let refusals: [([String], String)] = [
        (["FOO"], "ERR unknown command 'FOO', with args beginning with: "),
        (["foo", "a", "b c"], "ERR unknown command 'foo', with args beginning with: 'a' 'b c' "),
        (["FOO", String(repeating: "x", count: 200), "next"],
         "ERR unknown command 'FOO', with args beginning with: '\(String(repeating: "x", count: 128))' "),
        (["BAD\r\nCMD", "a\nb"], "ERR unknown command 'BAD  CMD', with args beginning with: 'a b' "),
        (["GET"], "ERR wrong number of arguments for 'get' command"),
        (["MULTI", "x"], "ERR wrong number of arguments for 'multi' command"),
        (["EXEC", "x"], "ERR wrong number of arguments for 'exec' command"),
        (["WATCH"], "ERR wrong number of arguments for 'watch' command"),
        (["Get", "a", "b"], "ERR wrong number of arguments for 'get' command"),
        (["PING", "a", "b"], "ERR wrong number of arguments for 'ping' command"),
        (["ECHO"], "ERR wrong number of arguments for 'echo' command"),
        (["DBSIZE", "x"], "ERR wrong number of arguments for 'dbsize' command"),
        (["READONLY", "x"], "ERR wrong number of arguments for 'readonly' command"),
        (["SKIFF.STATUS", "x"], "ERR wrong number of arguments for 'skiff.status' command"),
        (["SELECT", "1"], "ERR DB index is out of range"),
        (["SELECT", "x"], notAnInteger),
        (["SELECT", "00"], notAnInteger),
        (["HELLO", "4"], "NOPROTO unsupported protocol version"),
        (["HELLO", "1"], "NOPROTO unsupported protocol version"),
        (["HELLO", "three"], "ERR Protocol version is not an integer or out of range"),
        (["HELLO", "3", "AUTH", "u"], "ERR Syntax error in HELLO option 'AUTH'"),
        (["HELLO", "3", "SETNAME", "a b"], clientName),
        (["AUTH"], "ERR wrong number of arguments for 'auth' command"),
        (["AUTH", "a", "b", "c"], "ERR syntax error"),
        (["GETRANGE", "k", "0", "x"], notAnInteger),
        (["GETRANGE", "k", "0"], "ERR wrong number of arguments for 'getrange' command"),
        (["SUBSTR", "k", "1"], "ERR wrong number of arguments for 'substr' command"),
        (["SCAN"], "ERR wrong number of arguments for 'scan' command"),
        (["SCAN", "-1"], "ERR invalid cursor"),
        (["SCAN", "abc"], "ERR invalid cursor"),
        (["SCAN", "18446744073709551616"], "ERR invalid cursor"),
        (["SCAN", "0", "COUNT", "0"], "ERR syntax error"),
        (["SCAN", "0", "COUNT", "x"], notAnInteger),
        (["SCAN", "0", "MATCH"], "ERR syntax error"),
        (["SCAN", "0", "LIMIT", "5"], "ERR syntax error"),
        (["SCAN", "0", "TYPE", "hash"], "ERR unknown type name 'hash'"),
        (["SET", "k"], "ERR wrong number of arguments for 'set' command"),
        (["SET", "k", "v", "NX", "XX"], "ERR syntax error"),
        (["SET", "k", "v", "XX", "NX"], "ERR syntax error"),
        (["SET", "k", "v", "BOGUS"], "ERR syntax error"),
        (["SET", "k", "v", "EX", "10"], "ERR expiry options (EX, PX, EXAT, PXAT) are not supported by Skiff"),
        (["set", "k", "v", "pxat", "10"], "ERR expiry options (EX, PX, EXAT, PXAT) are not supported by Skiff"),
        (["SETNX", "k"], "ERR wrong number of arguments for 'setnx' command"),
        (["MSET"], "ERR wrong number of arguments for 'mset' command"),
        (["MSET", "a"], "ERR wrong number of arguments for 'mset' command"),
        (["MSET", "a", "1", "b"], "ERR wrong number of arguments for 'mset' command"),
        (["msetnx", "a", "1", "b"], "ERR wrong number of arguments for 'msetnx' command"),
        (["INCRBY", "n", "1.5"], notAnInteger),
        (["INCRBY", "n", "9223372036854775808"], notAnInteger),
        (["DECRBY", "n", "-9223372036854775808"], "ERR decrement would overflow"),
        (["INCRBYFLOAT", "n", "abc"], "ERR value is not a valid float"),
        (["INCRBYFLOAT", "n", "inf"], "ERR value is not a valid float"),
        (["INCRBYFLOAT", "n", "1e400"], "ERR value is not a valid float"),
        (["INCRBYFLOAT", "n", " 1"], "ERR value is not a valid float"),
        (["SETRANGE", "k", "-1", "v"], "ERR offset is out of range"),
        (["SETRANGE", "k", "536870912", "v"], "ERR string exceeds maximum allowed size (proto-max-bulk-len)"),
        (["FLUSHALL", "NOW"], "ERR syntax error"),
        (["FLUSHDB", "ASYNC", "SYNC"], "ERR syntax error"),
        (["EXPIRE", "k", "10"], expiry),
        (["PEXPIRE", "k", "10"], expiry),
        (["EXPIREAT", "k", "10"], expiry),
        (["PEXPIREAT", "k", "10"], expiry),
        (["SETEX", "k", "10", "v"], expiry),
        (["PSETEX", "k", "10", "v"], expiry),
        (["GETEX", "k", "EX", "10"], "ERR expiry options (EX, PX, EXAT, PXAT) are not supported by Skiff"),
        (["getex", "k", "pxat", "1700000000000"], "ERR expiry options (EX, PX, EXAT, PXAT) are not supported by Skiff"),
        (["GETEX", "k", "EX"], "ERR syntax error"),
        (["GETEX", "k", "PERSIST", "x"], "ERR syntax error"),
        (["GETEX", "k", "KEEPTTL"], "ERR syntax error"),
        (["GETEX"], "ERR wrong number of arguments for 'getex' command"),
        (["TTL"], "ERR wrong number of arguments for 'ttl' command"),
        (["PTTL", "a", "b"], "ERR wrong number of arguments for 'pttl' command"),
        (["PERSIST"], "ERR wrong number of arguments for 'persist' command"),
        (["TOUCH"], "ERR wrong number of arguments for 'touch' command"),
        (["TIME", "x"], "ERR wrong number of arguments for 'time' command"),
        (["CLIENT", "LIST", "TYPE", "foo"], "ERR Unknown client type 'foo'"),
        (["CLIENT", "LIST", "ID", "1", "x"], "ERR Invalid client ID"),
        (["CLIENT", "LIST", "ID"], "ERR syntax error"),
        (["CLIENT", "LIST", "x"], "ERR syntax error"),
        (["CLIENT", "KILL"], "ERR wrong number of arguments for 'client|kill' command"),
        (["CLIENT", "KILL", "ID", "1", "SKIPME"], "ERR syntax error"),
        (["CLIENT", "KILL", "ID", "-1"], "ERR client-id should be greater than 0"),
        (["CLIENT", "KILL", "SKIPME", "maybe"], "ERR syntax error"),
        (["CLIENT", "KILL", "MAXAGE", "10"], "ERR syntax error"),
        (["CLIENT", "KILL", "TYPE", "robot"], "ERR Unknown client type 'robot'"),
        (["CLIENT", "KILL", "USER", "bob"], "ERR No such user 'bob'"),
        (["CLIENT"], "ERR wrong number of arguments for 'client' command"),
        (["CLIENT", "PAUSE", "x"], "ERR unknown subcommand 'PAUSE'. Try CLIENT HELP."),
        (["client", "pause"], "ERR unknown subcommand 'pause'. Try CLIENT HELP."),
        (["CLIENT", "SETNAME", "my app"], clientName),
        (["CLIENT", "SETNAME", "a\nb"], clientName),
        (["CLIENT", "SETNAME"], "ERR wrong number of arguments for 'client|setname' command"),
        (["CLIENT", "GETNAME", "x"], "ERR wrong number of arguments for 'client|getname' command"),
        (["CONFIG"], "ERR wrong number of arguments for 'config' command"),
        (["CONFIG", "SET", "a", "b"], "ERR unknown subcommand 'SET'. Try CONFIG HELP."),
        (["CONFIG", "GET"], "ERR wrong number of arguments for 'config|get' command"),
        (["COMMAND", "COUNT", "x"], "ERR wrong number of arguments for 'command|count' command"),
        (["COMMAND", "LIST"], "ERR unknown subcommand 'LIST'. Try COMMAND HELP."),
    ]

    @Test(arguments: ClientCommandTests.refusals)
    func refuses(words: [String], message: String) {
        let parsed = ClientCommand.parse(words.map(Self.b))
        guard case .failure(let error) = parsed else {
            Issue.record("parsed as \(parsed)")
            return
        }
        #expect(error.message == message)
    }

    /// The rule for parsed commands and the names used for refused ones say the same: a refusal of a command
    /// that may wait in a transaction waits in it too.
    @Test(arguments: ClientCommandTests.parsedCommands)
    func whatMayWaitInATransactionIsTheSameParsedOrRefused(words: [String], command: ClientCommand) {
        switch command {
        case .read, .write: return  // their refusals never abort on their name
        default: break
        }
        let name = words[0].lowercased()
        let clientKill = name == "client" && words[1].lowercased() == "kill"
        #expect(command.mayWaitInTransaction == (ClientCommand.transactionCommandNames.contains(name) && !clientKill))
    }

    @Test func refusalsThatAbortATransactionAreThoseRedisMakesBeforeQueueing() {
        func refusal(_ words: [String]) -> RESPCommandError? {
            if case .failure(let error) = ClientCommand.parse(words.map { Array($0.utf8) }) { error } else { nil }
        }
        #expect(refusal(["NOSUCH"])?.abortsTransaction == true)
        #expect(refusal(["GET"])?.abortsTransaction == true)
        #expect(refusal(["CLIENT", "NOSUCH"])?.abortsTransaction == true)
        #expect(refusal(["INCRBY", "k", "x"])?.abortsTransaction == false)
        #expect(refusal(["SET", "k", "v", "NX", "XX"])?.abortsTransaction == false)
        // Counts that COMMAND's arity allows: Redis finds them only when it runs the command.
        #expect(refusal(["PING", "a", "b"])?.abortsTransaction == false)
        #expect(refusal(["MSET", "a", "1", "b"])?.abortsTransaction == false)
        #expect(refusal(["SELECT", "1"])?.abortsTransaction == false)
        #expect(refusal(["SETEX", "k", "v"])?.abortsTransaction == true)
        #expect(refusal(["EXPIRE", "k", "10"])?.abortsTransaction == false)
        // Any refusal of a command that may not wait in a transaction aborts it.
        #expect(refusal(["SKIFF.WATCH", "p", "X", "1"])?.abortsTransaction == true)
        #expect(refusal(["SKIFF.PROMOTE"])?.abortsTransaction == true)
        #expect(refusal(["CLIENT", "KILL", "ID", "0"])?.abortsTransaction == true)
        // Those of a connection command that may wait are Redis's run-time errors.
        #expect(refusal(["CLIENT", "SETNAME", "a b"])?.abortsTransaction == false)
        #expect(refusal(["HELLO", "9"])?.abortsTransaction == false)
    }

    @Test func anErrorRepliesWithItsMessage() {
        #expect(RESPCommandError("ERR syntax error").reply == .error("ERR syntax error"))
    }

    @Test func writeRepliesFollowTheCommandTheClientSent() {
        #expect(WriteReplyStyle.plain.reply(for: .ok) == .ok)
        #expect(WriteReplyStyle.plain.reply(for: .null) == .null)
        #expect(WriteReplyStyle.plain.reply(for: .integer(7)) == .integer(7))
        #expect(WriteReplyStyle.plain.reply(for: .bulk(Self.b("old"))) == .bulk("old"))
        #expect(WriteReplyStyle.plain.reply(for: .error("ERR no such key")) == .error("ERR no such key"))
        #expect(WriteReplyStyle.setIfAbsentAsInteger.reply(for: .ok) == .integer(1))
        #expect(WriteReplyStyle.setIfAbsentAsInteger.reply(for: .null) == .integer(0))
        #expect(WriteReplyStyle.plain.reply(for: .many([.ok, .null, .integer(1)])) == .array([.ok, .null, .integer(1)]))
    }

    // MARK: Reads

    @Test func getRangeCountsNegativeOffsetsFromTheEndAndClamps() {
        let store = Self.store(["s": "This is a string"])
        let cases: [(start: Int64, end: Int64, expected: String)] = [
            (0, 3, "This"), (-3, -1, "ing"), (0, -1, "This is a string"), (10, 100, "string"), (5, 3, ""),
            (-100, 3, "This"), (-100, -200, ""), (16, 20, ""), (-1, -1, "g"), (0, .min, "T"), (.min, .max, "This is a string"),
        ]
        for c in cases {
            let reply = ReadCommand.getRange(Self.b("s"), start: c.start, end: c.end).execute(on: store)
            #expect(reply == .bulk(c.expected), "GETRANGE s \(c.start) \(c.end)")
        }
        #expect(ReadCommand.getRange(Self.b("absent"), start: 0, end: -1).execute(on: store) == .bulk(""))
        #expect(ReadCommand.getRange(Self.b("absent"), start: 0, end: 0).execute(on: store) == .bulk(""))
    }

    @Test func keyReads() {
        let store = Self.store(["a": "1", "b": "22"])
        #expect(ReadCommand.get(Self.b("b")).execute(on: store) == .bulk("22"))
        #expect(ReadCommand.get(Self.b("z")).execute(on: store) == .null)
        #expect(ReadCommand.mget([Self.b("a"), Self.b("z"), Self.b("b")]).execute(on: store) == .array([.bulk("1"), .null, .bulk("22")]))
        #expect(ReadCommand.exists([Self.b("a"), Self.b("a"), Self.b("z")]).execute(on: store) == .integer(2))
        #expect(ReadCommand.strlen(Self.b("b")).execute(on: store) == .integer(2))
        #expect(ReadCommand.strlen(Self.b("z")).execute(on: store) == .integer(0))
        #expect(ReadCommand.type(Self.b("a")).execute(on: store) == .simple("string"))
        #expect(ReadCommand.type(Self.b("z")).execute(on: store) == .simple("none"))
        #expect(ReadCommand.timeToLive(Self.b("a")).execute(on: store) == .integer(-1))
        #expect(ReadCommand.timeToLive(Self.b("z")).execute(on: store) == .integer(-2))
        #expect(ReadCommand.persist(Self.b("a")).execute(on: store) == .integer(0))
        #expect(ReadCommand.persist(Self.b("z")).execute(on: store) == .integer(0))
        #expect(ReadCommand.dbSize.execute(on: store) == .integer(2))
        #expect(ReadCommand.dbSize.execute(on: KVStore()) == .integer(0))
    }

    @Test func keysAndRandomKey() {
        let store = Self.store(["user:1": "a", "user:2": "b", "order:1": "c"])
        let reply = ReadCommand.keys(pattern: Self.b("user:*")).execute(on: store)
        guard case .array(let keys) = reply else {
            Issue.record("KEYS replied \(reply)")
            return
        }
        #expect(Set(keys) == Set([RESPValue.bulk("user:1"), RESPValue.bulk("user:2")]))
        #expect(ReadCommand.randomKey.execute(on: Self.store(["only": "1"])) == .bulk("only"))
        #expect(ReadCommand.randomKey.execute(on: KVStore()) == .null)
    }

    /// SCAN's reply split into the next cursor and the keys; nil if it is not shaped like SCAN's reply.
    static func scanPage(_ reply: RESPValue) -> (cursor: String, keys: [[UInt8]])? {
        guard case .array(let parts) = reply, parts.count == 2,
              case .bulk(let cursor) = parts[0], case .array(let values) = parts[1] else { return nil }
        var keys: [[UInt8]] = []
        for value in values {
            guard case .bulk(let key) = value else { return nil }
            keys.append(key)
        }
        return (String(decoding: cursor, as: UTF8.self), keys)
    }

    @Test func scanRepliesWithTheNextCursorAndTheKeysOfOnePage() throws {
        let store = Self.store(["k1": "1", "k2": "2", "k3": "3", "other": "4"])
        let whole = try #require(Self.scanPage(ReadCommand.scan(cursor: 0, pattern: nil, count: 10).execute(on: store)))
        #expect(whole.cursor == "0")
        #expect(Set(whole.keys) == Set(["k1", "k2", "k3", "other"].map(Self.b)))

        // COUNT 1 examines one key per call, so four calls cover four keys; MATCH filters what they return.
        var cursor: UInt64 = 0
        var seen: [[UInt8]] = []
        var calls = 0
        repeat {
            let page = try #require(Self.scanPage(ReadCommand.scan(cursor: cursor, pattern: Self.b("k*"), count: 1).execute(on: store)))
            cursor = try #require(UInt64(page.cursor))
            seen += page.keys
            calls += 1
        } while cursor != 0 && calls < 100
        #expect(calls == 4)
        #expect(seen.count == 3)
        #expect(Set(seen) == Set(["k1", "k2", "k3"].map(Self.b)))
    }
}
