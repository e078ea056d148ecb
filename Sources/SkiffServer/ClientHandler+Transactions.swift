import SkiffKV
import SkiffRESP

/// A connection's transaction between MULTI and EXEC: the commands queued, in order, and whether one was
/// refused while queueing (EXEC then runs none of them, as in Redis). A command whose arguments were refused
/// is queued with its refusal, which EXEC gives as that command's reply, since Redis finds such errors only
/// when it runs the command.
struct ClientTransaction {
    var commands: [Result<ClientCommand, RESPCommandError>] = []
    var refused = false
    /// The bytes of keys and values its writes carry, bounded like one write's.
    var payloadBytes = 0

    /// A transaction holds at most this many commands, and a connection watches at most this many keys, so
    /// that a client cannot grow either without bound.
    static let commandsMax = 100_000

    var writes: [KVCommand] {
        commands.compactMap { if case .success(.write(let write, _)) = $0 { write } else { nil } }
    }

    /// For each number of writes applied (0 through all of them), the positions of the reads that come
    /// after exactly that many writes: what `KVStore.applyTransaction` lets them see.
    var readsByWritesBefore: [[Int]] {
        var groups: [[Int]] = [[]]
        for (position, command) in commands.enumerated() {
            switch command {
            case .success(.write): groups.append([])
            case .success(.read): groups[groups.count - 1].append(position)
            default: break
            }
        }
        return groups
    }
}

/// MULTI, EXEC, DISCARD, WATCH and UNWATCH. A transaction with writes becomes one log entry (a
/// `KVCommand.transaction`), so its writes apply together on every node, with nothing between them; its
/// reads are answered on this node as that entry is applied, from the key space as the writes before them
/// left it. A transaction of reads only is answered in one step after a ReadIndex round. WATCH remembers
/// each key's revision, read as a linearizable read; the transaction runs only if every watched key still has
/// it when it applies. A key absent at WATCH that was created and removed again by EXEC counts as unchanged.
extension ClientHandler {
    /// Handles `command` if a transaction is open and it belongs in it (queued: +QUEUED) or is refused there;
    /// returns false for what runs as usual (EXEC, DISCARD, QUIT, or no transaction open).
    func queueInTransaction(_ command: ClientCommand, slot: Int) -> Bool {
        guard transaction != nil else { return false }
        switch command {
        case .exec, .discard, .quit:
            return false
        case .multi:
            reply(.error("ERR MULTI calls can not be nested"), slot: slot)
        case .watchKeys:
            reply(.error("ERR WATCH inside MULTI is not allowed"), slot: slot)
        case _ where !command.mayWaitInTransaction:
            refuseInTransaction(.error("ERR Command not allowed inside a transaction"), slot: slot)
        default:
            queue(.success(command), slot: slot)
        }
        return true
    }

    /// Handles a command that failed to parse: queued with its refusal inside a transaction, unless Redis
    /// would refuse it there too (then it marks the transaction); otherwise answered with it.
    func refuseParsed(_ error: RESPCommandError, slot: Int) {
        if transaction != nil && !error.abortsTransaction { queue(.failure(error), slot: slot) } else { refuseInTransaction(error.reply, slot: slot) }
    }

    private func queue(_ command: Result<ClientCommand, RESPCommandError>, slot: Int) {
        switch command {
        case .success(.write(let write, _)): transaction!.payloadBytes += write.payloadBytes
        case .failure(let error): transaction!.payloadBytes += error.message.utf8.count  // it may quote an argument
        case .success: break
        }
        let bytesMax = node.configuration.limits.bulkBytesMax * 2
        if transaction!.payloadBytes > bytesMax {
            refuseInTransaction(.error("ERR the transaction is larger than the \(bytesMax) bytes one write may be"), slot: slot)
        } else if transaction!.commands.count == ClientTransaction.commandsMax {
            refuseInTransaction(.error("ERR a transaction holds at most \(ClientTransaction.commandsMax) commands"), slot: slot)
        } else {
            transaction!.commands.append(command)
            reply(.simple("QUEUED"), slot: slot)
        }
    }

    /// Replies `error` to a command and, if a transaction is open, marks it so that EXEC runs nothing.
    func refuseInTransaction(_ error: RESPValue, slot: Int) {
        transaction?.refused = true
        reply(error, slot: slot)
    }

