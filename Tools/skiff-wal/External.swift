import ArgumentParser
import Foundation
import SkiffExternal
import SkiffRaft

struct External: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print an external log directory (--external-log dir:PATH): one line per slot, with what readers make of it.",
        discussion: """
            Each slot is a batch of a leader's entries, a snapshot record (the log continues from a snapshot in \
            the store), a seal, or a witness vote. A batch or snapshot record "counts", or is "fenced" (a seal or \
            a later term came first: its writer was deposed), or is "unjoined" (it continued a batch that never \
            landed). A vote is "granted" or "refused". Nodes read slots up to the first empty one; slots after a gap are shown as such. With \
            --entries, the entries of counted batches follow their slot, decoded as 'dump' does.
            """)

    @Argument(help: "The store directory (the PATH of dir:PATH).") var directory: String
    @Flag(help: "Also print the entries of every counted batch.") var entries = false
    @Option(help: "Show at most this many payload bytes per entry.") var payloadBytes = 64

    func run() throws {
        let log = directory + "/log"
        let names = try failing {
            guard FileManager.default.fileExists(atPath: log) else { throw ValidationError("\(log) does not exist: not an external log directory") }
            return try slotNames(in: log)
        }
        var problems = 0
        if FileManager.default.fileExists(atPath: directory + "/owner") {
            do {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: directory + "/owner"))
                let owner = try ExternalStoreOwner(decoding: Array(bytes))
                print("owner: cluster \(owner), store \(owner.store)")
            } catch {
                print("owner  CORRUPT  \(error)")
                problems += 1
            }
        } else {
            print("owner: none recorded")
        }
        var view = ExternalLogView(keepsEntries: false)
        if let newest = try slotNames(in: directory + "/checkpoint").last {
            let slot = UInt64(newest)!
            do {
                let checkpoint = try ExternalCheckpointCoding.decode(try recordOrFail(atPath: "\(directory)/checkpoint/\(newest)", slot: slot), slot: slot)
                view = ExternalLogView(checkpoint, keepsEntries: false)
                print("checkpoint at slot \(slot): log trimmed through \(checkpoint.baseIndex)/\(checkpoint.baseTerm), written by the "
                      + "leader of term \(checkpoint.lastWriterTerm); records of terms below \(checkpoint.floor) no longer count")
            } catch let error as ExternalLogError {
                print("checkpoint at slot \(slot)  CORRUPT  \(error)")
                throw ExitCode(1)
            }
        }
        for name in names {
            let slot = UInt64(name)!
            guard slot >= view.nextSlot else {
                print("\(pad(slot))  before the checkpoint: ignored, removed by the next trim")
                continue
            }
            let record: ExternalRecord
            do { record = try ExternalRecordCoding.decode(try recordOrFail(atPath: "\(log)/\(name)", slot: slot), slot: slot) } catch let error as ExternalLogError {
                print("\(pad(slot))  CORRUPT  \(error)")
                problems += 1
                continue
            }
            guard slot == view.nextSlot else {
                print("\(pad(slot))  \(describe(record))  (after a gap at slot \(view.nextSlot): not read by nodes yet)")
                continue
            }
            let admitted = view.admits(record.term)
            let counted: Bool
            do { counted = try view.apply(record) } catch {
                print("\(pad(slot))  \(describe(record))  MALFORMED: \(error)")
                problems += 1
                break
            }
            let status = switch record {
            case .seal: ""
            case .vote: counted ? "  granted" : "  refused"
            case .batch, .snapshot: counted ? "  counts" : admitted ? "  unjoined" : "  fenced"
            }
            print("\(pad(slot))  \(describe(record))\(status)")
            if self.entries, counted, case .batch(_, _, _, let batch, _) = record {
                for entry in batch {
                    print("            \(entry.index) term \(entry.term) \(PayloadDecoders.decode(entry) ?? escaped(entry.payload[...], limit: payloadBytes))")
                }
            }
        }
        if view.nextSlot > 0 || view.lastIndex > .zero {
            print("log: last \(view.lastIndex)/\(view.lastTerm), written by the leader of term \(view.lastWriterTerm); "
                  + "records of terms below \(view.floor) no longer count; committed through at least \(view.committedIndex); next slot \(view.nextSlot)")
        } else {
            print("log: empty")
        }
        let snapshots = try slotNames(in: directory + "/snap", suffix: ".snap")
        print("snapshots: " + (snapshots.isEmpty ? "none" : snapshots.reversed().compactMap(ExternalSnapshotID.init(fileName:)).map { "\($0)" }.joined(separator: ", ")))
        if problems > 0 { throw ExitCode(1) }
    }

    /// The slot-numbered names in `directory` (or, with a suffix, the names ending in it), in order; none if it is missing.
    private func slotNames(in directory: String, suffix: String? = nil) throws -> [String] {
        guard FileManager.default.fileExists(atPath: directory) else { return [] }
        return try failing {
            try FileManager.default.contentsOfDirectory(atPath: directory).filter { name in
                suffix.map(name.hasSuffix) ?? (name.count == 20 && UInt64(name) != nil)
            }.sorted()
        }
    }

    /// The record of `slot` in the file at `path`. A file that does not hold one throws
    /// `ExternalLogError` (the caller reports it as corrupt); one that cannot be read ends the run.
    private func recordOrFail(atPath path: String, slot: UInt64) throws -> [UInt8] {
        do { return try DirectoryExternalStore.record(atPath: path, slot: slot) } catch let error as ExternalLogError { throw error } catch {
            return try failing { throw error }
        }
    }

    private func pad(_ slot: UInt64) -> String { "slot " + String(slot) }

    private func describe(_ record: ExternalRecord) -> String {
        switch record {
        case .seal(let term): "seal term \(term)"
        case .vote(let term, let candidate, let lastIndex, let lastTerm):
            "vote term \(term) for \(candidate), whose log ends at \(lastIndex)/\(lastTerm)"
        case .snapshot(let term, let index, let snapshotTerm):
            "snapshot term \(term): the log continues from the stored snapshot at \(index)/\(snapshotTerm)"
        case .batch(let term, let previousIndex, let previousTerm, let entries, _):
            "batch term \(term) after \(previousIndex)/\(previousTerm): "
                + (entries.isEmpty ? "no entries" : "\(entries.first!.index)...\(entries.last!.index) (\(entries.count) \(entries.count == 1 ? "entry" : "entries"))")
        }
    }
}
