extension ClientCommand {
    /// Parses a command from its words, the name first (in any case). An unknown command, a wrong number
    /// of arguments or a bad argument gives the error Redis would reply with. `arguments` is not empty.
    public static func parse(_ arguments: [[UInt8]]) -> Result<ClientCommand, RESPCommandError> {
        Result { () throws(RESPCommandError) -> ClientCommand in try parsedCommand(from: CommandArguments(arguments)) }
    }

    private static func parsedCommand(from arguments: CommandArguments) throws(RESPCommandError) -> ClientCommand {
        if let read = try readCommand(arguments) { return .read(read) }
        if let command = try writeCommand(arguments) { return command }
        do {
            if let command = try connectionCommand(arguments) { return command }
            if let command = try serverCommand(arguments) { return command }
        } catch {
            var refusal = error
            let clientKill = arguments.name == "client" && arguments.count > 1 && arguments.word(at: 1) == "kill"
            refusal.abortsTransaction = refusal.abortsTransaction || clientKill || !transactionCommandNames.contains(arguments.name)
            throw refusal
        }
        throw .unknownCommand(arguments.words)
    }

    /// The connection and server commands that may wait in a transaction, as `mayWaitInTransaction` says
    /// of the parsed commands: a refusal of any other one's arguments aborts the transaction.
    static let transactionCommandNames: Set<String> = ["ping", "echo", "hello", "auth", "select", "readonly", "readwrite",
                                                        "client", "time", "info", "command", "config", "skiff.status",
                                                        "skiff.members", "unwatch"]

    /// Commands about the connection rather than the key space; nil for any other name.
    private static func connectionCommand(_ arguments: CommandArguments) throws(RESPCommandError) -> ClientCommand? {
        switch arguments.name {
        case "ping":
            guard arguments.count <= 2 else { throw .wrongArityWhenRun(arguments.name) }
            return .ping(message: arguments.count == 2 ? arguments[1] : nil)
        case "echo":
            try arguments.requireCount(2)
            return .echo(arguments[1])
        case "hello":
            return try .hello(helloOptions(arguments))
        case "auth":
            try arguments.requireCount(2...)
            guard arguments.count <= 3 else { throw .syntax }
            return .auth(user: arguments.count == 3 ? arguments[1] : nil, password: arguments[arguments.count - 1])
        case "select":
            try arguments.requireCount(2)
            guard try arguments.integer(at: 1) == 0 else { throw RESPCommandError("ERR DB index is out of range") }
            return .select(0)
        case "quit":
            return .quit
        case "multi", "exec", "discard", "unwatch":
            try arguments.requireCount(1)
            let commands: [String: ClientCommand] = ["multi": .multi, "exec": .exec, "discard": .discard, "unwatch": .unwatch]
            return commands[arguments.name]!
        case "watch":
            try arguments.requireCount(2...)
            return .watchKeys(arguments.words(from: 1))
        case "client":
            try arguments.requireCount(2...)
            return try .client(clientRequest(arguments.subcommand))
        case "readonly":
            try arguments.requireCount(1)
            return .readOnly
        case "readwrite":
            try arguments.requireCount(1)
            return .readWrite
        default:
            return nil
        }
    }

