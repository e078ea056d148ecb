import NIOCore
import SkiffRESP

/// CLIENT LIST, CLIENT INFO and CLIENT KILL: the connections of this node as Redis describes and ends them.
extension ClientHandler {
    /// This connection as a line of CLIENT LIST: the fields Redis gives that mean something here. `flags` is
    /// r after READONLY and x inside MULTI, or N; `multi` counts the commands queued since MULTI (-1 outside
    /// one) and `watch` the keys watched; `cmd` is the last command received, with its subcommand for a
    /// container command (`client|list`).
    func clientLine(now: NIODeadline) -> String {
        let name = session.name.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let age = (now - openedAt).nanoseconds / 1_000_000_000
        let idle = (now - lastReadAt).nanoseconds / 1_000_000_000
        let flags = (session.readOnly ? "r" : "") + (transaction != nil ? "x" : "")
        return "id=\(connectionID) addr=\(Self.text(of: context?.channel.remoteAddress)) laddr=\(Self.text(of: context?.channel.localAddress))"
            + " name=\(name) age=\(age) idle=\(idle) flags=\(flags.isEmpty ? "N" : flags) db=0 multi=\(transaction.map { $0.commands.count } ?? -1) watch=\(watchedKeys.count)"
            + " cmd=\(lastCommandName) user=default resp=\(session.protocolVersion)"
    }

    /// CLIENT LIST's text: a line for each open connection, or for each of `ids` in that order (repeated
    /// as often as given, none for an id that is not open).
    func clientList(ids: [Int64]?) -> String {
        let now = NIODeadline.now()
        let open = connections.handlers().filter(\.isOpen)
        let listed = ids.map { ids in ids.compactMap { id in open.first { $0.connectionID == id } } } ?? open
        return listed.map { $0.clientLine(now: now) + "\n" }.joined()
    }

    /// Ends the connections `filter` picks (this one last, after its reply in `slot`). The old form answers
    /// OK, or an error if no connection has the address; the new one the number of connections ended.
    func kill(_ filter: ClientKillFilter, slot: Int) -> RESPValue {
        let picked = connections.handlers().filter { handler in
            handler.isOpen && !filter.matchesNone
                && (filter.id.map { $0 == handler.connectionID } ?? true)
                && (filter.address.map { $0 == Self.text(of: handler.context?.channel.remoteAddress) } ?? true)
                && (filter.localAddress.map { $0 == Self.text(of: handler.context?.channel.localAddress) } ?? true)
                && !(filter.skipMe && handler === self)
        }
        for handler in picked where handler !== self { handler.context?.close(promise: nil) }
        if picked.contains(where: { $0 === self }) { closeAfterReply(slot: slot) }
        guard filter.oldForm else { return .integer(Int64(picked.count)) }
        return picked.isEmpty ? .error("ERR No such client") : .ok
    }

    /// Neither closed nor closing once its last reply is written (after QUIT or CLIENT KILL).
    var isOpen: Bool { context?.channel.isActive == true && !closeAfterFlush }

    /// What CLIENT LIST shows as the command `words` parsed into: its name, and for the commands with
    /// subcommands the subcommand, which the parser has checked (so a client cannot put text of its own
    /// into another's listing).
    static func recordedName(_ words: [[UInt8]], of command: ClientCommand) -> (name: [UInt8], subcommand: [UInt8]?) {
        switch command {
        case .client, .configGet, .command(.count), .command(.docs), .command(.info): (words[0], words[1])
        default: (words[0], nil)
        }
    }

    /// `ip:port`, with an IPv6 address in brackets, as Redis writes addresses.
    static func text(of address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    private var lastCommandName: String {
        guard let (name, subcommand) = lastCommand else { return "NULL" }
        let lowercased = String(decoding: name, as: UTF8.self).lowercased()
        guard let subcommand else { return lowercased }  // `recordedName` keeps one only for container commands
        return lowercased + "|" + String(decoding: subcommand, as: UTF8.self).lowercased()
    }
}
