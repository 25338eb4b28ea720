import FapiaoDomain
import Foundation
import Testing
@testable import Forensics

/// Several causes at once, the facts suggestions must name, and the CST/UTC day boundary.
struct CombinedCauseTests {
    @Test func everyCauseThatHoldsIsReportedInPipelineOrder() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.granted()
            let issued = f.issue(at: "2025-01-01T00:30:00+08:00")
            let attempt = f.attempted(at: "2025-01-01T00:31:00+08:00")
            let failure = f.failed(reason: "auth_expired", at: "2025-01-01T00:33:00+08:00")
            // Written in the order a careless reader would rank them: the query's facts first.
            let query = f.query(at: "2025-01-02T09:00:00+08:00", criteria: [
                "buyerName": "北京某某科技(集团)有限公司", "issuedFrom": "2024-12-01", "issuedTo": "2024-12-31",
            ])
            try await s.load(f)

            let answer = try s.why(user: Cast.user)
            #expect(!answer.visible)
            #expect(answer.codes == [.deliveryFailed, .queryDateOutOfRange, .queryBuyerNameMismatch])
            #expect(answer.decisive?.code == .deliveryFailed)
            #expect(answer.cause(.deliveryFailed)?.evidence == [attempt, failure])
            #expect(answer.cause(.deliveryFailed)?.since == Time.cst("2025-01-01T00:31:00+08:00"))
            #expect(answer.cause(.queryDateOutOfRange)?.evidence == [issued, query])
            #expect(answer.cause(.queryBuyerNameMismatch)?.evidence == [issued, query])
            #expect(answer.cause(.queryBuyerNameMismatch)?.since == Time.cst("2025-01-02T09:00:00+08:00"))

            // One suggestion per cause, in the causes' order, each naming its fact.
            #expect(answer.suggestions.count == 3, "\(answer.suggestions)")
            guard answer.suggestions.count == 3 else { return }
            #expect(answer.suggestions[0].contains("login expired at 2025-01-01T00:33:00+08:00"), "\(answer.suggestions[0])")
            #expect(answer.suggestions[1].contains("00:30 CST") && answer.suggestions[1].contains("2024-12-31 in UTC"), "\(answer.suggestions[1])")
            #expect(answer.suggestions[2].contains(Cast.buyerName) && answer.suggestions[2].contains("half-width brackets"), "\(answer.suggestions[2])")

            // The evaluated query is the recorded one, and the timeline shows it.
            #expect(answer.query?.position == query)
            #expect(answer.timeline.map(\.position) == [issued, attempt, failure, query])
        }
    }

    /// 2025-01-01T00:30 CST is 2024-12-31 in UTC: a range ending 2024-12-31 (CST) misses it,
    /// one starting 2025-01-01 finds it. The same instant sent with `Z` is the same invoice day.
    @Test(arguments: ["2025-01-01T00:30:00+08:00", "2024-12-31T16:30:00Z"])
    func issueDatesAreChinaStandardTime(issuedAt: String) async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            let issued = f.issue(at: issuedAt)
            f.attempted(at: "2024-12-31T16:31:00Z")
            f.succeeded(at: "2024-12-31T16:31:02Z")
            f.accepted(at: "2025-01-01T00:31:03+08:00")
            let approval = f.approved(at: "2025-01-02T02:00:00Z")
            try await s.load(f)

            let december = QueryCriteria(issuedFrom: Time.date("2024-12-01"), issuedTo: Time.date("2024-12-31"))
            let missed = try s.why(criteria: december)
            #expect(missed.codes == [.queryDateOutOfRange], "\(missed.causes)")
            #expect(missed.cause(.queryDateOutOfRange)?.evidence == [issued])
            #expect(missed.cause(.queryDateOutOfRange)?.since == nil)  // criteria from flags: no recorded query
            #expect(missed.cause(.queryDateOutOfRange)?.summary.contains("issued on 2025-01-01 (CST, 00:30)") == true, "\(missed.causes)")
            #expect(missed.suggestions == ["widen the date range to include 2025-01-01: the invoice was issued 00:30 CST, which is 2024-12-31 in UTC"])
            #expect(missed.query?.position == nil)

            let january = QueryCriteria(issuedFrom: Time.date("2025-01-01"), issuedTo: Time.date("2025-01-31"))
            #expect(try s.why(criteria: january).visible)

            // A `Z` time is shown in CST, and the same moment either way.
            let answer = try s.why()
            #expect(answer.visible)
            #expect(answer.timeline.first?.time == "2025-01-01T00:30:00+08:00")
            #expect(answer.timeline.first { $0.position == approval }?.time == "2025-01-02T10:00:00+08:00")
            #expect(answer.asOf == "2025-01-02T10:00:00+08:00")
        }
    }

    /// An invoice issued late on 31 December CST is on the 31st in both zones: no shift to explain.
    @Test func noUTCNoteWhenTheDaysAgree() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.issue(at: "2024-12-31T16:59:26+08:00")
            f.deliverAndApprove(from: "2024-12-31T17:00:05+08:00")
            try await s.load(f)

            let answer = try s.why(criteria: QueryCriteria(issuedFrom: Time.date("2025-01-01")))
            #expect(answer.codes == [.queryDateOutOfRange])
            #expect(answer.suggestions == ["widen the date range to include 2024-12-31"])
        }
    }
}