    /// Commands about the server and the cluster; nil for any other name.
    private static func serverCommand(_ arguments: CommandArguments) throws(RESPCommandError) -> ClientCommand? {
        switch arguments.name {
        case "info":
            return .info(sections: arguments.words(from: 1).map(CommandArguments.lowercased))
        case "command":
            return try .command(commandQuery(arguments))
        case "config":
            try arguments.requireCount(2...)
            let subcommand = arguments.subcommand
            guard subcommand.name == "config|get" else { throw .unknownSubcommand(arguments) }
            try subcommand.requireCount(3...)
            return .configGet(patterns: arguments.words(from: 2))
        case "time":
            try arguments.requireCount(1)
            return .time
        case "skiff.status":
            try arguments.requireCount(1)
            return .skiffStatus
        case "skiff.members":
            try arguments.requireCount(1)
            return .skiffMembers
        case "skiff.join":
            try arguments.requireCount(6...7)
            guard let id = UInt64(arguments.text(at: 2)), id != 0 else { throw RESPCommandError("ERR the node id must be a positive integer") }
            guard let version = CommandArguments.parseInteger(arguments[5]) else { throw RESPCommandError("ERR the protocol version must be an integer") }
            return .membership(.join(name: arguments.text(at: 1), nodeID: id, peerAddress: arguments.text(at: 3), clientAddress: arguments.text(at: 4),
                                     protocolVersion: Int(clamping: version), clusterUUID: arguments.count == 7 ? arguments.text(at: 6) : nil))
        case "skiff.addlearner":
            try arguments.requireCount(3...4)
            return .membership(.addLearner(name: arguments.text(at: 1), peerAddress: arguments.text(at: 2),
                                           clientAddress: arguments.count == 4 ? arguments.text(at: 3) : nil))
        case "skiff.promote":
            try arguments.requireCount(2)
            return .membership(.promote(name: arguments.text(at: 1)))
        case "skiff.remove":
            try arguments.requireCount(2)
            return .membership(.remove(name: arguments.text(at: 1)))
        case "skiff.watch":
            try arguments.requireCount(2...4)
            guard arguments.count == 2 || (arguments.count == 4 && arguments.word(at: 2) == "from") else { throw RESPCommandError("ERR syntax error") }
            var from: UInt64?
            if arguments.count == 4 {
                guard let revision = CommandArguments.parseInteger(arguments[3]), revision >= 1 else {
                    throw RESPCommandError("ERR the revision must be a positive integer")
                }
                from = UInt64(revision)
            }
            return .watch(prefix: arguments[1], from: from)
        case "skiff.transfer":
            try arguments.requireCount(2)
            return .membership(.transferLeadership(to: arguments.text(at: 1)))
        case "skiff.standby":
            try arguments.requireCount(5)
            guard let id = UInt64(arguments.text(at: 2)), id != 0 else { throw RESPCommandError("ERR the node id must be a positive integer") }
            return .membership(.standby(name: arguments.text(at: 1), nodeID: id, peerAddress: arguments.text(at: 3), clientAddress: arguments.text(at: 4)))
        case "skiff.init":
            try arguments.requireCount(3...)
            return .membership(.initialise(clusterName: arguments.text(at: 1), voters: (2..<arguments.count).map { arguments.text(at: $0) }))
        case "skiff.adopt":
            try arguments.requireCount(3...)
            guard arguments.count % 2 == 1 else { throw RESPCommandError("ERR SKIFF.ADOPT takes key value pairs") }
            var fields: [String: String] = [:]
            for position in stride(from: 1, to: arguments.count, by: 2) { fields[arguments.text(at: position)] = arguments.text(at: position + 1) }
            return .membership(.adopt(fields: fields))
        default:
            return nil
        }
    }

    /// `HELLO [protover [AUTH username password] [SETNAME clientname]]`, options in any order.
    private static func helloOptions(_ arguments: CommandArguments) throws(RESPCommandError) -> HelloOptions {
        var options = HelloOptions()
        guard arguments.count > 1 else { return options }
        guard let version = CommandArguments.parseInteger(arguments[1]) else {
            throw RESPCommandError("ERR Protocol version is not an integer or out of range")
        }
        guard version == 2 || version == 3 else { throw RESPCommandError("NOPROTO unsupported protocol version") }
        options.protocolVersion = Int(version)
        var position = 2
        while position < arguments.count {
            let following = arguments.count - 1 - position
            switch arguments.word(at: position) {
            case "auth" where following >= 2:
                options.user = arguments[position + 1]
                options.password = arguments[position + 2]
                position += 3
            case "setname" where following >= 1:
                options.clientName = arguments[position + 1]
                position += 2
            default:
                throw RESPCommandError("ERR Syntax error in HELLO option '\(arguments.text(at: position))'")
            }
        }
        if let name = options.clientName { try requireValidClientName(name) }
        return options
    }

