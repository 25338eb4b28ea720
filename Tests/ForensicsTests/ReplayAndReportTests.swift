import FapiaoDomain
import Foundation
import Testing
@testable import Forensics

/// `replay` (an invoice's history with what each observer saw) and the morning report.
struct ReplayAndReportTests {
    @Test func replayStepsInPositionOrderWithObserverStatesAndLateArrivals() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            let issued = f.issue(at: "2024-12-31T16:59:26+08:00")
            let attempt = f.attempted(at: "2024-12-31T17:00:05+08:00")
            let check = f.verified("authentic", at: "2025-01-01T07:00:00+08:00")
            try await s.load(f, recordedAt: "2025-01-01T08:00:00+08:00")
            var late = try s.file()
            let failure = late.failed(reason: "network_timeout", at: "2024-12-31T17:02:11+08:00")
            let retry = late.attempted(attempt: 2, at: "2025-01-01T12:00:00+08:00")
            let delivered = late.succeeded(attempt: 2, at: "2025-01-01T12:00:02+08:00")
            let accepted = late.accepted(at: "2025-01-01T12:00:03+08:00")
            try await s.load(late, recordedAt: "2025-01-01T12:30:00+08:00")

            let replay = try s.forensics.replay(typedKey: "2411 2000 0000 1530 1234")
            #expect(replay.key == Cast.key)
            #expect(replay.steps.map(\.position) == [issued, attempt, check, failure, retry, delivered, accepted])
            #expect(replay.steps.map(\.late) == [false, false, false, true, false, false, false])
            #expect(replay.steps.map(\.issuer) == Array(repeating: "issued", count: 7))
            #expect(replay.steps.map(\.verification) == [nil, nil, "authentic", "authentic", "authentic", "authentic", "authentic"])
            #expect(replay.steps[0].systems == [:])
            #expect(replay.steps[1].systems[Cast.system]?.hasPrefix("delivery attempting, receipt none") == true, "\(replay.steps[1].systems)")
            #expect(replay.steps[3].systems[Cast.system]?.hasPrefix("delivery failed") == true, "\(replay.steps[3].systems)")
            #expect(replay.steps[3].systems[Cast.system]?.hasSuffix("not in the system") == true)
            // Registered with review required and an approved-only view: accepted means pending review.
            #expect(replay.steps[6].systems[Cast.system]?.hasSuffix("→ pending_review") == true, "\(replay.steps[6].systems)")
            #expect(replay.steps[3].time == "2024-12-31T17:02:11+08:00")
            #expect(replay.steps[3].recorded == "2025-01-01T12:30:00+08:00")
            #expect(replay.steps[3].type == "fapiao.delivery.failed")

            // What the ledger knew at 09:00 that morning: no failure yet, nothing late.
            let known = try s.forensics.replay(typedKey: Cast.key, cutoff: Cutoff(knownAt: Time.micros("2025-01-01T09:00:00+08:00")))
            #expect(known.steps.map(\.position) == [issued, attempt, check])
            #expect(known.steps.allSatisfy { !$0.late })
            #expect(known.cutoff.knownAt == "2025-01-01T09:00:00+08:00")

            let atPosition = try s.forensics.replay(typedKey: Cast.key, cutoff: Cutoff(position: failure))
            #expect(atPosition.steps.map(\.position) == [issued, attempt, check, failure])
        }
    }

    @Test func allMissingGroupsByDecisiveCause() async throws {
        try await withScenario { s in
            let keys = (1...6).map { String(format: "241120000000153000%02d", $0) }
            var f = try s.file()
            f.register()
            f.register(Cast.otherSystem, owner: Cast.otherTaxId)
            // Visible.
            f.issue(keys[0], at: "2024-12-02T10:00:00+08:00")
            f.deliverAndApprove(keys[0], from: "2024-12-02T10:01:00+08:00")
            // Not delivered, twice.
            f.issue(keys[1], at: "2024-12-03T10:00:00+08:00")
            f.issue(keys[2], at: "2024-12-04T10:00:00+08:00")
            // Delivery failed.
            f.issue(keys[3], at: "2024-12-05T10:00:00+08:00")
            f.attempted(keys[3], at: "2024-12-05T10:01:00+08:00")
            f.failed(keys[3], reason: "connection_refused", at: "2024-12-05T10:01:30+08:00")
            // Pending review in an approved-only view.
            f.issue(keys[4], at: "2024-12-06T10:00:00+08:00")
            f.attempted(keys[4], at: "2024-12-06T10:01:00+08:00")
            f.succeeded(keys[4], at: "2024-12-06T10:01:02+08:00")
            f.accepted(keys[4], at: "2024-12-06T10:01:03+08:00")
            // Rejected as a duplicate.
            f.issue(keys[5], at: "2024-12-07T10:00:00+08:00")
            f.attempted(keys[5], at: "2024-12-07T10:01:00+08:00")
            f.succeeded(keys[5], at: "2024-12-07T10:01:02+08:00")
            f.rejected(keys[5], rule: "duplicate", at: "2024-12-07T10:01:03+08:00")
            // Voided after it was approved.
            f.issue(Cast.legacyKey, at: "2024-12-08T10:00:00+08:00")
            f.deliverAndApprove(Cast.legacyKey, from: "2024-12-08T10:01:00+08:00")
            f.voided(Cast.legacyKey, at: "2024-12-08T15:00:00+08:00")
            // Issued to another buyer: not this system's to show.
            f.issue(Cast.otherKey, at: "2024-12-09T10:00:00+08:00", buyerName: "深圳某某通信有限公司", buyerTaxId: Cast.otherTaxId)
            try await s.load(f)

            let report = try s.forensics.allMissing(system: Cast.system, since: nil)
            #expect(report.owner == Cast.owner)
            #expect(report.examined == 7)
            #expect(report.visible == 1)
            #expect(report.missing == 6)
            // Largest group first; equal counts in pipeline order.
            #expect(report.causes.map(\.code) == [.notDelivered, .voided, .deliveryFailed, .receiptRejected, .pendingReview])
            #expect(report.causes.map(\.count) == [2, 1, 1, 1, 1])
            #expect(report.causes.first?.examples.map(\.key) == [keys[1], keys[2]])
            #expect(report.causes.first { $0.code == .voided }?.examples.map(\.key) == [Cast.legacyKey])
            #expect(report.causes.first { $0.code == .deliveryFailed }?.examples.first?.summary.contains("connection_refused") == true)

            // Since a date: only invoices issued on or after it (CST).
            let recent = try s.forensics.allMissing(system: Cast.system, since: Time.date("2024-12-05"))
            #expect(recent.examined == 4)
            #expect(recent.causes.map(\.code) == [.voided, .deliveryFailed, .receiptRejected, .pendingReview])

            #expect(throws: ForensicsError.self) { try s.forensics.allMissing(system: "nowhere-finance", since: nil) }
        }
    }
}
