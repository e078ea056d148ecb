import ArgumentParser
import Foundation

/// Turns the config file and SKIFF_* environment variables into `--name value` arguments placed before the
/// command line's own, for `skiff serve` (the last value of an option wins).
enum SettingSources {
    /// The options a file or the environment may set.
    static let names = ["id", "data-dir", "client-addr", "peer-addr", "initial-cluster", "election-timeout", "heartbeat-interval",
                        "fsync", "snapshot-entries", "request-timeout", "password", "max-bulk-bytes", "metrics-addr", "log-level",
                        "external-log", "external-witness", "cluster-name", "join", "join-as", "join-timeout", "watch-history", "on-removal", "advertise-peer-addr"]

    static func expand(_ arguments: [String], environment: [String: String]) throws -> [String] {
        let subcommands = Skiff.configuration.subcommands.map { $0._commandName } + ["help", "-h", "--help"]
        guard arguments.first.map({ $0 == "serve" || !subcommands.contains($0) }) ?? true else { return arguments }
        let rest = arguments.first == "serve" ? Array(arguments.dropFirst()) : arguments
        var settings: [String] = []
        let configPath = value(of: "--config", in: rest) ?? environment["SKIFF_CONFIG"]
        if let configPath { settings += try fileArguments(configPath) }
        for name in names {
            let variable = "SKIFF_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
            if let value = environment[variable] { settings += ["--\(name)", value] }
        }
        return ["serve"] + settings + rest
    }

    static func value(of option: String, in arguments: [String]) -> String? {
        for (position, argument) in arguments.enumerated() {
            if argument == option, position + 1 < arguments.count { return arguments[position + 1] }
            if argument.hasPrefix(option + "=") { return String(argument.dropFirst(option.count + 1)) }
        }
        return nil
    }

    /// Reads `name = value` lines; `#` starts a comment, except inside a value in double quotes.
    static func fileArguments(_ path: String) throws -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read the config file \(path)")
        }
        var arguments: [String] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, names.contains(parts[0]) else {
                throw ValidationError("\(path):\(number + 1): expected `name = value` with a name among: \(names.joined(separator: ", "))")
            }
            do {
                arguments += ["--\(parts[0])", try value(parts[1])]
            } catch {
                throw ValidationError("\(path):\(number + 1): \(error.reason)")
            }
        }
        return arguments
    }

    struct ValueError: Error { var reason: String }

    /// A setting's value: the text before any `#`, or a double-quoted string in which `\"` and `\\` stand
    /// for a quote and a backslash, followed by nothing but an optional comment.
    static func value(_ text: String) throws(ValueError) -> String {
        guard text.hasPrefix("\"") else { return String(text.prefix { $0 != "#" }).trimmingCharacters(in: .whitespaces) }
        var value = ""
        var rest = text.dropFirst()
        while let character = rest.popFirst() {
            switch character {
            case "\"":
                let after = rest.trimmingCharacters(in: .whitespaces)
                guard after.isEmpty || after.hasPrefix("#") else { throw ValueError(reason: "unexpected text after the quoted value: \(after)") }
                return value
            case "\\":
                guard let escaped = rest.popFirst(), escaped == "\"" || escaped == "\\" else {
                    throw ValueError(reason: "in a quoted value a backslash may only precede a quote or a backslash")
                }
                value.append(escaped)
            default:
                value.append(character)
            }
        }
        throw ValueError(reason: "the quoted value has no closing quote")
    }
}
