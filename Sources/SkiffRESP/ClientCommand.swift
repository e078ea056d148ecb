import SkiffKV

/// A command a client sent, parsed and checked: each argument has its type and each option its value, so
/// whoever runs the command never looks at the words again. `parse` refuses what Redis would refuse, in
/// Redis's words.
///
/// Leaves out key expiry, types other than strings and databases other than 0: commands that need them
/// are refused when parsed, so they never reach the log. The commands that only ask about expiry (TTL,
/// PERSIST, GETEX without a time) answer as Redis would for keys that never expire.
public enum ClientCommand: Hashable, Sendable {
    /// PING, with the message to send back instead of PONG.
    case ping(message: [UInt8]?)
    case echo([UInt8])
    case hello(HelloOptions)
    case auth(user: [UInt8]?, password: [UInt8])
    /// SELECT: only database 0 exists, so only 0 gets this far.
    case select(Int)
    case quit
    /// A read, served from the local key space.
    case read(ReadCommand)
    /// A write, replicated through the log; `reply` says how its result becomes this command's reply.
    case write(KVCommand, reply: WriteReplyStyle)
    /// INFO: lowercased section names; none means the default sections.
    case info(sections: [String])
    case command(CommandQuery)
    case client(ClientRequest)
    /// CONFIG GET: the parameter name patterns.
    case configGet(patterns: [[UInt8]])
    /// READONLY and READWRITE, which cluster-aware clients send to replicas.
    case readOnly, readWrite
    /// TIME: this node's clock, as seconds and microseconds since the Unix epoch.
    case time
    /// SKIFF.STATUS (this node's Raft state) and SKIFF.MEMBERS (the cluster's members).
    case skiffStatus, skiffMembers
    /// A change of who is in the cluster, run by the leader (a follower hands it over).
    case membership(MembershipCommand)
    /// SKIFF.WATCH prefix [FROM revision]: stream every change under `prefix`, from `from` (or from now).
    case watch(prefix: [UInt8], from: UInt64?)
    /// MULTI, EXEC and DISCARD: a transaction, queued on the connection and run by EXEC as one log entry.
    case multi, exec, discard
    /// WATCH: the next EXEC on this connection runs its transaction only if none of these keys changed since.
    case watchKeys([[UInt8]])
    case unwatch
}

extension ClientCommand {
    /// Whether the command may wait in a transaction, as in Redis: reads, writes, and the connection and
    /// server commands `transactionCommandNames` names, but not CLIENT KILL, SKIFF.WATCH or a change of the
    /// cluster's membership. Those are refused there, and the refusal aborts the transaction.
    public var mayWaitInTransaction: Bool {
        switch self {
        case .read, .write, .ping, .echo, .hello, .auth, .select, .readOnly, .readWrite, .time, .info, .command, .configGet,
             .skiffStatus, .skiffMembers, .unwatch: true
        case .client(let request): if case .kill = request { false } else { true }
        default: false
        }
    }
}

/// The SKIFF.* commands that change the cluster's membership or leader. Names are node names (`--id`);
/// addresses are `HOST:PORT` text, checked by the server.
public enum MembershipCommand: Hashable, Sendable {
    /// `SKIFF.JOIN name node-id peer-addr client-addr protocol-version [cluster-uuid]`: a new node asks to
    /// come in (as a learner) under the Raft id it drew; the UUID is given by a node whose data already
    /// belongs to a cluster.
    case join(name: String, nodeID: UInt64, peerAddress: String, clientAddress: String, protocolVersion: Int, clusterUUID: String?)
    /// `SKIFF.ADDLEARNER name peer-addr [client-addr]`
    case addLearner(name: String, peerAddress: String, clientAddress: String?)
    /// `SKIFF.PROMOTE name`: a learner that has caught up becomes a voter.
    case promote(name: String)
    /// `SKIFF.REMOVE name`
    case remove(name: String)
    /// `SKIFF.TRANSFER name`: hand leadership to that voter.
    case transferLeadership(to: String)
    /// `SKIFF.STANDBY name node-id peer-addr client-addr`: a node that was removed, and is configured to stand
    /// by, asks to be added back as a learner under its own id (it kept its data, vote included).
    case standby(name: String, nodeID: UInt64, peerAddress: String, clientAddress: String)
    /// `SKIFF.INIT cluster-name voter...`: form a cluster of waiting (uninitialised) nodes.
    case initialise(clusterName: String, voters: [String])
    /// `SKIFF.ADOPT key value ...`: the node coordinating an init hands a waiting voter the cluster's
    /// identity (`cluster NAME uuid UUID base HEX`).
    case adopt(fields: [String: String])

    /// The command as a client sends it, to hand it to the leader.
    public var words: [[UInt8]] {
        let text: [String] = switch self {
        case .join(let name, let id, let peer, let client, let version, let uuid):
            ["SKIFF.JOIN", name, String(id), peer, client, String(version)] + (uuid.map { [$0] } ?? [])
        case .addLearner(let name, let peer, let client): ["SKIFF.ADDLEARNER", name, peer] + (client.map { [$0] } ?? [])
        case .promote(let name): ["SKIFF.PROMOTE", name]
        case .remove(let name): ["SKIFF.REMOVE", name]
        case .transferLeadership(let name): ["SKIFF.TRANSFER", name]
        case .standby(let name, let id, let peer, let client): ["SKIFF.STANDBY", name, String(id), peer, client]
        case .initialise(let name, let voters): ["SKIFF.INIT", name] + voters
        case .adopt(let fields): ["SKIFF.ADOPT"] + fields.sorted { $0.key < $1.key }.flatMap { [$0.key, $0.value] }
        }
        return text.map { Array($0.utf8) }
    }
}

