@testable import SkiffServer
import SkiffRESP
import Testing

/// What INFO and COMMAND report: the command table (redis-cli completes and checks arity from it) against
/// the parser, and the figures INFO formats.
@Suite struct InfoReportTests {
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

    @Test func bytesAreWrittenAsRedisWritesThem() {
        #expect(InfoReport.humanBytes(0) == "0B")
        #expect(InfoReport.humanBytes(1023) == "1023B")
        #expect(InfoReport.humanBytes(1024) == "1.00K")
        #expect(InfoReport.humanBytes(1536) == "1.50K")
        #expect(InfoReport.humanBytes(30_564_352) == "29.15M")
        #expect(InfoReport.humanBytes(1_048_575) == "1024.00K")
        #expect(InfoReport.humanBytes(3 << 30) == "3.00G")
        #expect(InfoReport.humanBytes(1_052_000) == "1.00M")
        #expect(InfoReport.humanBytes(1_057_000) == "1.01M")
    }

    @Test func residentMemoryIsReadFromProcStatus() {
        let memory = ProcessMemory.parse("Name:\tskiff\nVmHWM:\t   64500 kB\nVmRSS:\t   30000 kB\nThreads:\t5\n")
        #expect(memory.resident == 30000 * 1024 && memory.peak == 64500 * 1024)
        #expect(ProcessMemory.parse("nothing here").resident == 0)
        #expect(ProcessMemory.current().resident > 0)  // this test process has some
    }
}
