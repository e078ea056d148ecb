import NIOCore
import SkiffRESP

/// CLIENT LIST, CLIENT INFO and CLIENT KILL: the connections of this node as Redis describes and ends them.
extension ClientHandler {
    /// This connection as a line of CLIENT LIST: the fields Redis gives that mean something here. `flags` is
    /// N, or r after READONLY; `cmd` is the last command received, with its subcommand for a container
    /// command (`client|list`).
    func clientLine(now: NIODeadline) -> String {
        let name = session.name.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let age = (now - openedAt).nanoseconds / 1_000_000_000
        let idle = (now - lastCommandAt).nanoseconds / 1_000_000_000
        return "id=\(connectionID) addr=\(Self.text(of: context?.channel.remoteAddress)) laddr=\(Self.text(of: context?.channel.localAddress))"
            + " name=\(name) age=\(age) idle=\(idle) flags=\(session.readOnly ? "r" : "N") db=0 multi=-1"
            + " cmd=\(lastCommandName) user=default resp=\(session.protocolVersion)"
    }

    /// Ends the connections `filter` picks (this one last, after its reply). The old form answers OK, or an
    /// error if no connection has the address; the new one the number of connections ended.
    func kill(_ filter: ClientKillFilter) -> RESPValue {
        let picked = connections.handlers().filter { handler in
            (filter.id.map { $0 == handler.connectionID } ?? true)
                && (filter.address.map { $0 == Self.text(of: handler.context?.channel.remoteAddress) } ?? true)
                && (filter.localAddress.map { $0 == Self.text(of: handler.context?.channel.localAddress) } ?? true)
                && !(filter.skipMe && handler === self)
        }
        for handler in picked where handler !== self { handler.context?.close(promise: nil) }
        if picked.contains(where: { $0 === self }) { closeAfterReply() }
        guard filter.oldForm else { return .integer(Int64(picked.count)) }
        return picked.isEmpty ? .error("ERR No such client") : .ok
    }

    /// `ip:port`, with an IPv6 address in brackets, as Redis writes addresses.
    static func text(of address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    private var lastCommandName: String {
        guard let (name, subcommand) = lastCommand else { return "NULL" }
        let lowercased = String(decoding: name, as: UTF8.self).lowercased()
        guard let subcommand, ["client", "config", "command"].contains(lowercased) else { return lowercased }
        return lowercased + "|" + String(decoding: subcommand, as: UTF8.self).lowercased()
    }
}