/// HELLO's arguments: `HELLO [protover [AUTH username password] [SETNAME clientname]]`. The version, when
/// given, is 2 or 3; the client name, when given, has passed the same check as CLIENT SETNAME's.
public struct HelloOptions: Hashable, Sendable {
    public var protocolVersion: Int?
    public var user: [UInt8]?
    public var password: [UInt8]?
    public var clientName: [UInt8]?

    public init(protocolVersion: Int? = nil, user: [UInt8]? = nil, password: [UInt8]? = nil, clientName: [UInt8]? = nil) {
        self.protocolVersion = protocolVersion
        self.user = user
        self.password = password
        self.clientName = clientName
    }
}

/// What COMMAND asks about: the command table (`COMMAND`), its size (`COMMAND COUNT`), documentation
/// (`COMMAND DOCS [name ...]`) or details of the lowercased names given (`COMMAND INFO [name ...]`).
public enum CommandQuery: Hashable, Sendable {
    case list, count, docs
    case info([String])
}

/// The CLIENT subcommands Skiff answers. SETINFO's arguments are accepted and ignored; a name passed to
/// SETNAME has only printable characters other than space.
public enum ClientRequest: Hashable, Sendable {
    case setName([UInt8])
    case getName, id, setInfo, info
    /// CLIENT LIST: every connection, or those with the ids given, in that order (none for TYPE master,
    /// replica or pubsub: every connection here is a normal one).
    case list(ids: [Int64]?)
    case kill(ClientKillFilter)
}

/// Which connections CLIENT KILL ends: those that match every filter given. The old form (`CLIENT KILL
/// addr:port`) names one address and may end the caller itself; the new form (`CLIENT KILL [ID id] [ADDR
/// addr:port] [LADDR addr:port] [TYPE type] [USER name] [SKIPME yes|no]`) skips the caller unless told
/// `SKIPME no`. A TYPE other than normal, or a USER other than default, matches no connection here.
public struct ClientKillFilter: Hashable, Sendable {
    public var id: Int64?
    public var address: String?
    public var localAddress: String?
    public var matchesNone = false
    public var skipMe = true
    public var oldForm = false

    public init(id: Int64? = nil, address: String? = nil, localAddress: String? = nil, matchesNone: Bool = false,
                skipMe: Bool = true, oldForm: Bool = false) {
        self.id = id
        self.address = address
        self.localAddress = localAddress
        self.matchesNone = matchesNone
        self.skipMe = skipMe
        self.oldForm = oldForm
    }
}

/// A read of the key space: the commands a node answers from its own `KVStore` without a log entry.
public enum ReadCommand: Hashable, Sendable {
    case get([UInt8])
    case mget([[UInt8]])
    case exists([[UInt8]])
    case strlen([UInt8])
    /// GETRANGE and SUBSTR: inclusive byte offsets, negative ones counting from the end.
    case getRange([UInt8], start: Int64, end: Int64)
    case keys(pattern: [UInt8])
    /// SCAN: `pattern` is MATCH's, nil without one; TYPE is only accepted as `string`, so it needs no field.
    case scan(cursor: UInt64, pattern: [UInt8]?, count: Int)
    case randomKey
    case dbSize
    case type([UInt8])
    /// TTL, PTTL, EXPIRETIME and PEXPIRETIME: no key has a timeout here, so -1 for a key that exists and -2
    /// for one that does not.
    case timeToLive([UInt8])
    /// PERSIST: there is never a timeout to remove, so always 0.
    case persist([UInt8])
}

/// How a write's `KVReply` becomes the RESP reply of the command the client sent.
public enum WriteReplyStyle: Hashable, Sendable {
    /// The reply as it is: `ok` is +OK, `null` a null, an error an error line.
    case plain
    /// SETNX: `ok` (stored) is :1 and `null` (not stored) is :0.
    case setIfAbsentAsInteger

    public func reply(for result: KVReply) -> RESPValue {
        switch (self, result) {
        case (.setIfAbsentAsInteger, .ok): .integer(1)
        case (.setIfAbsentAsInteger, .null): .integer(0)
        case (_, .ok): .ok
        case (_, .null): .null
        case (_, .integer(let value)): .integer(value)
        case (_, .bulk(let bytes)): .bulk(bytes)
        case (_, .error(let message)): .error(message)
        case (_, .many(let replies)): .array(replies.map { WriteReplyStyle.plain.reply(for: $0) })
        }
    }
}

/// A command refused before it ran. `message` is Redis's wording, error code first and without the leading
/// "-" (`ERR syntax error`), so clients react as they would to Redis.
public struct RESPCommandError: Error, Hashable, Sendable {
    public var message: String
    /// Whether Redis refuses this before it queues the command in a transaction, so that EXEC then runs
    /// nothing: an unknown command or subcommand, a count outside COMMAND's arity, or any refusal of a
    /// command that may not wait in a transaction. Otherwise the command is queued, and this is its reply
    /// in EXEC's, since Redis finds such errors only when it runs the command.
    public var abortsTransaction: Bool

    public init(_ message: String, abortsTransaction: Bool = false) {
        self.message = message
        self.abortsTransaction = abortsTransaction
    }

    public var reply: RESPValue { .error(message) }
}
