import SkiffRaft

/// Readable forms of entry payloads, by entry kind. Where no decoder knows a payload, `dump` shows its
/// escaped bytes. The state machine's command encoding registers here when it exists.
enum PayloadDecoders {
    static func decode(_ entry: Entry) -> String? {
        switch entry.kind {
        case .noop: entry.payload.isEmpty ? "(no-op)" : nil
        case .command, .configuration: nil
        }
    }
}
