import SkiffKV
import SkiffRaft

/// Readable forms of entry payloads, by entry kind. Where no decoder knows a payload, `dump` shows its
/// escaped bytes.
enum PayloadDecoders {
    static func decode(_ entry: Entry) -> String? {
        switch entry.kind {
        case .noop: entry.payload.isEmpty ? "(no-op)" : nil
        case .configuration: ClusterConfiguration(decoding: entry.payload).map { "CONFIG \($0)" }
        case .command: KVProposal(decoding: entry.payload).map(\.command.description)
        }
    }
}
