import FapiaoDomain
import Foundation
import Testing
@testable import Forensics
import Projections

/// One scenario per cause code of docs/events.md: the decisive cause, the positions that prove
/// it, since when, and no cause that does not hold (the whole list of codes is compared).
struct CauseTests {
    /// The invoice of most scenarios: issued a minute before the sync job's first attempt.
    static let issuedAt = "2024-12-31T16:59:26+08:00"
    static let firstAttemptAt = "2024-12-31T17:00:05+08:00"

    // MARK: Visible

    @Test func aVisibleInvoiceHasNoCausesAndNoSuggestions() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.granted()
            let issued = f.issue(at: Self.issuedAt)
            let path = f.deliverAndApprove(from: Self.firstAttemptAt)
            let query = f.query(at: "2025-01-02T09:00:00+08:00", criteria: [
                "number": Cast.key, "issuedFrom": "2024-12-01", "issuedTo": "2024-12-31", "buyerName": Cast.buyerName,
                "sellerName": Cast.seller, "statuses": ["approved"],
            ], resultCount: 1)
            try await s.load(f)

            for user in [nil, Cast.user] {
                let answer = try s.why(user: user)
                #expect(answer.visible)
                #expect(answer.causes == [])
                #expect(answer.suggestions == [])
                #expect(answer.key == Cast.key)
                // The recorded query is evaluated, and shown, only for its user.
                #expect(answer.timeline.map(\.position) == [issued] + path + (user == nil ? [] : [query]))
            }
        }
    }

    // MARK: 1. not in the ledger

    @Test func notInLedgerSuggestsTheNearMiss() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.issue(at: Self.issuedAt)
            f.deliverAndApprove(from: Self.firstAttemptAt)
            try await s.load(f)

            // Digits 19 and 20 typed the other way round.
            let answer = try s.why("24112000000015301243")
            expectSole(answer, .notInLedger, evidence: [], since: nil)
            #expect(answer.key == "24112000000015301243")
            #expect(answer.cause(.notInLedger)?.didYouMean == [Cast.key])
            #expect(answer.didYouMean == [Cast.key])
            #expect(answer.suggestions.contains { $0.contains(Cast.key) && $0.contains("swapped") }, "\(answer.suggestions)")
            #expect(answer.timeline == [])

            // Nothing one typo away: still not in the ledger, with nothing to suggest.
            let unrelated = try s.why("25440000000099990000")
            expectSole(unrelated, .notInLedger, evidence: [], since: nil)
            #expect(unrelated.didYouMean == [])

            // The key as people type it (full-width digits, spaces) is the same invoice.
            let typed = try s.why("２４１１ ２０００ ００００ １５３０ １２３４")
            #expect(typed.key == Cast.key)
            #expect(typed.visible, "\(typed.causes)")
        }
    }

    // MARK: 2–3. the issuer

    @Test func issueFailed() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            let failure = f.issueFailed(at: "2024-12-31T16:59:00+08:00", reason: "tax platform timeout")
            try await s.load(f)

            let answer = try s.why()
            // Nothing was issued, so nothing was to be delivered: no not_delivered beside it.
            expectSole(answer, .issueFailed, evidence: [failure], since: Time.cst("2024-12-31T16:59:00+08:00"))
            #expect(answer.cause(.issueFailed)?.summary.contains("tax platform timeout") == true)
        }
    }

    @Test func voidedPaperInvoice() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.issue(Cast.legacyKey, at: "2024-12-30T10:00:00+08:00")
            f.deliverAndApprove(Cast.legacyKey, from: "2024-12-30T10:01:00+08:00")
            let void = f.voided(Cast.legacyKey, at: "2024-12-31T11:00:00+08:00")
            try await s.load(f)

            let answer = try s.why(Cast.legacyKey)
            expectSole(answer, .voided, evidence: [void], since: Time.cst("2024-12-31T11:00:00+08:00"))
            #expect(answer.cause(.voided)?.summary.contains("wang.fang") == true)

            // The pair typed number first, with spaces, is the same invoice.
            let swapped = try s.why("12345678 011002400104")
            #expect(swapped.key == Cast.legacyKey)
            #expect(swapped.codes == [.voided])
        }
    }

    @Test func redLetterReversed() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.issue(at: Self.issuedAt)
            f.deliverAndApprove(from: Self.firstAttemptAt)
            let requested = f.redLetterRequested(form: "HZ-0001", at: "2025-01-03T10:00:00+08:00")
            let confirmed = f.redLetterConfirmed(form: "HZ-0001", at: "2025-01-03T11:00:00+08:00")
            let reversal = f.redLetterIssued(red: "25112000000000000099", form: "HZ-0001", at: "2025-01-03T11:05:00+08:00")
            try await s.load(f)

            let answer = try s.why()
            expectSole(answer, .redLetterReversed, evidence: [requested, confirmed, reversal], since: Time.cst("2025-01-03T11:05:00+08:00"))
            #expect(answer.cause(.redLetterReversed)?.summary.contains("25112000000000000099") == true)
        }
    }

    // MARK: 4. verification

    @Test func verificationFailedAfterTheIngestionWindow() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.issue(at: Self.issuedAt)
            f.deliverAndApprove(from: Self.firstAttemptAt)
            let check = f.verified("not_found", at: "2025-01-03T10:00:00+08:00")
            try await s.load(f)

            let answer = try s.why()
            expectSole(answer, .verificationFailed, evidence: [check], since: Time.cst("2025-01-03T10:00:00+08:00"))
            #expect(answer.cause(.verificationFailed)?.summary.contains("not_found") == true)
        }
    }

    @Test func notFoundWithin24HoursOfIssueIsLagNotAFake() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.issue(at: Self.issuedAt)
            f.deliverAndApprove(from: Self.firstAttemptAt)
            f.verified("not_found", at: "2024-12-31T18:00:00+08:00")
            // A mismatch is never ingestion lag.
            f.issue(Cast.otherKey, at: Self.issuedAt)
            f.deliverAndApprove(Cast.otherKey, from: Self.firstAttemptAt)
            let mismatch = f.verified("mismatch", at: "2024-12-31T18:00:00+08:00", key: Cast.otherKey)
            try await s.load(f)

            let answer = try s.why()
            #expect(answer.visible, "\(answer.causes)")
            #expect(answer.causes == [])
            expectSole(try s.why(Cast.otherKey), .verificationFailed, evidence: [mismatch], since: Time.cst("2024-12-31T18:00:00+08:00"))
        }
    }

    // MARK: 5. recipient

    @Test func wrongRecipient() async throws {
        try await withScenario { s in
            var f = try s.file()
            let registered = f.register()
            let issued = f.issue(at: Self.issuedAt, buyerName: "深圳某某通信有限公司", buyerTaxId: Cast.otherTaxId)
            f.attempted(at: Self.firstAttemptAt)
            f.succeeded(at: "2024-12-31T17:00:07+08:00")
            let rejection = f.rejected(rule: "buyer_tax_id_mismatch", at: "2024-12-31T17:00:08+08:00")
            try await s.load(f)

            let answer = try s.why()
            #expect(!answer.visible)
            #expect(answer.codes == [.wrongRecipient, .receiptRejected])
            let wrong = try #require(answer.cause(.wrongRecipient))
            #expect(wrong.evidence == [registered, issued])
            #expect(wrong.since == Time.cst(Self.issuedAt))
            #expect(wrong.summary.contains(Cast.otherTaxId) && wrong.summary.contains(Cast.owner), "\(wrong.summary)")
            #expect(answer.cause(.receiptRejected)?.evidence == [rejection])
            #expect(answer.suggestions.first?.contains(Cast.owner) == true, "\(answer.suggestions)")
        }
    }

    // MARK: 6. delivery

    @Test func notDelivered() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.register(Cast.otherSystem)
            let issued = f.issue(at: Self.issuedAt)
            // Delivered elsewhere: says nothing about this system.
            f.attempted(at: Self.firstAttemptAt, system: Cast.otherSystem)
            f.succeeded(at: "2024-12-31T17:00:07+08:00", system: Cast.otherSystem)
            try await s.load(f)

            let answer = try s.why()
            expectSole(answer, .notDelivered, evidence: [issued], since: Time.cst(Self.issuedAt))
            #expect(answer.suggestions.contains { $0.contains(Cast.system) }, "\(answer.suggestions)")
        }
    }

    @Test func deliveryPending() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.issue(at: Self.issuedAt)
            let attempt = f.attempted(at: Self.firstAttemptAt)
            try await s.load(f)

            expectSole(try s.why(), .deliveryPending, evidence: [attempt], since: Time.cst(Self.firstAttemptAt))
        }
    }

    @Test func deliveryFailedSaysWhenTheLoginExpired() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.issue(at: Self.issuedAt)
            let first = f.attempted(attempt: 1, at: Self.firstAttemptAt)
            let firstFailure = f.failed(attempt: 1, reason: "network_timeout", at: "2024-12-31T17:02:11+08:00")
            let second = f.attempted(attempt: 2, at: "2024-12-31T17:20:00+08:00")
            let secondFailure = f.failed(attempt: 2, reason: "auth_expired", at: "2024-12-31T17:20:02+08:00")
            f.attempted(at: Self.firstAttemptAt, system: Cast.otherSystem)
            f.succeeded(at: "2024-12-31T17:00:07+08:00", system: Cast.otherSystem)
            try await s.load(f)

            let answer = try s.why()
            expectSole(answer, .deliveryFailed, evidence: [first, firstFailure, second, secondFailure], since: Time.cst(Self.firstAttemptAt))
            let summary = answer.cause(.deliveryFailed)?.summary ?? ""
            #expect(summary.contains("2 delivery attempts") && summary.contains("auth_expired at 2024-12-31T17:20:02+08:00"), "\(summary)")
            #expect(answer.suggestions.contains { $0.contains("login expired at 2024-12-31T17:20:02+08:00") }, "\(answer.suggestions)")
        }
    }

    // MARK: 7. receipt

    @Test func receiptRejected() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.issue(at: Self.issuedAt)
            f.attempted(at: Self.firstAttemptAt)
            f.succeeded(at: "2024-12-31T17:00:07+08:00")
            let rejection = f.rejected(rule: "totals_inconsistent", at: "2024-12-31T17:00:08+08:00")
            try await s.load(f)

            let answer = try s.why()
            expectSole(answer, .receiptRejected, evidence: [rejection], since: Time.cst("2024-12-31T17:00:08+08:00"))
            #expect(answer.cause(.receiptRejected)?.summary.contains("totals_inconsistent") == true)
        }
    }

    // MARK: 8. review

    @Test func pendingReviewWhereTheViewShowsApprovedOnly() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register(requiresReview: true, visible: ["approved"])
            f.register(Cast.otherSystem, requiresReview: true, visible: ["approved", "pending_review"])
            f.issue(at: Self.issuedAt)
            f.attempted(at: Self.firstAttemptAt)
            let delivered = f.succeeded(at: "2024-12-31T17:00:07+08:00")
            let accepted = f.accepted(at: "2024-12-31T17:00:08+08:00")
            f.attempted(at: Self.firstAttemptAt, system: Cast.otherSystem)
            f.succeeded(at: "2024-12-31T17:00:07+08:00", system: Cast.otherSystem)
            f.accepted(at: "2024-12-31T17:00:08+08:00", system: Cast.otherSystem)
            try await s.load(f)

            let answer = try s.why()
            expectSole(answer, .pendingReview, evidence: [delivered, accepted], since: Time.cst("2024-12-31T17:00:08+08:00"))
            // A system whose default view shows pending invoices shows it.
            let other = try s.why(system: Cast.otherSystem)
            #expect(other.visible, "\(other.causes)")
        }
    }

    @Test func reviewRejected() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.issue(at: Self.issuedAt)
            f.attempted(at: Self.firstAttemptAt)
            f.succeeded(at: "2024-12-31T17:00:07+08:00")
            f.accepted(at: "2024-12-31T17:00:08+08:00")
            let rejection = f.reviewRejected(reason: "no purchase order", at: "2025-01-02T10:00:00+08:00")
            try await s.load(f)

            let answer = try s.why()
            expectSole(answer, .reviewRejected, evidence: [rejection], since: Time.cst("2025-01-02T10:00:00+08:00"))
            #expect(answer.cause(.reviewRejected)?.summary.contains("no purchase order") == true)
        }
    }

    // MARK: 9. projection lag

    @Test func projectionLagWhileTheStatusViewsAreBehind() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register(requiresReview: false)
            f.issue(at: Self.issuedAt)
            f.attempted(at: Self.firstAttemptAt)
            try await s.load(f)
            #expect(try s.why().codes == [.deliveryPending])

            // The engine stops following the log; the delivery and receipt arrive meanwhile.
            s.engine.stop()
            try await Task.sleep(for: .milliseconds(50))  // let a catch-up already under way end
            var late = try s.file()
            let delivered = late.succeeded(at: "2024-12-31T17:00:07+08:00")
            let accepted = late.accepted(at: "2024-12-31T17:00:08+08:00")
            try await s.load(late, recordedAt: "2025-02-02T10:00:00+08:00", waitForProjections: false)
            try #require(try s.engine.checkpoint(of: StatusViewsProjection.name) < delivered)

            let answer = try s.why()
            expectSole(answer, .projectionLag, evidence: [delivered, accepted], since: Time.cst("2025-02-02T10:00:00+08:00"))

            // The log itself says it is there: a question about a position is not about the views.
            #expect(try s.why(cutoff: Cutoff(position: accepted)).visible)

            try await s.engine.catchUp()
            #expect(try s.why().visible)
        }
    }

    // MARK: 10. access

    @Test func accessDeniedAfterARevocation() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            let grant = f.granted(at: "2024-12-01T09:05:00+08:00")
            f.issue(at: Self.issuedAt)
            f.deliverAndApprove(from: Self.firstAttemptAt)
            let revocation = f.revoked(at: "2025-01-02T08:00:00+08:00")
            f.query(at: "2025-01-02T09:00:00+08:00")
            // Another user may see only another seller's invoices; a third was never granted anything.
            let narrow = f.granted("li.lei", sellers: [Cast.otherTaxId])
            f.query("li.lei", at: "2025-01-02T09:00:00+08:00")
            f.query("wang.wu", at: "2025-01-02T09:00:00+08:00")
            try await s.load(f)

            let answer = try s.why(user: Cast.user)
            expectSole(answer, .accessDenied, evidence: [grant, revocation], since: Time.cst("2025-01-02T08:00:00+08:00"))
            #expect(answer.user == Cast.user)

            let other = try s.why(user: "li.lei")
            expectSole(other, .accessDenied, evidence: [narrow], since: nil)
            #expect(other.cause(.accessDenied)?.summary.contains(Cast.sellerTaxId) == true)
            #expect(other.suggestions.contains { $0.contains(Cast.sellerTaxId) }, "\(other.suggestions)")

            expectSole(try s.why(user: "wang.wu"), .accessDenied, evidence: [], since: nil)

            // Without --user, access is not evaluated.
            #expect(try s.why().visible)
        }
    }

    // MARK: 11. maintenance

    @Test func queryDuringMaintenance() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.granted()
            f.issue(at: Self.issuedAt)
            f.deliverAndApprove(from: Self.firstAttemptAt)
            let started = f.maintenanceStarted(at: "2025-01-02T08:30:00+08:00")
            let query = f.query(at: "2025-01-02T09:00:00+08:00")
            let ended = f.maintenanceEnded(at: "2025-01-02T09:30:00+08:00")
            try await s.load(f)

            let answer = try s.why(user: Cast.user)
            expectSole(answer, .systemMaintenance, evidence: [started, query, ended], since: Time.cst("2025-01-02T08:30:00+08:00"))

            // Asked as of 09:15, nobody knew yet when the maintenance would end.
            let during = try s.why(user: Cast.user, cutoff: Cutoff(at: Time.micros("2025-01-02T09:15:00+08:00")))
            expectSole(during, .systemMaintenance, evidence: [started, query], since: Time.cst("2025-01-02T08:30:00+08:00"))
            #expect(during.cause(.systemMaintenance)?.summary.contains("not ended") == true)

            // Searching again after it ended finds the invoice.
            var again = try s.file()
            again.query(at: "2025-01-02T10:00:00+08:00", resultCount: 1)
            try await s.load(again)
            #expect(try s.why(user: Cast.user).visible)
        }
    }

    // MARK: 12. the query's criteria

    @Test(arguments: [
        ("24112000000015301243", "digits 19 and 20 are swapped"),
        ("２４１１２０００００００１５３０１２３４", "full-width digits"),
    ])
    func queryNumberMismatch(typed: String, difference: String) async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.granted()
            let issued = f.issue(at: Self.issuedAt)
            f.deliverAndApprove(from: Self.firstAttemptAt)
            let query = f.query(at: "2025-01-02T09:00:00+08:00", criteria: ["number": typed])
            try await s.load(f)

            let answer = try s.why(user: Cast.user)
            expectSole(answer, .queryNumberMismatch, evidence: [issued, query], since: Time.cst("2025-01-02T09:00:00+08:00"))
            #expect(answer.cause(.queryNumberMismatch)?.summary.contains(difference) == true, "\(answer.causes)")
            #expect(answer.suggestions.contains { $0.contains("search for number \(Cast.key)") }, "\(answer.suggestions)")
            #expect(answer.query?.position == query)
        }
    }

    @Test func queryDateOutOfRange() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.granted()
            let issued = f.issue(at: "2025-01-01T00:30:00+08:00")
            f.deliverAndApprove(from: "2025-01-01T00:31:00+08:00")
            let query = f.query(at: "2025-01-02T09:00:00+08:00", criteria: ["issuedFrom": "2024-12-01", "issuedTo": "2024-12-31"])
            try await s.load(f)

            let answer = try s.why(user: Cast.user)
            expectSole(answer, .queryDateOutOfRange, evidence: [issued, query], since: Time.cst("2025-01-02T09:00:00+08:00"))
            #expect(answer.suggestions.contains { $0.contains("00:30 CST") && $0.contains("2024-12-31 in UTC") }, "\(answer.suggestions)")
        }
    }

    @Test func queryBuyerNameMismatch() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.granted()
            let issued = f.issue(at: Self.issuedAt)
            f.deliverAndApprove(from: Self.firstAttemptAt)
            let query = f.query(at: "2025-01-02T09:00:00+08:00", criteria: ["buyerName": "北京某某科技(集团)有限公司"])
            try await s.load(f)

            let answer = try s.why(user: Cast.user)
            expectSole(answer, .queryBuyerNameMismatch, evidence: [issued, query], since: Time.cst("2025-01-02T09:00:00+08:00"))
            #expect(answer.suggestions.contains { $0.contains(Cast.buyerName) && $0.contains("half-width brackets") }, "\(answer.suggestions)")
        }
    }

    @Test(arguments: [
        ("杭州某某软件有限公司 ", "leading or trailing spaces"),
        ("杭州某某网络有限公司", "old or abbreviated name"),
    ])
    func querySellerNameMismatch(typed: String, difference: String) async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.granted()
            let issued = f.issue(at: Self.issuedAt)
            f.deliverAndApprove(from: Self.firstAttemptAt)
            let query = f.query(at: "2025-01-02T09:00:00+08:00", criteria: ["sellerName": typed])
            try await s.load(f)

            let answer = try s.why(user: Cast.user)
            expectSole(answer, .querySellerNameMismatch, evidence: [issued, query], since: Time.cst("2025-01-02T09:00:00+08:00"))
            #expect(answer.cause(.querySellerNameMismatch)?.summary.contains(difference) == true, "\(answer.causes)")
            #expect(answer.suggestions.contains { $0.contains(Cast.seller) }, "\(answer.suggestions)")
        }
    }

    @Test func queryStatusFiltered() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register(requiresReview: true, visible: ["approved", "pending_review"])
            f.register(Cast.otherSystem)
            f.granted()
            f.issue(at: Self.issuedAt)
            f.attempted(at: Self.firstAttemptAt)
            f.succeeded(at: "2024-12-31T17:00:07+08:00")
            let accepted = f.accepted(at: "2024-12-31T17:00:08+08:00")
            // Accepted and approved in another system: no evidence about this one.
            f.deliverAndApprove(from: Self.firstAttemptAt, system: Cast.otherSystem)
            let query = f.query(at: "2025-01-02T09:00:00+08:00", criteria: ["statuses": ["approved"]])
            try await s.load(f)

            let answer = try s.why(user: Cast.user)
            expectSole(answer, .queryStatusFiltered, evidence: [accepted, query], since: Time.cst("2025-01-02T09:00:00+08:00"))
            #expect(answer.cause(.queryStatusFiltered)?.summary.contains("pending_review") == true)
            #expect(answer.suggestions.contains { $0.contains("include status pending_review") }, "\(answer.suggestions)")
            // Its default view shows pending invoices: without the query, it is there.
            #expect(try s.why().visible)
        }
    }
}

/// The answer is "not visible" for exactly one cause, proved by exactly these positions.
func expectSole(_ answer: WhyAnswer, _ code: CauseCode, evidence: [UInt64], since: String?, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(!answer.visible, sourceLocation: sourceLocation)
    #expect(answer.codes == [code], "\(answer.causes)", sourceLocation: sourceLocation)
    #expect(answer.decisive?.code == code, sourceLocation: sourceLocation)
    #expect(answer.cause(code)?.evidence == evidence, sourceLocation: sourceLocation)
    #expect(answer.cause(code)?.since == since, sourceLocation: sourceLocation)
    #expect(!answer.suggestions.isEmpty, sourceLocation: sourceLocation)
}
