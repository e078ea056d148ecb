@testable import SkiffServer
import SkiffRESP
import Testing

/// The table `COMMAND` reports (redis-cli completes and checks arity from it) against the parser.
@Suite struct CommandTableTests {
    /// Every command the table lists is one the parser knows, and takes the number of words the table
    /// says (exactly that many, or at least that many for a negative arity): never "unknown command" or
    /// "wrong number of arguments" for a call the table allows.
    @Test func everyListedCommandParsesWithTheArityListed() {
        for (name, arity, _, _, _) in InfoReport.commandTable {
            let words = [Array(name.utf8)] + Array(repeating: Array("0".utf8), count: abs(arity) - 1)
            if case .failure(let error) = ClientCommand.parse(words) {
                #expect(!error.message.hasPrefix("ERR unknown command"), "\(name) is listed but unknown")
                #expect(!error.message.hasPrefix("ERR wrong number of arguments"), "\(name) with \(words.count) words: \(error.message)")
            }
        }
    }

    @Test func theCommandsThatAskAboutExpiryAreListed() {
        let names = Set(InfoReport.commandTable.map(\.0))
        for name in ["ttl", "pttl", "expiretime", "pexpiretime", "persist", "getex", "touch", "time", "substr"] {
            #expect(names.contains(name), "\(name)")
        }
        #expect(names.count == InfoReport.commandTable.count, "a command is listed twice")
    }
}
