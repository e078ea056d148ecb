import CZlib
import NIOCore
import SkiffRaft

/// One unit of the peer protocol between Skiff nodes (see the PeerProtocol article).
///
/// On the wire: a 16-byte header `magic "SKFP" | u8 version (1) | u8 type | u16 zero | u32 payload length |
/// u32 CRC-32`, then the payload. The CRC covers the header's first 12 bytes and the payload. Decoders refuse
/// a wrong magic, version or checksum, and a length over the limit as soon as the header is read.
public enum PeerFrame: Sendable, Equatable {
    /// The first frame on a connection, in both directions: who is speaking, in which cluster.
    case hello(node: NodeID, clusterID: UInt64)
    case raft(Message)
    /// A piece of the state-machine snapshot at `index` (of `term`), starting at byte `offset` of its body.
    case snapshotChunk(index: LogIndex, term: Term, offset: UInt64, isLast: Bool, bytes: [UInt8])
    /// A follower hands client writes (at least one) to the leader, to propose as one batch.
    case forward(batch: UInt64, payloads: [[UInt8]])
    /// The leader's answer: the batch was appended from `firstIndex` on in `term`, or refused (`firstIndex` 0)
    /// because it does not lead; `leader` is the leader it knows, or 0.
    case forwardAnswer(batch: UInt64, firstIndex: LogIndex, term: Term, leader: NodeID)
    /// In place of a hello: the connection is refused, and why (another cluster, a name taken twice).
    case refused(reason: String)
    /// A follower hands a membership command (`SKIFF.JOIN`, `SKIFF.REMOVE`, ...) to the leader, as words.
    case adminRequest(id: UInt64, words: [[UInt8]])
    /// The leader's answer to `adminRequest`: the reply's words, or an error message as the only word.
    case adminReply(id: UInt64, isError: Bool, words: [[UInt8]])

    static let magic: UInt32 = 0x5046_4B53  // "SKFP" little-endian
    public static let version: UInt8 = 1
    static let headerBytes = 16

    enum FrameType: UInt8 { case hello = 1, raft, snapshotChunk, forward, forwardAnswer, refused, adminRequest, adminReply }

    public func write(to buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        buffer.writeInteger(Self.magic, endianness: .little)
        buffer.writeInteger(Self.version)
        buffer.writeInteger(frameType.rawValue)
        buffer.writeInteger(UInt16(0))
        buffer.writeInteger(UInt32(0))  // length, set below
        buffer.writeInteger(UInt32(0))  // checksum, set below
        let payloadStart = buffer.writerIndex
        writePayload(to: &buffer)
        let length = buffer.writerIndex - payloadStart
        buffer.setInteger(UInt32(length), at: start + 8, endianness: .little)
        let checksum = buffer.withUnsafeReadableBytes { bytes in
            let frame = UnsafeRawBufferPointer(rebasing: bytes[(start - buffer.readerIndex)...])
            return Self.checksum(header: UnsafeRawBufferPointer(rebasing: frame[..<12]), payload: UnsafeRawBufferPointer(rebasing: frame[Self.headerBytes...]))
        }
        buffer.setInteger(checksum, at: start + 12, endianness: .little)
    }

    static func checksum(header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) -> UInt32 {
        var crc = crc32(0, header.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt(header.count))
        if payload.count > 0 { crc = crc32(crc, payload.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt(payload.count)) }
        return UInt32(truncatingIfNeeded: crc)
    }

    private var frameType: FrameType {
        switch self {
        case .hello: .hello
        case .raft: .raft
        case .snapshotChunk: .snapshotChunk
        case .forward: .forward
        case .forwardAnswer: .forwardAnswer
        case .refused: .refused
        case .adminRequest: .adminRequest
        case .adminReply: .adminReply
        }
    }

    private func writePayload(to buffer: inout ByteBuffer) {
        switch self {
        case .hello(let node, let clusterID):
            buffer.writeInteger(node.rawValue, endianness: .little)
            buffer.writeInteger(clusterID, endianness: .little)
        case .raft(let message):
            RaftMessageCodec.write(message, to: &buffer)
        case .snapshotChunk(let index, let term, let offset, let isLast, let bytes):
            buffer.writeInteger(index.rawValue, endianness: .little)
            buffer.writeInteger(term.rawValue, endianness: .little)
            buffer.writeInteger(offset, endianness: .little)
            buffer.writeInteger(UInt8(isLast ? 1 : 0))
            buffer.writeBytes(bytes)
        case .forward(let batch, let payloads):
            buffer.writeInteger(batch, endianness: .little)
            Self.write(payloads, to: &buffer)
        case .forwardAnswer(let batch, let firstIndex, let term, let leader):
            buffer.writeInteger(batch, endianness: .little)
            buffer.writeInteger(firstIndex.rawValue, endianness: .little)
            buffer.writeInteger(term.rawValue, endianness: .little)
            buffer.writeInteger(leader.rawValue, endianness: .little)
        case .refused(let reason):
            buffer.writeString(reason)
        case .adminRequest(let id, let words):
            buffer.writeInteger(id, endianness: .little)
            Self.write(words, to: &buffer)
        case .adminReply(let id, let isError, let words):
            buffer.writeInteger(id, endianness: .little)
            buffer.writeInteger(UInt8(isError ? 1 : 0))
            Self.write(words, to: &buffer)
        }
    }

