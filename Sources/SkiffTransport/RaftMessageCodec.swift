import NIOCore
import SkiffRaft

/// The wire form of a Raft `Message` (see the PeerProtocol article):
/// `u64 from | u64 to | u64 term | u8 kind | fields`, little-endian. An append's entries are
/// `u32 count`, then per entry `u64 term | u8 kind | u32 length | payload`; their indices follow from the
/// previous index. Decoding validates every length against the bytes present.
enum RaftMessageCodec {
    enum Kind: UInt8 {
        case append = 1, appendResponse, heartbeat, heartbeatResponse, requestVote, voteResponse, snapshot, timeoutNow,
             readIndex, readIndexResponse, removed
    }

    static func write(_ message: Message, to buffer: inout ByteBuffer) {
        buffer.writeInteger(message.from.rawValue, endianness: .little)
        buffer.writeInteger(message.to.rawValue, endianness: .little)
        buffer.writeInteger(message.term.rawValue, endianness: .little)
        func u64(_ value: UInt64) { buffer.writeInteger(value, endianness: .little) }
        func flag(_ value: Bool) { buffer.writeInteger(UInt8(value ? 1 : 0)) }
        switch message.kind {
        case .append(let previousIndex, let previousTerm, let entries, let commit):
            buffer.writeInteger(Kind.append.rawValue)
            u64(previousIndex.rawValue)
            u64(previousTerm.rawValue)
            u64(commit.rawValue)
            buffer.writeInteger(UInt32(entries.count), endianness: .little)
            for entry in entries {
                u64(entry.term.rawValue)
                buffer.writeInteger(entry.kind.rawValue)
                buffer.writeInteger(UInt32(entry.payload.count), endianness: .little)
                buffer.writeBytes(entry.payload)
            }
        case .appendResponse(let index, let rejected, let hintIndex, let hintTerm):
            buffer.writeInteger(Kind.appendResponse.rawValue)
            u64(index.rawValue)
            flag(rejected)
            u64(hintIndex.rawValue)
            u64(hintTerm.rawValue)
        case .heartbeat(let commit, let context):
            buffer.writeInteger(Kind.heartbeat.rawValue)
            u64(commit.rawValue)
            u64(context)
        case .heartbeatResponse(let context):
            buffer.writeInteger(Kind.heartbeatResponse.rawValue)
            u64(context)
        case .requestVote(let lastIndex, let lastTerm, let preVote, let leadershipTransfer):
            buffer.writeInteger(Kind.requestVote.rawValue)
            u64(lastIndex.rawValue)
            u64(lastTerm.rawValue)
            flag(preVote)
            flag(leadershipTransfer)
        case .voteResponse(let granted, let preVote):
            buffer.writeInteger(Kind.voteResponse.rawValue)
            flag(granted)
            flag(preVote)
        case .snapshot(let snapshot):
            buffer.writeInteger(Kind.snapshot.rawValue)
            u64(snapshot.index.rawValue)
            u64(snapshot.term.rawValue)
            let configuration = snapshot.configuration.encoded()
            buffer.writeInteger(UInt32(configuration.count), endianness: .little)
            buffer.writeBytes(configuration)
        case .timeoutNow:
            buffer.writeInteger(Kind.timeoutNow.rawValue)
        case .readIndex(let requestID):
            buffer.writeInteger(Kind.readIndex.rawValue)
            u64(requestID)
        case .readIndexResponse(let requestID, let index):
            buffer.writeInteger(Kind.readIndexResponse.rawValue)
            u64(requestID)
            flag(index != nil)
            u64(index?.rawValue ?? 0)
        case .removed(let configurationIndex):
            buffer.writeInteger(Kind.removed.rawValue)
            u64(configurationIndex.rawValue)
        }
    }

    /// Decodes one message that fills `buffer` exactly; nil for anything else.
    static func read(from buffer: inout ByteBuffer) -> Message? {
        func u64() -> UInt64? { buffer.readInteger(endianness: .little, as: UInt64.self) }
        func flag() -> Bool? {
            switch buffer.readInteger(as: UInt8.self) {
            case 0: false
            case 1: true
            default: nil
            }
        }
        guard let from = u64(), let to = u64(), let term = u64(),
              let kind = buffer.readInteger(as: UInt8.self).flatMap(Kind.init(rawValue:)) else { return nil }
        let decoded: Message.Kind
        switch kind {
        case .append:
            guard let previousIndex = u64(), let previousTerm = u64(), let commit = u64(),
                  let count = buffer.readInteger(endianness: .little, as: UInt32.self), Int(count) <= buffer.readableBytes / 13
            else { return nil }
            var entries: [Entry] = []
            entries.reserveCapacity(Int(count))
            for offset in 0..<UInt64(count) {
                guard let entryTerm = u64(), let entryKind = buffer.readInteger(as: UInt8.self).flatMap(Entry.Kind.init(rawValue:)),
                      let length = buffer.readInteger(endianness: .little, as: UInt32.self),
                      let payload = buffer.readBytes(length: Int(length)) else { return nil }
                entries.append(Entry(index: LogIndex(previousIndex + 1 + offset), term: Term(entryTerm), kind: entryKind, payload: payload))
            }
            decoded = .append(previousIndex: LogIndex(previousIndex), previousTerm: Term(previousTerm), entries: entries, commit: LogIndex(commit))
        case .appendResponse:
            guard let index = u64(), let rejected = flag(), let hintIndex = u64(), let hintTerm = u64() else { return nil }
            decoded = .appendResponse(index: LogIndex(index), rejected: rejected, hintIndex: LogIndex(hintIndex), hintTerm: Term(hintTerm))
        case .heartbeat:
            guard let commit = u64(), let context = u64() else { return nil }
            decoded = .heartbeat(commit: LogIndex(commit), context: context)
        case .heartbeatResponse:
            guard let context = u64() else { return nil }
            decoded = .heartbeatResponse(context: context)
        case .requestVote:
            guard let lastIndex = u64(), let lastTerm = u64(), let preVote = flag(), let transfer = flag() else { return nil }
            decoded = .requestVote(lastIndex: LogIndex(lastIndex), lastTerm: Term(lastTerm), preVote: preVote, leadershipTransfer: transfer)
        case .voteResponse:
            guard let granted = flag(), let preVote = flag() else { return nil }
            decoded = .voteResponse(granted: granted, preVote: preVote)
        case .snapshot:
            guard let index = u64(), let snapshotTerm = u64(), let length = buffer.readInteger(endianness: .little, as: UInt32.self),
                  let bytes = buffer.readBytes(length: Int(length)), let configuration = ClusterConfiguration(decoding: bytes) else { return nil }
            decoded = .snapshot(RaftSnapshot(index: LogIndex(index), term: Term(snapshotTerm), configuration: configuration))
        case .timeoutNow:
            decoded = .timeoutNow
        case .readIndex:
            guard let requestID = u64() else { return nil }
            decoded = .readIndex(requestID: requestID)
        case .readIndexResponse:
            guard let requestID = u64(), let hasIndex = flag(), let index = u64() else { return nil }
            decoded = .readIndexResponse(requestID: requestID, index: hasIndex ? LogIndex(index) : nil)
        case .removed:
            guard let index = u64() else { return nil }
            decoded = .removed(configurationIndex: LogIndex(index))
        }
        guard buffer.readableBytes == 0 else { return nil }
        return Message(from: NodeID(from), to: NodeID(to), term: Term(term), kind: decoded)
    }
}
