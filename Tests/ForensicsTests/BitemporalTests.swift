import FapiaoDomain
import Foundation
import Testing
@testable import Forensics

/// The two clocks: `--at` (when it happened in the world), `--known-at` (when the ledger
/// recorded it), and `--position` (the log as it stood). Answers are pure functions of the log
/// up to the time asked.
struct BitemporalTests {
    /// Issue, one attempt, its failure: the delivery_failed story of domain.md.
    struct FailedDelivery {
        var registered: UInt64 = 0
        var issued: UInt64 = 0
        var attempt: UInt64 = 0
        var failure: UInt64 = 0

        init(_ s: Scenario) async throws {
            var f = try s.file()
            registered = f.register()
            issued = f.issue(at: "2024-12-31T16:59:26+08:00")
            attempt = f.attempted(at: "2024-12-31T17:00:05+08:00")
            failure = f.failed(reason: "auth_expired", at: "2024-12-31T17:02:11+08:00")
            try await s.load(f)
        }
    }

    @Test func atBeforeTheFailureShowsTheDeliveryAsItWasThen() async throws {
        try await withScenario { s in
            let story = try await FailedDelivery(s)

            let now = try s.why()
            #expect(now.codes == [.deliveryFailed])
            #expect(now.cause(.deliveryFailed)?.evidence == [story.attempt, story.failure])
            #expect(now.asOf == "2024-12-31T17:02:11+08:00")
            #expect(now.cutoff == .init(at: nil, knownAt: nil, position: nil))

            let during = try s.why(cutoff: Cutoff(at: Time.micros("2024-12-31T17:01:00+08:00")))
            expectSole(during, .deliveryPending, evidence: [story.attempt], since: "2024-12-31T17:00:05+08:00")
            #expect(during.asOf == "2024-12-31T17:01:00+08:00")
            #expect(during.cutoff.at == "2024-12-31T17:01:00+08:00")
            #expect(during.timeline.map(\.position) == [story.issued, story.attempt])

            let before = try s.why(cutoff: Cutoff(at: Time.micros("2024-12-31T17:00:00+08:00")))
            expectSole(before, .notDelivered, evidence: [story.issued], since: "2024-12-31T16:59:26+08:00")

            // Before the issue, the invoice did not exist yet; it is no near miss of itself.
            let earlier = try s.why(cutoff: Cutoff(at: Time.micros("2024-12-31T12:00:00+08:00")))
            expectSole(earlier, .notInLedger, evidence: [], since: nil)
            #expect(earlier.didYouMean == [])
        }
    }

    @Test func positionGivesTheAnswerAsOfThatPosition() async throws {
        try await withScenario { s in
            let story = try await FailedDelivery(s)

            let atAttempt = try s.why(cutoff: Cutoff(position: story.attempt))
            expectSole(atAttempt, .deliveryPending, evidence: [story.attempt], since: "2024-12-31T17:00:05+08:00")
            #expect(atAttempt.cutoff.position == story.attempt)
            #expect(atAttempt.timeline.allSatisfy { $0.position <= story.attempt })

            let atIssue = try s.why(cutoff: Cutoff(position: story.issued))
            #expect(atIssue.codes == [.notDelivered])

            let atFailure = try s.why(cutoff: Cutoff(position: story.failure))
            #expect(atFailure.codes == [.deliveryFailed])
        }
    }

    /// The failure happened at 17:02 but reached the ledger only the next day. Asked with
    /// `--known-at` the morning after, the ledger knew only of the attempt; asked with `--at`
    /// the same morning, the world already had the failure.
    @Test func knownAtDiffersFromAtForALateArrival() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.issue(at: "2024-12-31T16:59:26+08:00")
            let attempt = f.attempted(at: "2024-12-31T17:00:05+08:00")
            f.verified("authentic", at: "2025-01-01T07:00:00+08:00")
            try await s.load(f, recordedAt: "2025-01-01T08:00:00+08:00")
            var late = try s.file()
            let failure = late.failed(reason: "network_timeout", at: "2024-12-31T17:02:11+08:00")
            try await s.load(late, recordedAt: "2025-01-01T12:00:00+08:00")

            let morning = Time.micros("2025-01-01T09:00:00+08:00")
            let known = try s.why(cutoff: Cutoff(knownAt: morning))
            expectSole(known, .deliveryPending, evidence: [attempt], since: "2024-12-31T17:00:05+08:00")
            #expect(known.cutoff.knownAt == "2025-01-01T09:00:00+08:00")

