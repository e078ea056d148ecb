import ArgumentParser
import Foundation
import SkiffRaft
import SkiffStorage

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print every record in file order: one line per entry or hard state.",
        discussion: """
            Entries that a later truncation or fresh start replaced are marked "superseded": they are in the \
            files but not in the log. Scanning a segment stops at its first record that does not verify \
            (run 'verify' to see why).
            """)

    enum RecordType: String, ExpressibleByArgument, CaseIterable {
        case entry, command, noop, configuration, hardstate
    }

    @Argument(help: "WAL directory or node data directory.") var directory: String
    @Option(help: "Only entries with index at least this.") var from: UInt64?
    @Option(help: "Only entries with index at most this.") var to: UInt64?
    @Option(help: "Only records of this type.")
    var type: RecordType?
    @Flag(help: "One JSON object per line.") var json = false
    @Option(help: "Show at most this many payload bytes per entry (text output).") var payloadBytes = 64

    func validate() throws {
        if let from, let to, from > to { throw ValidationError("--from \(from) is after --to \(to)") }
        if payloadBytes < 0 { throw ValidationError("--payload-bytes must not be negative") }
    }

    func run() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var printedHeader = json
        let notes = try failing {
            try WALInspection.forEachRecord(directory: directory) { location, record, superseded in
                for line in lines(for: record, at: location, superseded: superseded) {
                    if !printedHeader {
                        print(columns(["index", "term", "type", "bytes", "payload"]))
                        printedHeader = true
                    }
                    if json {
                        print(String(decoding: try encoder.encode(line), as: UTF8.self))
                    } else {
                        print(line.text(payloadBytes: payloadBytes))
                    }
                }
            }
        }
        for note in notes { printError("skiff-wal: warning: \(note)") }
        if !notes.isEmpty { throw ExitCode(1) }
    }

    private func lines(for record: WALRecord, at location: WALInspection.Location, superseded: (UInt64) -> Bool) -> [DumpLine] {
        switch record {
        case .hardState(let state):
            guard type == nil || type == .hardstate, from == nil && to == nil else { return [] }
            return [DumpLine(location: location, type: "hardstate", hardState: state)]
        case .entries(let entries):
            guard type != .hardstate else { return [] }
            return entries.filter { entry in
                let index = entry.index.rawValue
                return index >= (from ?? 0) && index <= (to ?? .max)
                    && (type == nil || type == .entry || type?.rawValue == kindName(entry.kind))
            }.map { DumpLine(location: location, entry: $0, superseded: superseded($0.index.rawValue)) }
        }
    }
}

/// One printed record; its fields are the JSON keys.
struct DumpLine: Encodable {
    var segment: String
    var frameOffset: Int64
    var frameStoredBytes: Int
    var frameRawBytes: Int
    var compressed: Bool
    var type: String
    var index: UInt64?
    var term: UInt64?
    var bytes: Int?
    var payload: String?
    var decoded: String?
    var superseded: Bool?
    var vote: UInt64?
    var commit: UInt64?

    private var rawPayload: [UInt8] = []

    enum CodingKeys: String, CodingKey {
        case segment, frameOffset = "frame_offset", frameStoredBytes = "frame_stored_bytes",
             frameRawBytes = "frame_raw_bytes", compressed, type, index, term, bytes, payload, decoded, superseded, vote, commit
    }

    init(location: WALInspection.Location, type: String) {
        segment = location.fileName
        frameOffset = location.frameOffset
        frameStoredBytes = location.frameStoredBytes
        frameRawBytes = location.frameRawBytes
        compressed = location.compressed
        self.type = type
    }

    init(location: WALInspection.Location, type: String, hardState: HardState) {
        self.init(location: location, type: type)
        term = hardState.term.rawValue
        vote = hardState.vote.rawValue
        commit = hardState.commit.rawValue
    }

    init(location: WALInspection.Location, entry: Entry, superseded: Bool) {
        self.init(location: location, type: kindName(entry.kind))
        index = entry.index.rawValue
        term = entry.term.rawValue
        bytes = entry.payload.count
        payload = escaped(entry.payload[...], limit: .max)
        decoded = PayloadDecoders.decode(entry)
        self.superseded = superseded
        rawPayload = entry.payload
    }

    func text(payloadBytes: Int) -> String {
        if type == "hardstate" {
            return columns(["-", String(term!), type, "-", "term=\(term!) vote=\(vote!) commit=\(commit!)"])
        }
        let shown = decoded ?? escaped(rawPayload[...], limit: payloadBytes)
        return columns([String(index!), String(term!), type, String(bytes!), shown + (superseded == true ? "  (superseded)" : "")])
    }
}

func columns(_ cells: [String]) -> String {
    let widths = [10, 6, 13, 8]
    var line = ""
    for (position, cell) in cells.enumerated() {
        if position < widths.count {
            let padding = String(repeating: " ", count: max(0, widths[position] - cell.count))
            line += position == 2 ? "  " + cell + padding : padding + cell
        } else {
            line += "  " + cell
        }
    }
    return line
}

func kindName(_ kind: Entry.Kind) -> String {
    switch kind {
    case .command: "command"
    case .noop: "noop"
    case .configuration: "configuration"
    }
}

/// Printable ASCII as is (backslash and quote escaped); every other byte as \xNN. Longer payloads are cut
/// at `limit` bytes with a note of how many were left out.
func escaped(_ bytes: ArraySlice<UInt8>, limit: Int) -> String {
    var text = ""
    for byte in bytes.prefix(limit) {
        switch byte {
        case UInt8(ascii: "\\"): text += "\\\\"
        case UInt8(ascii: "\""): text += "\\\""
        case 0x20..<0x7f: text.append(Character(Unicode.Scalar(byte)))
        default:
            let hex = String(byte, radix: 16)
            text += "\\x" + (hex.count == 1 ? "0" : "") + hex
        }
    }
    if bytes.count > limit { text += "...(+\(bytes.count - limit) bytes)" }
    return "\"" + text + "\""
}
