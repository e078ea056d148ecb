/// A command's words as the parser reads them, with accessors that refuse a bad argument in Redis's words.
struct CommandArguments {
    let words: [[UInt8]]
    /// The name error messages use: lowercased, with the subcommand after a `|` (`client|setname`).
    private(set) var name: String

    init(_ words: [[UInt8]]) {
        precondition(!words.isEmpty, "a command has at least its name")
        self.words = words
        name = Self.lowercased(words[0])
    }

    var count: Int { words.count }

    subscript(position: Int) -> [UInt8] { words[position] }

    /// The same words, named as the subcommand that `words[1]` is.
    var subcommand: CommandArguments {
        var named = self
        named.name += "|" + word(at: 1)
        return named
    }

    /// The words from `position` on.
    func words(from position: Int) -> [[UInt8]] { Array(words[position...]) }

    /// The word at `position`, lowercased: an option or subcommand name.
    func word(at position: Int) -> String { Self.lowercased(words[position]) }

    /// The word at `position` as it came, for error messages.
    func text(at position: Int) -> String { String(decoding: words[position], as: UTF8.self) }

    /// Exactly `expected` words, the name included.
    func requireCount(_ expected: Int) throws(RESPCommandError) {
        guard count == expected else { throw .wrongArity(name) }
    }

    /// A number of words, the name included, within `allowed`.
    func requireCount(_ allowed: some RangeExpression<Int>) throws(RESPCommandError) {
        guard allowed.contains(count) else { throw .wrongArity(name) }
    }

    func integer(at position: Int) throws(RESPCommandError) -> Int64 {
        guard let value = Self.parseInteger(words[position]) else { throw .notAnInteger }
        return value
    }

    func float(at position: Int) throws(RESPCommandError) -> Double {
        guard let value = Self.parseFloat(words[position]) else { throw RESPCommandError("ERR value is not a valid float") }
        return value
    }

    static func lowercased(_ word: [UInt8]) -> String { String(decoding: word, as: UTF8.self).lowercased() }

    static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    /// A decimal integer as Redis reads one: an optional minus and digits, no leading zeros, no spaces, no
    /// `-0`, within Int64.
    static func parseInteger(_ bytes: [UInt8]) -> Int64? {
        let digits = bytes.first == UInt8(ascii: "-") ? bytes.dropFirst() : bytes[...]
        guard let first = digits.first, digits.count <= 19, digits.allSatisfy(isDigit),
              first != UInt8(ascii: "0") || bytes == [UInt8(ascii: "0")] else { return nil }
        return Int64(String(decoding: bytes, as: UTF8.self))
    }

    /// A finite decimal number: digits, sign, point and exponent only, so no spaces, `inf`, `nan` or hex.
    static func parseFloat(_ bytes: [UInt8]) -> Double? {
        let allowed = Array("+-.eE".utf8)
        guard !bytes.isEmpty, bytes.count <= 5000, bytes.allSatisfy({ isDigit($0) || allowed.contains($0) }),
              let value = Double(String(decoding: bytes, as: UTF8.self)), value.isFinite else { return nil }
        return value
    }
}

extension RESPCommandError {
    static let syntax = RESPCommandError("ERR syntax error")
    static let notAnInteger = RESPCommandError("ERR value is not an integer or out of range")

    static func wrongArity(_ name: String) -> RESPCommandError {
        RESPCommandError("ERR wrong number of arguments for '\(name)' command", abortsTransaction: true)
    }

    /// The same words for a count that COMMAND's arity allows but the command does not (PING with two
    /// arguments, MSET with a key left without a value): Redis finds it only when it runs the command.
    static func wrongArityWhenRun(_ name: String) -> RESPCommandError {
        RESPCommandError("ERR wrong number of arguments for '\(name)' command")
    }

    /// Redis's wording: the name and the first arguments (up to about 128 bytes), each quoted and followed
    /// by a space, with line breaks turned into spaces.
    static func unknownCommand(_ words: [[UInt8]]) -> RESPCommandError {
        var message = Array("ERR unknown command '".utf8)
        message += words[0].prefix(128)
        message += Array("', with args beginning with: ".utf8)
        var argumentBytes = 0
        for word in words.dropFirst() {
            guard argumentBytes < 128 else { break }
            var quoted: [UInt8] = [UInt8(ascii: "'")]
            quoted += word.prefix(128 - argumentBytes)
            quoted += [UInt8(ascii: "'"), UInt8(ascii: " ")]
            message += quoted
            argumentBytes += quoted.count
        }
        let oneLine = message.map { $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") ? UInt8(ascii: " ") : $0 }
        return RESPCommandError(String(decoding: oneLine, as: UTF8.self), abortsTransaction: true)
    }

    /// Redis's wording for a container command (CLIENT, CONFIG, COMMAND) given a subcommand it lacks.
    static func unknownSubcommand(_ arguments: CommandArguments) -> RESPCommandError {
        let text = String(decoding: arguments[1].prefix(128), as: UTF8.self)
        return RESPCommandError("ERR unknown subcommand '\(text)'. Try \(arguments.text(at: 0).uppercased()) HELP.", abortsTransaction: true)
    }
}
