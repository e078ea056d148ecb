import Testing
@testable import SkiffRaft

@Suite struct ClusterConfigurationTests {
    @Test func detailsSurviveEncodingAndFollowTheirMember() throws {
        let base = ClusterConfiguration(voters: [NodeID(1), NodeID(2)], details: [NodeID(1): Array("n1".utf8)])
        let withLearner = try base.applying(.addLearner(NodeID(3)), details: Array("n3 10.0.0.3:7380".utf8)).get()
        #expect(withLearner.details[NodeID(3)] == Array("n3 10.0.0.3:7380".utf8))
        #expect(ClusterConfiguration(decoding: withLearner.encoded()) == withLearner)

        let promoted = try withLearner.applying(.addVoter(NodeID(3))).get()
        #expect(promoted.voters.contains(NodeID(3)))
        #expect(promoted.details[NodeID(3)] == Array("n3 10.0.0.3:7380".utf8), "a promoted learner keeps its details")

        let removed = try promoted.applying(.remove(NodeID(1))).get()
        #expect(removed.details[NodeID(1)] == nil)
        #expect(ClusterConfiguration(decoding: removed.encoded()) == removed)
    }

    @Test func configurationsWithoutDetailsKeepTheFirstEncoding() {
        let plain = ClusterConfiguration(voters: [NodeID(1), NodeID(2)], learners: [NodeID(5)])
        let bytes = plain.encoded()
        #expect(bytes.first == 1)
        #expect(bytes.count == 1 + 4 + 16 + 4 + 8)
        #expect(ClusterConfiguration(decoding: bytes) == plain)
    }

    @Test func malformedDetailsAreRefused() {
        let good = ClusterConfiguration(voters: [NodeID(1)], details: [NodeID(1): [7, 7, 7]]).encoded()
        #expect(ClusterConfiguration(decoding: Array(good.dropLast())) == nil, "details cut short")
        #expect(ClusterConfiguration(decoding: good + [0]) == nil, "bytes after the details")
        var stranger = good
        stranger[1 + 4 + 8 + 4 + 4] = 9  // the details' node id, now a node that is not a member
        #expect(ClusterConfiguration(decoding: stranger) == nil, "details of a non-member")
    }
}
