import ArgumentParser
import Foundation
import SkiffClient
import SkiffServer

/// Which node an admin command talks to (any member: changes are handed to the leader).
struct ServerOptions: ParsableArguments {
    @Option(help: "A member's client address, HOST:PORT.") var server = "127.0.0.1:7379"
    @Option(help: "The password, if the cluster requires AUTH.") var password: String?
    @Option(help: "Seconds to wait for the answer.") var timeout = 15.0

    /// Sends one command and returns its reply; a Redis error reply becomes a failure with its message.
    func call(_ arguments: [String]) throws -> RESPClient.Reply {
        let address: HostAndPort
        do { address = try HostAndPort(parsing: server) } catch { throw ValidationError("--server: \(error)") }
        let client: RESPClient
        do { client = try RESPClient(host: address.host, port: address.port, timeoutSeconds: timeout) } catch {
            throw AdminFailure("cannot reach \(server): \(error)")
        }
        if let password, case .error(let message) = try client.call("AUTH", password) { throw AdminFailure(message) }
        let reply = try client.call(arguments)
        if case .error(let message) = reply { throw AdminFailure(message) }
        return reply
    }
}

struct AdminFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body`, printing a failure as one line and exiting with 1.
func reportingFailure(_ body: () throws -> Void) throws {
    do { try body() } catch let failure as AdminFailure {
        FileHandle.standardError.write(Data("skiff: \(failure.description)\n".utf8))
        throw ExitCode(1)
    }
}

/// A RESP2 map (a flat array of keys and values) as ordered pairs.
func pairs(_ reply: RESPClient.Reply) -> [(String, RESPClient.Reply)] {
    guard case .array(let items) = reply else { return [] }
    return stride(from: 0, to: items.count - 1, by: 2).map { (items[$0].text, items[$0 + 1]) }
}

func jsonValue(_ reply: RESPClient.Reply) -> Any {
    switch reply {
    case .integer(let value): value
    case .bulk(nil): NSNull()
    case .array(let items): items.map(jsonValue)
    default: reply.text
    }
}

func printJSON(_ value: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

struct Members: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the cluster's members: role, addresses, whether connected, and (asked of the leader) lag.")
    @OptionGroup var server: ServerOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try reportingFailure {
            guard case .array(let members) = try server.call(["SKIFF.MEMBERS"]) else { throw AdminFailure("SKIFF.MEMBERS answered something else") }
            let rows = members.map { Dictionary(pairs($0), uniquingKeysWith: { first, _ in first }) }
            if json { return try printJSON(rows.map { $0.mapValues(jsonValue) }) }
            let columns = ["name", "role", "peer_address", "client_address", "connected", "match", "lag"]
            let table = [columns] + rows.map { row in columns.map { row[$0].map { $0 == .bulk(nil) ? "-" : $0.text } ?? "-" } }
            let widths = columns.indices.map { column in table.map { $0[column].count }.max()! }
            for line in table {
                print(line.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  "))
            }
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one node's view of the cluster: its role, term, leader and log positions.")
    @OptionGroup var server: ServerOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try reportingFailure {
            let fields = pairs(try server.call(["SKIFF.STATUS"]))
            if json { return try printJSON(Dictionary(fields.map { ($0.0, jsonValue($0.1)) }, uniquingKeysWith: { first, _ in first })) }
            for (key, value) in fields { print("\(key): \(value == .bulk(nil) ? "-" : value.text)") }
        }
    }
}

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Form a cluster of nodes waiting to be initialised (started with --await-init).",
        discussion: """
            Send it to any waiting node: it is handed to the coordinating node (the voter whose name sorts \
            first), which makes the cluster's tag, records it, and hands it to the other voters. Every voter \
            must have made itself known first (start each with --await-init --join pointing at a waiting \
            node). Waiting nodes that are not voters join the new cluster as learners. Repeating an init is \
            harmless: it hands the tag again to voters that have not taken it; a node already in another \
            cluster refuses. It waits at least 40 s for the answer, whatever --timeout says.
            """)
    @OptionGroup var server: ServerOptions
    @Option(help: "The cluster's name, part of its tag.") var name: String
    @Option(help: "The first voters' names (their --id), comma-separated.") var voters: String

    func run() throws {
        let names = voters.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !names.contains(where: \.isEmpty) else { throw ValidationError("--voters must be names separated by commas") }
        var server = server
        server.timeout = max(server.timeout, 40)  // the coordinator waits up to 20 s for each voter
        try reportingFailure {
            do { print(try server.call(["SKIFF.INIT", name] + names).text) } catch let lost as RESPClient.Failure {
                throw AdminFailure("no answer from \(server.server) (\(lost)); the init may or may not have taken effect: repeat it to learn which")
            }
        }
    }
}

/// The membership subcommands: each sends one SKIFF.* command and prints OK.
struct AddLearner: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add a node as a learner: it receives the log and serves reads, but does not vote (see promote).",
        discussion: "Start the node itself with an empty data directory and --join instead, to have it add itself.")
    @OptionGroup var server: ServerOptions
    @Argument(help: "The node's name (its --id).") var name: String
    @Argument(help: "Its peer address, HOST:PORT.") var peerAddress: String
    @Argument(help: "Its client address, HOST:PORT.") var clientAddress: String?

    func run() throws {
        try reportingFailure { print(try server.call(["SKIFF.ADDLEARNER", name, peerAddress] + (clientAddress.map { [$0] } ?? [])).text) }
    }
}

struct Promote: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Make a learner that has caught up a voter.")
    @OptionGroup var server: ServerOptions
    @Argument(help: "The learner's name.") var name: String
    func run() throws { try reportingFailure { print(try server.call(["SKIFF.PROMOTE", name]).text) } }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove a member. A removed node that is still running shuts down once it hears of it.")
    @OptionGroup var server: ServerOptions
    @Argument(help: "The member's name.") var name: String
    func run() throws { try reportingFailure { print(try server.call(["SKIFF.REMOVE", name]).text) } }
}

struct TransferLeader: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer-leader", abstract: "Hand leadership to another voter (it takes over within an election timeout).")
    @OptionGroup var server: ServerOptions
    @Argument(help: "The voter's name.") var name: String
    func run() throws { try reportingFailure { print(try server.call(["SKIFF.TRANSFER", name]).text) } }
}

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print every change under a key prefix as it is committed: `REVISION set KEY VALUE` or `REVISION del KEY`.",
        discussion: """
            Revisions are log indices, the same on every member. If the member it is connected to goes away, \
            it resumes on the next one in --servers from the revision after the last one printed, so no change \
            is printed twice or skipped. A revision older than the members remember is an error.
            """)
    @Argument(help: "The key prefix (empty for every key).") var prefix = ""
    @Option(help: "Start at this revision (default: the next change).") var from: UInt64?
    @Option(help: "Members' client addresses to use in turn, HOST:PORT,...") var servers = "127.0.0.1:7379"
    @Option(help: "The password, if the cluster requires AUTH.") var password: String?
    @Option(help: "Exit after printing this many changes.") var count: Int?
    @Option(help: "Seconds to keep trying when no member answers.") var patience = 30.0

    func validate() throws {
        do { _ = try HostAndPort.parseList(servers) } catch { throw ValidationError("--servers: \(error)") }
    }

    func run() throws {
        let members = try HostAndPort.parseList(servers)
        // Where to resume: the last revision printed and how many of its changes were (one entry can change
        // several keys, and a connection can break between them), or where the first watch started.
        var last: (revision: UInt64, printed: Int)?
        var start = from
        var printed = 0
        var lastContact = Date()
        var position = 0
        var compactedAt = Set<String>()  // members that no longer hold the revision to resume from
        while count.map({ printed < $0 }) ?? true {
            let address = members[position % members.count]
            let server = address.description
            position += 1
            do {
                // A quiet stream times out after 10 s and is simply opened again where it stopped.
                let client = try RESPClient(host: address.host, port: address.port, timeoutSeconds: 10)
                if let password, case .error(let message) = try client.call("AUTH", password) { throw AdminFailure(message) }
                let resumeFrom = last?.revision ?? start
                var skip = last?.printed ?? 0
                let reply = try client.call(["SKIFF.WATCH", prefix] + (resumeFrom.map { ["FROM", String($0)] } ?? []))
                if case .error(let message) = reply {
                    guard message.hasPrefix("ERR revision") else { throw AdminFailure("\(server): \(message)") }
                    compactedAt.insert(server)
                    guard compactedAt.count < Set(members.map(\.description)).count else { throw AdminFailure(message) }  // nobody can fill the gap
                    continue
                }
                if start == nil, case .array(let fields) = reply, fields.count == 3, case .integer(let first) = fields[2] { start = UInt64(first) }
                compactedAt.removeAll()
                lastContact = Date()
                position -= 1  // this member works: come back to it first
                while count.map({ printed < $0 }) ?? true {
                    let event = try client.readReply()
                    lastContact = Date()
                    guard case .array(let fields) = event, fields.count >= 3, case .integer(let signed) = fields[1] else {
                        if case .error(let message) = event { throw AdminFailure("\(server): \(message)") }
                        continue
                    }
                    let revision = UInt64(signed)
                    if let done = last, revision < done.revision { continue }  // never go back
                    if let done = last, revision == done.revision, skip > 0 {
                        skip -= 1  // printed before the reconnection
                        continue
                    }
                    let line = "\(revision) \(fields[0].text) \(fields[2].text)" + (fields.count > 3 ? " \(fields[3].text)" : "")
                    FileHandle.standardOutput.write(Data((line + "\n").utf8))
                    last = last?.revision == revision ? (revision, last!.printed + 1) : (revision, 1)
                    printed += 1
                }
            } catch let failure as AdminFailure where failure.description.hasPrefix("ERR revision") {
                FileHandle.standardError.write(Data("skiff watch: \(failure.description)\n".utf8))
                throw ExitCode(1)
            } catch {
                FileHandle.standardError.write(Data("skiff watch: \(server): \(error); trying the next member\n".utf8))
                guard Date().timeIntervalSince(lastContact) < patience else {
                    FileHandle.standardError.write(Data("skiff watch: no member answered for \(Int(patience)) s\n".utf8))
                    throw ExitCode(1)
                }
                position += 1
                if position % members.count == 0 { Thread.sleep(forTimeInterval: 0.2) }
            }
        }
    }
}
