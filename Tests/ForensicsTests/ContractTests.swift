import FapiaoDomain
import Foundation
import Testing
@testable import Forensics

/// The JSON answer of docs/events.md: other systems parse it, so its keys, types and cause
/// codes are a contract.
struct ContractTests {
    /// The cause codes of docs/events.md, in the table's (pipeline) order.
    static let contractCodes = [
        "not_in_ledger", "issue_failed", "voided", "red_letter_reversed", "verification_failed", "wrong_recipient",
        "not_delivered", "delivery_pending", "delivery_failed", "receipt_rejected", "pending_review", "review_rejected",
        "projection_lag", "access_denied", "system_maintenance", "query_number_mismatch", "query_date_out_of_range",
        "query_buyer_name_mismatch", "query_seller_name_mismatch", "query_status_filtered",
    ]

    @Test func causeCodesAreTheContractsInPipelineOrder() {
        #expect(CauseCode.allCases.map(\.rawValue) == Self.contractCodes)
        #expect(CauseCode.allCases.sorted() == CauseCode.allCases)
    }

    @Test func whyAnswerEncodesToTheContractShape() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.granted()
            let issued = f.issue(at: "2025-01-01T00:30:00+08:00")
            let attempt = f.attempted(at: "2025-01-01T00:31:00+08:00")
            let failure = f.failed(reason: "auth_expired", at: "2025-01-01T00:33:00+08:00")
            let query = f.query(at: "2025-01-02T09:00:00+08:00", criteria: ["buyerName": "北京某某科技(集团)有限公司", "issuedTo": "2024-12-31"])
            try await s.load(f)

            let answer = try s.why(user: Cast.user)
            let data = try JSONEncoder().encode(answer)
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(Set(object.keys).isSuperset(of: ["key", "system", "user", "asOf", "visible", "causes", "timeline", "suggestions"]))
            #expect(object["key"] as? String == Cast.key)
            #expect(object["system"] as? String == Cast.system)
            #expect(object["user"] as? String == Cast.user)
            #expect(object["asOf"] as? String == "2025-01-02T09:00:00+08:00")
            #expect(object["visible"] as? Bool == false)
            #expect(String(decoding: data, as: UTF8.self).contains("\"visible\":false"))  // a JSON boolean, not 0

            let causes = try #require(object["causes"] as? [[String: Any]])
            #expect(causes.map { $0["code"] as? String } == ["delivery_failed", "query_date_out_of_range", "query_buyer_name_mismatch"])
            for cause in causes {
                #expect(cause["code"] is String)
                #expect(cause["summary"] is String)
                #expect(cause["since"] is String)
                #expect(cause["evidence"] is [Int], "\(cause)")
            }
            #expect(causes[0]["evidence"] as? [Int] == [attempt, failure].map { Int($0) })
            #expect(causes[0]["since"] as? String == "2025-01-01T00:31:00+08:00")
            #expect(causes[1]["evidence"] as? [Int] == [issued, query].map { Int($0) })

            let timeline = try #require(object["timeline"] as? [[String: Any]])
            #expect(timeline.map { $0["position"] as? Int } == [issued, attempt, failure, query].map { Int($0) })
            for entry in timeline {
                #expect(entry["position"] is Int)
                #expect(entry["time"] is String)
                #expect(entry["type"] is String)
                #expect(entry["summary"] is String)
            }
            #expect(timeline.first?["type"] as? String == "fapiao.invoice.issued")
            #expect(timeline.first?["time"] as? String == "2025-01-01T00:30:00+08:00")

            let suggestions = try #require(object["suggestions"] as? [String])
            #expect(suggestions.count == 3)
        }
    }

    @Test func absentUserAndUnknownSinceAreNull() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.issue(at: "2024-12-31T16:59:26+08:00")
            f.deliverAndApprove(from: "2024-12-31T17:00:05+08:00")
            try await s.load(f)

            let visible = try JSONSerialization.jsonObject(with: JSONEncoder().encode(try s.why())) as? [String: Any]
            #expect(visible?["user"] is NSNull)
            #expect(visible?["visible"] as? Bool == true)
            #expect((visible?["causes"] as? [Any])?.isEmpty == true)
            #expect((visible?["suggestions"] as? [Any])?.isEmpty == true)

            let missing = try JSONSerialization.jsonObject(with: JSONEncoder().encode(try s.why("24112000000015301243"))) as? [String: Any]
            let cause = try #require((missing?["causes"] as? [[String: Any]])?.first)
            #expect(cause["code"] as? String == "not_in_ledger")
            #expect(cause["since"] is NSNull)
            #expect(cause["evidence"] as? [Int] == [])
            #expect(cause["didYouMean"] as? [String] == [Cast.key])
        }
    }
}