            let happened = try s.why(cutoff: Cutoff(at: morning))
            expectSole(happened, .deliveryFailed, evidence: [attempt, failure], since: "2024-12-31T17:00:05+08:00")
            #expect(known != happened)

            // Both clocks at once: what the ledger knew then about the world before 17:01.
            let both = try s.why(cutoff: Cutoff(at: Time.micros("2024-12-31T17:01:00+08:00"), knownAt: Time.micros("2025-01-01T13:00:00+08:00")))
            #expect(both.codes == [.deliveryPending])
        }
    }

    /// Late arrivals take their place in the world's order: a failure of attempt 1 recorded
    /// after attempt 2 succeeded, and a not_found recorded after a later authentic check, are
    /// history, not the latest word.
    @Test func lateArrivalsDoNotBecomeTheLatestWord() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register(requiresReview: false)
            f.issue(at: "2024-12-31T16:59:26+08:00")
            let first = f.attempted(attempt: 1, at: "2024-12-31T17:00:05+08:00")
            f.attempted(attempt: 2, at: "2024-12-31T17:10:00+08:00")
            f.succeeded(attempt: 2, at: "2024-12-31T17:10:02+08:00")
            f.verified("authentic", at: "2025-01-05T10:00:00+08:00")
            try await s.load(f, recordedAt: "2025-01-05T11:00:00+08:00")
            var late = try s.file()
            let failure = late.failed(attempt: 1, reason: "network_timeout", at: "2024-12-31T17:02:11+08:00")
            late.verified("not_found", at: "2025-01-03T10:00:00+08:00")
            try await s.load(late, recordedAt: "2025-01-06T09:00:00+08:00")

            let now = try s.why()
            #expect(now.visible, "\(now.causes)")
            // At 17:05 the world had the failure and no second attempt yet.
            let then = try s.why(cutoff: Cutoff(at: Time.micros("2024-12-31T17:05:00+08:00")))
            expectSole(then, .deliveryFailed, evidence: [first, failure], since: "2024-12-31T17:00:05+08:00")
            // On 4 January the latest check in the world was the not_found, well after the window.
            let fourth = try s.why(cutoff: Cutoff(at: Time.micros("2025-01-04T00:00:00+08:00")))
            #expect(fourth.codes == [.verificationFailed])
        }
    }

    /// The same question, asked again after the log has grown, gets the identical answer.
    @Test func theAnswerAtAPositionNeverChanges() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            f.granted()
            f.issue(at: "2024-12-31T16:59:26+08:00")
            f.attempted(at: "2024-12-31T17:00:05+08:00")
            let failure = f.failed(reason: "auth_expired", at: "2024-12-31T17:02:11+08:00")
            f.query(at: "2025-01-02T09:00:00+08:00", criteria: ["buyerName": "北京某某科技(集团)有限公司"])
            try await s.load(f)
            let head = try s.ledger.headPosition()
            let cutoff = Cutoff(position: head)
            // A typo of an invoice that does not exist yet at `head`.
            let typo = "24112000000015301253"
            let before = try s.why(user: Cast.user, cutoff: cutoff)
            let typoBefore = try s.why(typo, cutoff: cutoff)
            #expect(before.codes == [.deliveryFailed, .queryBuyerNameMismatch])
            #expect(typoBefore.codes == [.notInLedger])

            var more = try s.file()
            more.attempted(attempt: 2, at: "2025-01-02T10:00:00+08:00")
            more.succeeded(attempt: 2, at: "2025-01-02T10:00:02+08:00")
            more.accepted(at: "2025-01-02T10:00:03+08:00")
            more.approved(at: "2025-01-02T11:00:00+08:00")
            more.issue(Cast.otherKey, at: "2025-01-02T12:00:00+08:00")
            more.revoked(at: "2025-01-03T08:00:00+08:00")
            more.query(at: "2025-01-03T09:00:00+08:00", criteria: [:], resultCount: 2)
            try await s.load(more, recordedAt: "2025-02-03T09:00:00+08:00")

            #expect(try s.why(user: Cast.user, cutoff: cutoff) == before)
            #expect(try s.why(typo, cutoff: cutoff) == typoBefore)
            #expect(before.cause(.deliveryFailed)?.evidence.last == failure)
            // Now the log says something else: the position was what kept the answer still.
            #expect(try s.why(user: Cast.user).codes == [.accessDenied])
            #expect(try s.why(typo).didYouMean == [Cast.otherKey])
        }
    }
}
