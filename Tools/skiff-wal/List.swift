import ArgumentParser
import SkiffStorage

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List segments: format version, index range, records, bytes on disk and compression.")

    @Argument(help: "WAL directory or node data directory.") var directory: String

    func run() throws {
        let inspection = try failing { try WALInspection.inspect(directory: directory) }
        let header = ["segment", "version", "start", "first", "last", "records", "entries", "on disk", "stored", "raw", "ratio"]
        var rows: [[String]] = []
        for segment in inspection.segments {
            let ratio = segment.storedBodyBytes > 0 ? Double(segment.rawBodyBytes) / Double(segment.storedBodyBytes) : 1
            rows.append([
                segment.fileName, String(segment.version), segment.startsFresh ? "fresh" : "cont",
                String(segment.firstIndex), segment.writtenIndices.map { String($0.upperBound) } ?? "-",
                String(segment.records), String(segment.entries), bytes(segment.fileBytes),
                bytes(segment.storedBodyBytes), bytes(segment.rawBodyBytes), String(format2(ratio)) + "x",
            ])
        }
        printTable([header] + rows)
        print("log: \(describe(first: inspection.firstIndex, last: inspection.lastIndex)); hard state: \(inspection.hardState)")
        if !inspection.isSound {
            printError("skiff-wal: problems found: run 'skiff-wal verify \(directory)'")
            throw ExitCode(1)
        }
    }
}

func describe(first: UInt64, last: UInt64) -> String {
    last < first ? "empty, next index \(first)" : "entries \(first)...\(last)"
}

func bytes(_ count: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(count), unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(count) B" : "\(format2(value)) \(units[unit])"
}

func format2(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    let fraction = hundredths % 100
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
}

/// Prints rows as left-aligned columns separated by two spaces.
func printTable(_ rows: [[String]]) {
    guard let columns = rows.first?.count else { return }
    let widths = (0..<columns).map { column in rows.map { $0[column].count }.max() ?? 0 }
    for row in rows {
        let cells = row.enumerated().map { column, cell in
            column == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
        }
        print(cells.joined(separator: "  "))
    }
}