    /// CLIENT's subcommands; `arguments` is named as the subcommand (`client|setname`).
    private static func clientRequest(_ arguments: CommandArguments) throws(RESPCommandError) -> ClientRequest {
        switch arguments.name {
        case "client|setname":
            try arguments.requireCount(3)
            try requireValidClientName(arguments[2])
            return .setName(arguments[2])
        case "client|getname":
            try arguments.requireCount(2)
            return .getName
        case "client|id":
            try arguments.requireCount(2)
            return .id
        case "client|setinfo":
            return .setInfo
        case "client|info":
            try arguments.requireCount(2)
            return .info
        case "client|list":
            return try .list(ids: clientListFilter(arguments))
        case "client|kill":
            try arguments.requireCount(3...)
            return try .kill(clientKillFilter(arguments))
        default:
            throw .unknownSubcommand(arguments)
        }
    }

    /// `CLIENT LIST [TYPE normal | master | replica | pubsub] [ID id [id ...]]`: the ids to list, in the
    /// order given, nil for all.
    private static func clientListFilter(_ arguments: CommandArguments) throws(RESPCommandError) -> [Int64]? {
        guard arguments.count > 2 else { return nil }
        switch arguments.word(at: 2) {
        case "type" where arguments.count == 4:
            return try isNormalClientType(arguments, at: 3) ? nil : []
        case "id" where arguments.count > 3:
            var ids: [Int64] = []
            for position in 3..<arguments.count {
                guard let id = CommandArguments.parseInteger(arguments[position]) else { throw RESPCommandError("ERR Invalid client ID") }
                ids.append(id)
            }
            return ids
        default:
            throw .syntax
        }
    }

    /// Whether the client type named at `position` is `normal`, the type of every connection here; false for
    /// the other types Redis knows.
    private static func isNormalClientType(_ arguments: CommandArguments, at position: Int) throws(RESPCommandError) -> Bool {
        switch arguments.word(at: position) {
        case "normal": return true
        case "master", "replica", "slave", "pubsub": return false
        default: throw RESPCommandError("ERR Unknown client type '\(arguments.text(at: position))'")
        }
    }

    /// `CLIENT KILL addr:port`, or `CLIENT KILL [ID id] [ADDR addr:port] [LADDR addr:port] [TYPE type] [USER name]
    /// [SKIPME yes|no]`.
    private static func clientKillFilter(_ arguments: CommandArguments) throws(RESPCommandError) -> ClientKillFilter {
        if arguments.count == 3 { return ClientKillFilter(address: arguments.text(at: 2), skipMe: false, oldForm: true) }
        guard arguments.count % 2 == 0 else { throw .syntax }
        var filter = ClientKillFilter()
        for position in stride(from: 2, to: arguments.count, by: 2) {
            switch arguments.word(at: position) {
            case "id":
                guard let id = CommandArguments.parseInteger(arguments[position + 1]), id > 0 else {
                    throw RESPCommandError("ERR client-id should be greater than 0")
                }
                filter.id = id
            case "addr": filter.address = arguments.text(at: position + 1)
            case "laddr": filter.localAddress = arguments.text(at: position + 1)
            case "skipme":
                switch arguments.word(at: position + 1) {
                case "yes": filter.skipMe = true
                case "no": filter.skipMe = false
                default: throw .syntax
                }
            case "type":
                if try !isNormalClientType(arguments, at: position + 1) { filter.matchesNone = true }
            case "user":
                guard arguments[position + 1] == Array("default".utf8) else { throw RESPCommandError("ERR No such user '\(arguments.text(at: position + 1))'") }
            default:
                throw .syntax
            }
        }
        return filter
    }

    /// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS [name ...]`, `COMMAND INFO [name ...]`.
    private static func commandQuery(_ arguments: CommandArguments) throws(RESPCommandError) -> CommandQuery {
        guard arguments.count > 1 else { return .list }
        let subcommand = arguments.subcommand
        switch subcommand.name {
        case "command|count":
            try subcommand.requireCount(2)
            return .count
        case "command|docs":
            return .docs
        case "command|info":
            return .info(arguments.words(from: 2).map(CommandArguments.lowercased))
        default:
            throw .unknownSubcommand(arguments)
        }
    }

    /// Redis allows only printable ASCII other than space in a client name (an empty name clears it).
    private static func requireValidClientName(_ name: [UInt8]) throws(RESPCommandError) {
        guard name.allSatisfy({ (UInt8(ascii: "!")...UInt8(ascii: "~")).contains($0) }) else {
            throw RESPCommandError("ERR Client names cannot contain spaces, newlines or special characters.")
        }
    }
}
