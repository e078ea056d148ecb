import ArgumentParser
import Foundation
import SkiffExternal
import SkiffRaft

struct External: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print an external log directory (--external-log dir:PATH): one line per slot, with what readers make of it.",
        discussion: """
            Each slot is a batch of a leader's entries or a seal. A batch "counts", or is "fenced" (a seal or a \
            later term came first: its writer was deposed), or is "unjoined" (it continued a batch that never \
            landed). Nodes read slots up to the first empty one; slots after a gap are shown as such. With \
            --entries, the entries of counted batches follow their slot, decoded as 'dump' does.
            """)

    @Argument(help: "The store directory (the PATH of dir:PATH).") var directory: String
    @Flag(help: "Also print the entries of every counted batch.") var entries = false
    @Option(help: "Show at most this many payload bytes per entry.") var payloadBytes = 64

    func run() throws {
        let log = directory + "/log"
        let names = try failing {
            guard FileManager.default.fileExists(atPath: log) else { throw ValidationError("\(log) does not exist: not an external log directory") }
            return try FileManager.default.contentsOfDirectory(atPath: log).filter { $0.count == 20 && UInt64($0) != nil }.sorted()
        }
        var view: ExternalLogView?
        var problems = 0
        for name in names {
            let slot = UInt64(name)!
            if view == nil { view = ExternalLogView(firstSlot: slot, keepsEntries: false) }
            let bytes = try failing { try Array(Data(contentsOf: URL(fileURLWithPath: "\(log)/\(name)"))) }
            let record: ExternalRecord
            do { record = try ExternalRecordCoding.decode(bytes, slot: slot) } catch {
                print("\(pad(slot))  CORRUPT  \(error)")
                problems += 1
                continue
            }
            guard slot == view!.nextSlot else {
                print("\(pad(slot))  \(describe(record))  (after a gap at slot \(view!.nextSlot): not read by nodes yet)")
                continue
            }
            let admitted = view!.admits(record.term)
            let counted: Bool
            do { counted = try view!.apply(record) } catch {
                print("\(pad(slot))  \(describe(record))  MALFORMED: \(error)")
                problems += 1
                break
            }
            let status = if case .seal = record { "" } else if counted { "  counts" } else if admitted { "  unjoined" } else { "  fenced" }
            print("\(pad(slot))  \(describe(record))\(status)")
            if self.entries, counted, case .batch(_, _, _, let batch) = record {
                for entry in batch {
                    print("            \(entry.index) term \(entry.term) \(PayloadDecoders.decode(entry) ?? escaped(entry.payload[...], limit: payloadBytes))")
                }
            }
        }
        if let view {
            print("log: last \(view.lastIndex)/\(view.lastTerm), written by the leader of term \(view.lastWriterTerm); "
                  + "records of terms below \(view.floor) no longer count; next slot \(view.nextSlot)")
        } else {
            print("log: empty")
        }
        if problems > 0 { throw ExitCode(1) }
    }

    private func pad(_ slot: UInt64) -> String { "slot " + String(slot) }

    private func describe(_ record: ExternalRecord) -> String {
        switch record {
        case .seal(let term): "seal term \(term)"
        case .batch(let term, let previousIndex, let previousTerm, let entries):
            "batch term \(term) after \(previousIndex)/\(previousTerm): "
                + (entries.isEmpty ? "no entries" : "\(entries.first!.index)...\(entries.last!.index) (\(entries.count) \(entries.count == 1 ? "entry" : "entries"))")
        }
    }
}
