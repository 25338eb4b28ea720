import Forensics
import Foundation
import Testing

/// A user's recorded query is judged against the invoice as it stood when the query ran.
@Suite(.serialized) struct QueryTimeTests {
    @Test func aQueryBeforeTheApprovalIsExplainedByThePendingReview() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register(requiresReview: true, visible: ["approved"])
            f.granted()
            f.issue(at: "2024-12-31T16:59:26+08:00")
            f.attempted(at: "2024-12-31T17:00:05+08:00")
            let delivered = f.succeeded(at: "2024-12-31T17:00:07+08:00")
            let accepted = f.accepted(at: "2024-12-31T17:00:08+08:00")
            let query = f.query(at: "2025-01-02T09:00:00+08:00")
            f.approved(at: "2025-01-02T10:00:00+08:00")
            try await s.load(f)

            // Without the user: approved at 10:00, visible now.
            #expect(try s.why().visible)
            // For the user whose search at 09:00 came up empty: it was still pending review then.
            let answer = try s.why(user: Cast.user)
            #expect(!answer.visible)
            #expect(answer.causes.first?.code == .pendingReview)
            #expect(answer.causes.first?.evidence == [delivered, accepted])
            #expect(answer.query?.position == query)
            #expect(answer.asOf == Time.cst("2025-01-02T09:00:00+08:00"))
            #expect(answer.cutoff.at == nil)
        }
    }

    /// `show --at`: the state folded from the log as of a moment, not the current projection.
    @Test func theStateAsOfAMomentIsFoldedFromTheLog() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.issue(at: "2024-12-31T16:59:26+08:00")
            f.attempted(at: "2024-12-31T17:00:05+08:00")
            f.succeeded(at: "2024-12-31T17:00:07+08:00")
            f.accepted(at: "2024-12-31T17:00:08+08:00")
            try await s.load(f)

            let before = try #require(try s.forensics.state(typedKey: Cast.key, cutoff: Cutoff(at: TimeInput.parse("2024-12-31T17:00:06+08:00"))))
            #expect(before.state.systems[Cast.system]?.delivery == "attempting")
            #expect(before.state.systems[Cast.system]?.receipt == "none")
            let after = try #require(try s.forensics.state(typedKey: Cast.key, cutoff: Cutoff()))
            #expect(after.state.systems[Cast.system]?.receipt == "accepted")
            #expect(try s.forensics.state(typedKey: Cast.key, cutoff: Cutoff(at: TimeInput.parse("2024-12-30"))) == nil)
        }
    }
}
