import SkiffRaft
import SkiffStorage

/// What the slots below `slot` add up to, so that they can be trimmed: a reader that starts from it reaches
/// the same view as one that read every slot, except that it holds no entries at or before `baseIndex`.
///
/// A leader writes one only at a slot after one of its own batches (or snapshot records), so it knows that
/// state exactly: the floor is its term, and the log through `baseIndex` is its own. It picks a base that is
/// committed, held by every voter and covered by a snapshot in the store, so no reader ever needs the
/// entries dropped.
public struct ExternalCheckpoint: Hashable, Sendable {
    public var slot: UInt64
    public var floor: Term
    /// The term of the last counted batch before `slot`, which ended at the base.
    public var lastWriterTerm: Term
    public var baseIndex: LogIndex
    public var baseTerm: Term

    public init(slot: UInt64, floor: Term, lastWriterTerm: Term, baseIndex: LogIndex, baseTerm: Term) {
        precondition(floor >= lastWriterTerm, "the last writer's batch raised the floor to its term")
        self.slot = slot
        self.floor = floor
        self.lastWriterTerm = lastWriterTerm
        self.baseIndex = baseIndex
        self.baseTerm = baseTerm
    }
}

/// The byte form of an `ExternalCheckpoint`. Little-endian:
///
///     magic u32 "SKXC" | version u8 (1) | zero u8[3] | slot u64 | floor u64 | last writer term u64
///     | base index u64 | base term u64 | crc32 u32 of everything before it, seeded with the slot
public enum ExternalCheckpointCoding {
    static let magic: UInt32 = 0x4358_4B53  // "SKXC" as bytes
    static let size = 52

    public static func encode(_ checkpoint: ExternalCheckpoint) -> [UInt8] {
        var writer = ByteWriter(capacity: size)
        writer.append(magic)
        writer.append(UInt8(1))
        writer.append(bytes: [0, 0, 0])
        for field in [checkpoint.slot, checkpoint.floor.rawValue, checkpoint.lastWriterTerm.rawValue,
                      checkpoint.baseIndex.rawValue, checkpoint.baseTerm.rawValue] {
            writer.append(field)
        }
        writer.append(Checksum.crc32(writer.bytes, continuing: ExternalRecordCoding.seed(slot: checkpoint.slot)))
        return writer.bytes
    }

    /// Decodes the checkpoint stored under `slot`, or says what is wrong with the bytes.
    public static func decode(_ bytes: [UInt8], slot: UInt64) throws(ExternalLogError) -> ExternalCheckpoint {
        func corrupt(_ reason: String) -> ExternalLogError { .corruptRecord(slot: slot, reason: "checkpoint: " + reason) }
        guard bytes.count == size else { throw corrupt("\(bytes.count) bytes, not \(size)") }
        let computed = Checksum.crc32(Array(bytes[..<(size - 4)]), continuing: ExternalRecordCoding.seed(slot: slot))
        let fields = bytes.withUnsafeBytes { buffer -> (UInt32, UInt8, [UInt64], UInt32) in
            var reader = ByteReader(buffer)
            let magic = reader.read(UInt32.self)!
            let version = reader.read(UInt8.self)!
            _ = reader.readBytes(3)
            let values = (0..<5).map { _ in reader.read(UInt64.self)! }
            return (magic, version, values, reader.read(UInt32.self)!)
        }
        guard fields.3 == computed else { throw corrupt("checksum mismatch (a torn, damaged or moved checkpoint)") }
        guard fields.0 == magic, fields.1 == 1 else { throw corrupt("not a checkpoint of a known version") }
        let values = fields.2
        guard values[0] == slot else { throw corrupt("names slot \(values[0])") }
        guard values[1] >= values[2] else { throw corrupt("its floor is below its last writer's term") }
        return ExternalCheckpoint(slot: slot, floor: Term(values[1]), lastWriterTerm: Term(values[2]),
                                  baseIndex: LogIndex(values[3]), baseTerm: Term(values[4]))
    }
}
