@testable import SkiffKV
import Testing

/// Every command survives its log encoding; bad bytes are refused, never trapped on; a snapshot restores
/// the same key space whatever the pieces it arrives in.
@Suite struct KVEncodingTests {
    static let commands: [KVCommand] = [
        .set(key: [1, 2], value: Array("v".utf8), condition: .ifAbsent, returnOld: true),
        .delete(keys: [[1], [], [2, 3]]),
        .setMany([.init(key: [1], value: [2]), .init(key: [3], value: [])]),
        .setManyIfNoneExist([.init(key: [9], value: [8])]),
        .incrementBy(key: [1], delta: -42),
        .incrementByFloat(key: [1], delta: 2.5),
        .append(key: [1], value: [0, 255]),
        .setRange(key: [1], offset: 70_000, value: [7]),
        .getDelete(key: [5]),
        .rename(from: [1], to: [2], onlyIfTargetAbsent: true),
        .removeAll,
        .transaction(watched: [.init(key: [1], revision: 7), .init(key: [], revision: 0)],
                     writes: [.removeAll, .set(key: [1], value: [2], condition: .always, returnOld: false), .removeAll]),
        .transaction(watched: [], writes: []),
    ]

    @Test func everyCommandRoundTrips() {
        for (number, command) in Self.commands.enumerated() {
            let proposal = KVProposal(origin: 3, requestID: UInt64(number) << 40, command: command)
            #expect(KVProposal(decoding: proposal.encoded()) == proposal)
        }
    }

    @Test func truncatedOrExtendedBytesAreRefused() {
        for command in Self.commands {
            let bytes = KVProposal(origin: 1, requestID: 2, command: command).encoded()
            for cut in 0..<bytes.count { #expect(KVProposal(decoding: Array(bytes[..<cut])) == nil) }
            #expect(KVProposal(decoding: bytes + [0]) == nil)
        }
        var wrongVersion = KVProposal(origin: 1, requestID: 2, command: .removeAll).encoded()
        wrongVersion[0] = 2
        #expect(KVProposal(decoding: wrongVersion) == nil)
        // A list count far beyond the bytes left must not make the decoder reserve memory for it.
        var huge = KVProposal(origin: 1, requestID: 2, command: .delete(keys: [])).encoded()
        huge.replaceSubrange(18..<22, with: [0xFF, 0xFF, 0xFF, 0x7F])
        #expect(KVProposal(decoding: huge) == nil)
    }

    @Test func aTransactionInsideATransactionIsRefused() {
        // Hand-built, since encoding one traps: version, origin, request id, transaction (12), no watched keys,
        // one write: a transaction with nothing in it.
        let header: [UInt8] = [1] + Array(repeating: 0, count: 16) + [12, 0, 0, 0, 0, 1, 0, 0, 0]
        #expect(KVProposal(decoding: header + [12, 0, 0, 0, 0, 0, 0, 0, 0]) == nil)
        #expect(KVProposal(decoding: header + [11]) == .init(origin: 0, requestID: 0, command: .transaction(watched: [], writes: [.removeAll])))
    }

    @Test func logsShowATransactionAsItsCommands() {
        let transaction = KVCommand.transaction(watched: [.init(key: Array("a".utf8), revision: 5), .init(key: Array("b c".utf8), revision: 0)],
                                                writes: [.incrementBy(key: Array("a".utf8), delta: 1), .delete(keys: [Array("b c".utf8)])])
        #expect(transaction.description == #"WATCH a@5 "b\x20c"@0; MULTI; INCRBY a 1; DEL "b\x20c"; EXEC"#)
        #expect(KVCommand.transaction(watched: [], writes: []).description == "MULTI; EXEC")
    }

    @Test func snapshotsRestoreTheSameKeySpaceFromAnyPieces() throws {
        let store = KVStore()
        for i in 0..<300 { _ = store.apply(.set(key: Array("k\(i)".utf8), value: Array(repeating: UInt8(i & 0xFF), count: i), condition: .always, returnOld: false), at: UInt64(i + 1)) }
        var bytes: [UInt8] = []
        KVSnapshot.write(store, pieceBytes: 1000) { bytes += $0 }
        for pieceSize in [1, 7, 4096, bytes.count] {
            var decoder = KVSnapshotDecoder()
            var offset = 0
            while offset < bytes.count {
                try decoder.feed(bytes[offset..<min(offset + pieceSize, bytes.count)])
                offset += pieceSize
            }
            let restored = try decoder.finish()
            var again: [UInt8] = []
            KVSnapshot.write(restored, pieceBytes: 1000) { again += $0 }
            #expect(again == bytes)
            #expect(restored.entry(for: Array("k7".utf8))?.revision == 8)
        }
        var short = KVSnapshotDecoder()
        try short.feed(bytes.dropLast(3))
        #expect(throws: KVSnapshotDecoder.Malformed.self) { try short.finish() }
    }
}
