#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SkiffKV
import SkiffRESP

/// One connection's settings (protocol version, authentication, name, stale reads allowed) and the
/// commands that only read or change them.
struct ClientSession {
    let password: String?
    var protocolVersion = 2
    var authenticated: Bool
    var name: [UInt8]?
    /// READONLY: reads are served from this node's state without a ReadIndex round (possibly stale).
    var readOnly = false

    init(password: String?) {
        self.password = password
        authenticated = password == nil
    }

    /// Until a configured password is given, only AUTH, HELLO and QUIT are taken.
    func refusal(for command: ClientCommand) -> RESPValue? {
        guard !authenticated else { return nil }
        switch command {
        case .auth, .quit: return nil
        case .hello(let options) where options.password != nil: return nil
        default: return .error("NOAUTH Authentication required.")
        }
    }

    mutating func answer(_ command: ClientCommand, node: Node, connectionID: Int64, clients: @autoclosure () -> ClientCounts) -> RESPValue {
        switch command {
        case .ping(let message): return message.map(RESPValue.bulk) ?? .simple("PONG")
        case .echo(let message): return .bulk(message)
        case .select: return .ok
        case .auth(let user, let password):
            return authenticate(user: user, password: password) ?? .ok
        case .hello(let options):
            if let password = options.password, let refusal = authenticate(user: options.user, password: password) { return refusal }
            if !authenticated { return .error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time") }
            if let version = options.protocolVersion { protocolVersion = version }
            if let clientName = options.clientName { name = clientName }
            let status = node.status
            return .orderedMap([
                (.bulk("server"), .bulk("skiff")), (.bulk("version"), .bulk(InfoReport.redisVersion)),
                (.bulk("proto"), .integer(Int64(protocolVersion))), (.bulk("id"), .integer(connectionID)),
                (.bulk("mode"), .bulk("standalone")), (.bulk("role"), .bulk(status.role == "leader" ? "master" : "replica")),
                (.bulk("modules"), .array([])),
            ])
        case .client(let request):
            switch request {
            case .setName(let newName): name = newName.isEmpty ? nil : newName
            case .getName: return name.map(RESPValue.bulk) ?? .null
            case .id: return .integer(connectionID)
            case .setInfo: break
            case .info, .list, .kill: preconditionFailure("\(request) is executed by the connection handler, which knows the connections")
            }
            return .ok
        case .readOnly:
            readOnly = true
            return .ok
        case .readWrite:
            readOnly = false
            return .ok
        case .info(let sections):
            return .verbatim(InfoReport.text(node.status, sections: sections, configuration: node.configuration, clients: clients()))
        case .configGet(let patterns): return InfoReport.config(patterns, configuration: node.configuration)
        case .command(let query): return InfoReport.commands(query)
        case .time:
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            return .array([.bulk(String(now.tv_sec)), .bulk(String(now.tv_nsec / 1000))])
        case .skiffStatus: return InfoReport.statusReply(node.status)
        case .skiffMembers: return InfoReport.membersReply(node.status)
        case .read, .write, .membership, .watch, .quit, .multi, .exec, .discard, .watchKeys, .unwatch: preconditionFailure("\(command) is executed by the connection handler")
        }
    }

    /// Checks a password against the configured one; nil if accepted.
    mutating func authenticate(user: [UInt8]?, password given: [UInt8]) -> RESPValue? {
        guard let password else {
            return .error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
        }
        guard user.map({ $0 == Array("default".utf8) }) ?? true, given == Array(password.utf8) else {
            return .error("WRONGPASS invalid username-password pair or user is disabled.")
        }
        authenticated = true
        return nil
    }
}
