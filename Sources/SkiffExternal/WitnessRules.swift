import SkiffRaft

/// How the external store answers as the third voter of a two-node cluster (witness mode): what a node
/// hands its core for a message the core addressed to the witness. The server and the simulation both
/// answer through these, so that the simulation tests the rules the server runs.
///
/// The witness's state is the external log as read (`ExternalLogView`): its log, its current term
/// (`witnessTerm`) and its vote (the counted vote records). A vote is a record written at the first free
/// slot, so votes and appends are ordered in one sequence, as a voter orders the requests it answers.
public enum WitnessRules {
    /// The answer to a pre-vote for `request.term`. Granted if the witness has not reached that term and the
    /// candidate's log is at least as up-to-date as the witness's, or can be made so by adopting the
    /// witness's tail (`ExternalLogView.lastAgreement` finds where it joins the candidate's log, whose
    /// terms `termOf` gives). A refusal carries the witness's term when it is ahead, so a node that was
    /// away catches up its term and asks again.
    public static func answerPreVote(_ request: Message, view: ExternalLogView, candidateTerms termOf: (LogIndex) -> Term?) -> Message {
        guard case .requestVote(let lastIndex, let lastTerm, true, _) = request.kind else {
            preconditionFailure("not a pre-vote request: \(request)")
        }
        let ahead = request.term <= view.witnessTerm
        let joins = !view.isBehind(lastIndex: lastIndex, lastTerm: lastTerm)
            || view.lastAgreement(with: termOf, upTo: lastIndex) != nil
        let granted = !ahead && joins
        let term = granted ? request.term : ahead ? view.witnessTerm : Term(request.term.rawValue - 1)
        return Message(from: request.to, to: request.from, term: term, kind: .voteResponse(granted: granted, preVote: true))
    }

    /// The vote record a candidate writes for `request`, a real vote request.
    public static func voteRecord(for request: Message) -> ExternalRecord {
        guard case .requestVote(let lastIndex, let lastTerm, false, _) = request.kind else {
            preconditionFailure("not a vote request: \(request)")
        }
        return .vote(term: request.term, candidate: request.from, lastIndex: lastIndex, lastTerm: lastTerm)
    }

    /// The answer to a vote request whose record counted (`granted`) or not.
    public static func answerVote(_ request: Message, granted: Bool) -> Message {
        Message(from: request.to, to: request.from, term: request.term, kind: .voteResponse(granted: granted, preVote: false))
    }

    /// The answer to a leader's heartbeat: an acknowledgement if nothing in `view` (read after the heartbeat
    /// was sent) fences the leader's term, which confirms it still led then (for reads and check-quorum).
    /// Nil if something does: the leader must step down.
    public static func answerHeartbeat(_ request: Message, view: ExternalLogView) -> Message? {
        guard case .heartbeat(_, let context) = request.kind else { preconditionFailure("not a heartbeat: \(request)") }
        guard view.admits(request.term) else { return nil }
        return Message(from: request.to, to: request.from, term: request.term, kind: .heartbeatResponse(context: context))
    }
}
