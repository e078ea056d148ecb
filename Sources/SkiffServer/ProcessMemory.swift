import Foundation

/// This process's resident memory now and at its peak (Linux's VmRSS and VmHWM), in bytes; zeros where
/// `/proc` does not say.
struct ProcessMemory {
    var resident = 0
    var peak = 0

    static func current() -> ProcessMemory {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return ProcessMemory() }
        return parse(status)
    }

    /// The figures of a `/proc/PID/status` text, whose lines read `VmRSS:    1234 kB`.
    static func parse(_ status: String) -> ProcessMemory {
        var memory = ProcessMemory()
        for line in status.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == ":" || $0 == " " || $0 == "\t" })
            guard fields.count == 3, fields[2] == "kB", let kibibytes = Int(fields[1]) else { continue }
            switch fields[0] {
            case "VmRSS": memory.resident = kibibytes * 1024
            case "VmHWM": memory.peak = kibibytes * 1024
            default: break
            }
        }
        return memory
    }
}