    /// `u32 count | (u32 length | bytes)...`
    private static func write(_ items: [[UInt8]], to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(items.count), endianness: .little)
        for item in items {
            buffer.writeInteger(UInt32(item.count), endianness: .little)
            buffer.writeBytes(item)
        }
    }

    private static func readItems(from buffer: inout ByteBuffer) -> [[UInt8]]? {
        guard let count = buffer.readInteger(endianness: .little, as: UInt32.self), Int(count) <= buffer.readableBytes / 4 else { return nil }
        var items: [[UInt8]] = []
        for _ in 0..<count {
            guard let length = buffer.readInteger(endianness: .little, as: UInt32.self),
                  let item = buffer.readBytes(length: Int(length)) else { return nil }
            items.append(item)
        }
        return items
    }

    /// Decodes a payload of type `type`; nil if it is malformed.
    static func read(type: FrameType, payload buffer: inout ByteBuffer) -> PeerFrame? {
        func u64() -> UInt64? { buffer.readInteger(endianness: .little, as: UInt64.self) }
        let frame: PeerFrame
        switch type {
        case .hello:
            guard let node = u64(), let clusterID = u64() else { return nil }
            frame = .hello(node: NodeID(node), clusterID: clusterID)
        case .raft:
            guard let message = RaftMessageCodec.read(from: &buffer) else { return nil }
            frame = .raft(message)
        case .snapshotChunk:
            guard let index = u64(), let term = u64(), let offset = u64(), let last = buffer.readInteger(as: UInt8.self), last <= 1,
                  let bytes = buffer.readBytes(length: buffer.readableBytes) else { return nil }
            frame = .snapshotChunk(index: LogIndex(index), term: Term(term), offset: offset, isLast: last == 1, bytes: bytes)
        case .forward:
            guard let batch = u64(), let payloads = readItems(from: &buffer), !payloads.isEmpty else { return nil }
            frame = .forward(batch: batch, payloads: payloads)
        case .forwardAnswer:
            guard let batch = u64(), let firstIndex = u64(), let term = u64(), let leader = u64() else { return nil }
            frame = .forwardAnswer(batch: batch, firstIndex: LogIndex(firstIndex), term: Term(term), leader: NodeID(leader))
        case .refused:
            frame = .refused(reason: buffer.readString(length: buffer.readableBytes) ?? "")
        case .adminRequest:
            guard let id = u64(), let words = readItems(from: &buffer) else { return nil }
            frame = .adminRequest(id: id, words: words)
        case .adminReply:
            guard let id = u64(), let flag = buffer.readInteger(as: UInt8.self), flag <= 1, let words = readItems(from: &buffer) else { return nil }
            frame = .adminReply(id: id, isError: flag == 1, words: words)
        }
        return buffer.readableBytes == 0 ? frame : nil
    }
}

/// Why a peer connection was dropped: the other side broke the protocol (or is not a Skiff node).
public struct PeerProtocolError: Error, CustomStringConvertible, Equatable {
    public var description: String
}

/// Splits a peer connection's bytes into frames, verifying each; `frameBytesMax` bounds a frame's payload.
public struct PeerFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = PeerFrame
    let frameBytesMax: Int

    public init(frameBytesMax: Int) { self.frameBytesMax = frameBytesMax }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try next(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }

    public mutating func next(from buffer: inout ByteBuffer) throws(PeerProtocolError) -> PeerFrame? {
        guard buffer.readableBytes >= PeerFrame.headerBytes else { return nil }
        let start = buffer.readerIndex
        guard buffer.getInteger(at: start, endianness: .little, as: UInt32.self) == PeerFrame.magic else {
            throw PeerProtocolError(description: "not a Skiff peer connection (bad magic)")
        }
        let version = buffer.getInteger(at: start + 4, as: UInt8.self)!
        guard version == PeerFrame.version else {
            throw PeerProtocolError(description: "peer protocol version \(version), this node speaks \(PeerFrame.version)")
        }
        guard let type = PeerFrame.FrameType(rawValue: buffer.getInteger(at: start + 5, as: UInt8.self)!),
              buffer.getInteger(at: start + 6, as: UInt16.self) == 0 else {
            throw PeerProtocolError(description: "unknown frame type")
        }
        let length = Int(buffer.getInteger(at: start + 8, endianness: .little, as: UInt32.self)!)
        guard length <= frameBytesMax else {
            throw PeerProtocolError(description: "a frame of \(length) bytes exceeds the limit of \(frameBytesMax)")
        }
        guard buffer.readableBytes >= PeerFrame.headerBytes + length else { return nil }
        let stored = buffer.getInteger(at: start + 12, endianness: .little, as: UInt32.self)!
        let computed = buffer.withUnsafeReadableBytes { bytes in
            PeerFrame.checksum(header: UnsafeRawBufferPointer(rebasing: bytes[..<12]),
                               payload: UnsafeRawBufferPointer(rebasing: bytes[PeerFrame.headerBytes..<PeerFrame.headerBytes + length]))
        }
        guard stored == computed else { throw PeerProtocolError(description: "frame checksum mismatch") }
        buffer.moveReaderIndex(forwardBy: PeerFrame.headerBytes)
        var payload = buffer.readSlice(length: length)!
        guard let frame = PeerFrame.read(type: type, payload: &payload) else {
            throw PeerProtocolError(description: "malformed \(type) frame")
        }
        return frame
    }
}
