import Foundation

/// Whether a data directory's cluster runs in witness mode, recorded in `DIR/external-witness` ("on" or
/// "off") the first time a node opens it. The witness is a voter in the cluster's configuration, so a
/// cluster cannot switch modes: a node started with the other setting refuses to run, and says so.
enum WitnessModeRecord {
    /// `inConfiguration`: whether the configuration recovered from the directory lists the witness.
    static func check(directory: String, enabled: Bool, inConfiguration: Bool) throws {
        let path = directory + "/external-witness"
        let wanted = enabled ? "on" : "off"
        let recorded = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        for found in [recorded, inConfiguration ? "on" : "off"] where found != nil && found != wanted {
            throw ConfigurationError("\(directory) belongs to a cluster that runs with --external-witness \(found!); a cluster cannot switch modes")
        }
        if recorded == nil { try Data((wanted + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic) }
    }
}