    func runTransactionCommand(_ command: ClientCommand, slot: Int) {
        switch command {
        case .multi:
            transaction = ClientTransaction()
            reply(.ok, slot: slot)
        case .discard:
            guard transaction != nil else { return reply(.error("ERR DISCARD without MULTI"), slot: slot) }
            transaction = nil
            watchedKeys = [:]
            reply(.ok, slot: slot)
        case .unwatch:
            watchedKeys = [:]
            reply(.ok, slot: slot)
        case .watchKeys(let keys):
            guard watchedKeys.count + Set(keys).count(where: { watchedKeys[$0] == nil }) <= ClientTransaction.commandsMax else {
                return reply(.error("ERR a connection watches at most \(ClientTransaction.commandsMax) keys"), slot: slot)
            }
            if session.readOnly {
                watch(keys)
                return reply(.ok, slot: slot)
            }
            startAlone()
            node.submitRead({ [self] in
                watch(keys)
                finished(.ok, slot: slot)
            }, fail: { [self] in finished(Self.readFailure, slot: slot) })
        case .exec:
            guard let transaction else { return reply(.error("ERR EXEC without MULTI"), slot: slot) }
            let watched = watchedKeys.map { KVCommand.WatchedKey(key: $0.key, revision: $0.value) }
            self.transaction = nil
            watchedKeys = [:]
            if transaction.refused { return reply(.error("EXECABORT Transaction discarded because of previous errors."), slot: slot) }
            exec(transaction, watched: watched, slot: slot)
        default:
            preconditionFailure("\(command) is not a transaction command")
        }
    }

    /// Records each key's current revision, unless the key is watched already (the first WATCH counts).
    private func watch(_ keys: [[UInt8]]) {
        for key in keys where watchedKeys[key] == nil {
            watchedKeys[key] = node.store.entry(for: key)?.revision ?? 0
        }
    }

    /// Runs the transaction and answers it in the protocol version in force when EXEC came, even if a HELLO
    /// inside it changes the connection's.
    private func exec(_ transaction: ClientTransaction, watched: [KVCommand.WatchedKey], slot: Int) {
        let version = session.protocolVersion
        var replies = [RESPValue?](repeating: nil, count: transaction.commands.count)
        let readGroups = transaction.readsByWritesBefore
        let answer = { [self] (writeReplies: [KVReply]?) -> RESPValue in
            guard let writeReplies else { return .nullArray }
            var nextWrite = 0
            for (position, queued) in transaction.commands.enumerated() where replies[position] == nil {
                switch queued {
                case .failure(let error):
                    replies[position] = error.reply
                case .success(.write(_, let style)):
                    replies[position] = style.reply(for: writeReplies[nextWrite])
                    nextWrite += 1
                case .success(.unwatch):
                    replies[position] = .ok  // EXEC forgets the watched keys anyway
                case .success(.client(.list(let ids))):
                    replies[position] = .verbatim(clientList(ids: ids))
                case .success(.client(.info)):
                    replies[position] = .verbatim(clientLine(now: .now()) + "\n")
                case .success(let command):
                    assert(!isRead(command), "every read was answered as the transaction applied")
                    replies[position] = session.answer(command, node: node, connectionID: connectionID, clients: connections.counts)
                }
            }
            return .array(replies.map { $0! })
        }
        let runReads = { [self] (writesApplied: Int) in
            for position in readGroups[writesApplied] {
                guard case .success(.read(let read)) = transaction.commands[position] else { continue }
                replies[position] = read.execute(on: node.store)
            }
        }
        let writes = transaction.writes
        if writes.isEmpty {
            let run = { [self] () -> RESPValue in
                guard watchedUnchanged(watched) else { return answer(nil) }
                runReads(0)
                return answer([])
            }
            if session.readOnly || (watched.isEmpty && readGroups[0].isEmpty) { return reply(run(), slot: slot, protocolVersion: version) }
            startAlone()
            return node.submitRead({ [self] in finished(run(), slot: slot, protocolVersion: version) },
                                   fail: { [self] in finished(Self.readFailure, slot: slot, protocolVersion: version) })
        }
        startAlone()
        node.submitWrite(.transaction(watched: watched, writes: writes), between: runReads) { [self] result in
            switch result {
            case .success(.many(let writeReplies)): finished(answer(writeReplies), slot: slot, protocolVersion: version)
            case .success(.null): finished(answer(nil), slot: slot, protocolVersion: version)
            case .success(let other): preconditionFailure("a transaction replied \(other)")
            case .failure(let failure): finished(Self.reply(for: failure), slot: slot, protocolVersion: version)
            }
        }
    }

    private func watchedUnchanged(_ watched: [KVCommand.WatchedKey]) -> Bool {
        watched.allSatisfy { (node.store.entry(for: $0.key)?.revision ?? 0) == $0.revision }
    }

    private func isRead(_ command: ClientCommand) -> Bool {
        if case .read = command { true } else { false }
    }
}
