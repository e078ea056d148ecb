extension RaftCore {
    /// Proposes a membership change, with the added member's `details` (see `ClusterConfiguration.details`).
    /// One change at a time: the previous one, and the leader's first entry of its term, must be committed first.
    public mutating func proposeConfigurationChange(_ change: ConfigurationChange, details: [UInt8]? = nil) -> Result<LogIndex, RaftRefusal> {
        if let refusal = proposalRefusal() { return .failure(refusal) }
        guard pendingConfigurationIndex <= log.committed else {
            return .failure(.configurationChangeInProgress(index: LogIndex(pendingConfigurationIndex)))
        }
        switch clusterConfiguration.applying(change, details: details) {
        case .failure(let refusal):
            return .failure(refusal)
        case .success(let next):
            let index = appendAsLeader(kind: .configuration, payload: next.encoded())
            pendingConfigurationIndex = index.rawValue
            return .success(index)
        }
    }

    /// The configuration in force right after `index` (for a snapshot taken there), for indices from the
    /// snapshot point on.
    public func clusterConfiguration(at index: LogIndex) -> ClusterConfiguration { configuration(at: index.rawValue) }

    /// The configuration in force right after `index`.
    func configuration(at index: UInt64) -> ClusterConfiguration {
        configurationEntries.last { $0.index <= index }?.configuration ?? baseConfiguration
    }

    /// Takes a configuration entry into force as soon as it is in the log.
    mutating func noteConfigurationEntry(at index: UInt64, payload: [UInt8]) {
        guard let decoded = ClusterConfiguration(decoding: payload) else {
            preconditionFailure("configuration entry \(index) does not decode")
        }
        configurationEntries.append((index, decoded))
        guard role == .leader else { return }
        for node in decoded.members where progress[node] == nil {
            progress[node] = Progress(next: log.lastIndex + 1, inflightMax: configuration.inflightMessagesMax)
            progress[node]!.recentActive = true
        }
        for node in progress.keys where !decoded.members.contains(node) && node != id {
            progress[node] = nil
        }
    }

    /// After entries were written into the log from `firstWritten` on (replacing whatever was there), brings
    /// the configuration list in line with the log.
    mutating func noteEntriesWritten(_ new: [Entry], from firstWritten: UInt64) {
        configurationEntries.removeAll { $0.index >= firstWritten }
        for entry in new where entry.index.rawValue >= firstWritten && entry.kind == .configuration {
            noteConfigurationEntry(at: entry.index.rawValue, payload: entry.payload)
        }
    }

    /// The transport connected `node`. A leader tells a node that neither its configuration nor its committed
    /// one includes that it was removed: a removed learner never campaigns, so it would not learn otherwise.
    public mutating func reportConnected(_ node: NodeID) {
        guard role == .leader, node != id, !clusterConfiguration.contains(node), !configuration(at: log.committed).contains(node) else { return }
        tellRemoved(node)
    }

    /// A node learns it was removed once a committed configuration leaves it out after an earlier one had it
    /// (or when the leader says so, see `Message.Kind.removed`). A removed node never campaigns. A configuration
    /// that includes it again, such as an operator adding it back, clears the mark.
    mutating func updateRemoved() {
        if clusterConfiguration.contains(id) {
            isRemoved = false
            return
        }
        let known = [baseConfiguration] + configurationEntries.filter { $0.index <= log.committed }.map(\.configuration)
        if let committed = known.last, !committed.contains(id), known.dropLast().contains(where: { $0.contains(id) }) {
            isRemoved = true
        }
    }
}
