import Testing
@testable import FapiaoDomain

/// One fact and when it happened.
struct Step: Sendable {
    var event: DomainEvent
    var time: String

    init(_ event: DomainEvent, _ time: String) {
        self.event = event
        self.time = time
    }
}

enum Sample {
    static let system = "beijing-finance"
    static let digital = DomainEvent.invoiceIssued(Fixtures.issued())

    static func legacy(_ kind: InvoiceKind, issuedAt: String = "2024-12-10T10:00:00+08:00") -> DomainEvent {
        var issued = Fixtures.issued()
        issued.kind = kind
        issued.code = "011001900104"
        issued.number = "12345678"
        issued.issuedAt = try! RFC3339.parse(issuedAt).get()
        return .invoiceIssued(issued)
    }

    static let void = DomainEvent.invoiceVoided(InvoiceVoided(reason: "wrong buyer", by: "li.na"))
    static func request(_ id: String = "HZ-1") -> DomainEvent { .redLetterRequested(RedLetterRequested(confirmationId: id, requestedBy: .buyer, reason: "returned")) }
    static func confirm(_ id: String = "HZ-1") -> DomainEvent { .redLetterConfirmed(RedLetterConfirmed(confirmationId: id)) }
    static func redLetter(_ amount: Int64 = -72_075, tax: Int64 = -4_325) -> DomainEvent {
        .redLetterIssued(RedLetterIssued(redInvoiceNumber: "25112000000000000042", totalAmount: Money(fen: amount), totalTax: Money(fen: tax)))
    }
    static func attempted(_ attempt: Int) -> DomainEvent { .deliveryAttempted(DeliveryStep(system: system, attempt: attempt)) }
    static func failed(_ attempt: Int) -> DomainEvent { .deliveryFailed(DeliveryFailed(system: system, attempt: attempt, reason: .networkTimeout, detail: "30 s")) }
    static func succeeded(_ attempt: Int) -> DomainEvent { .deliverySucceeded(DeliveryStep(system: system, attempt: attempt)) }
    static let accepted = DomainEvent.receiptAccepted(ReceiptAccepted(system: system))
    static let rejected = DomainEvent.receiptRejected(ReceiptRejected(system: system, rule: .duplicate, detail: ""))
    static let approved = DomainEvent.reviewApproved(ReviewApproved(system: system, by: "wang.fang"))
    static let reviewRejected = DomainEvent.reviewRejected(ReviewRejected(system: system, by: "wang.fang", reason: "no contract"))
    static func checked(_ result: VerificationResult) -> DomainEvent { .verificationChecked(VerificationChecked(provider: "chinatax", result: result)) }

    // The digital fixture is issued 2024-12-31T16:59:26+08:00.
    static let issuedTime = "2024-12-31T16:59:26+08:00"
    static let later = "2024-12-31T18:00:00+08:00"
}

struct LifecycleTests {
    static func run(_ steps: [Step], key: InvoiceKey? = nil) -> (InvoiceLifecycle, [Transition]) {
        var lifecycle = InvoiceLifecycle(key: key, rules: .current)
        let transitions = steps.map { lifecycle.apply($0.event, at: Fixtures.micros($0.time)) }
        return (lifecycle, transitions)
    }

    @Test(arguments: [
        ("digital issued", [Step(Sample.digital, Sample.issuedTime)], [ViolationCode]()),
        ("void of a digital invoice", [Step(Sample.digital, Sample.issuedTime), Step(Sample.void, Sample.later)], [.voidOfDigital]),
        ("void of paper, same month", [Step(Sample.legacy(.vatOrdinary), "2024-12-10T10:00:00+08:00"), Step(Sample.void, "2024-12-31T23:59:59+08:00")], []),
        ("void of paper, next month in CST", [Step(Sample.legacy(.vatSpecial), "2024-12-10T10:00:00+08:00"), Step(Sample.void, "2024-12-31T16:00:00Z")], [.voidOutsideMonth]),
        ("void of legacy electronic", [Step(Sample.legacy(.vatElectronicOrdinary), "2024-12-10T10:00:00+08:00"), Step(Sample.void, Sample.later)], [.voidOfElectronic]),
        ("void before issue", [Step(Sample.void, Sample.later)], [.beforeIssue]),
        ("voided twice", [Step(Sample.legacy(.vatOrdinary), "2024-12-10T10:00:00+08:00"), Step(Sample.void, Sample.later), Step(Sample.void, Sample.later)], [.voidedTwice]),
        ("issued twice", [Step(Sample.digital, Sample.issuedTime), Step(Sample.digital, Sample.later)], [.issuedTwice]),
        ("issue failed, then issued", [Step(.invoiceIssueFailed(InvoiceIssueFailed(reason: "down")), "2024-12-31T16:00:00+08:00"), Step(Sample.digital, Sample.issuedTime)], []),
        ("issue failed after issue", [Step(Sample.digital, Sample.issuedTime), Step(.invoiceIssueFailed(InvoiceIssueFailed(reason: "down")), Sample.later)], [.issueFailedAfterIssue]),
        ("red letter, confirmed", [Step(Sample.digital, Sample.issuedTime), Step(Sample.request(), "2025-01-02T10:00:00+08:00"), Step(Sample.confirm(), "2025-01-04T09:00:00+08:00"), Step(Sample.redLetter(), "2025-01-04T10:00:00+08:00")], []),
        ("red letter without confirmation", [Step(Sample.digital, Sample.issuedTime), Step(Sample.request(), "2025-01-02T10:00:00+08:00"), Step(Sample.redLetter(), "2025-01-02T11:00:00+08:00")], [.redLetterWithoutConfirmation]),
        ("confirmation after the 72 h lapse", [Step(Sample.digital, Sample.issuedTime), Step(Sample.request(), "2025-01-02T10:00:00+08:00"), Step(Sample.confirm(), "2025-01-05T10:00:01+08:00"), Step(Sample.redLetter(), "2025-01-05T11:00:00+08:00")], [.formLapsed, .redLetterWithoutConfirmation]),
        ("confirmation exactly at 72 h", [Step(Sample.digital, Sample.issuedTime), Step(Sample.request(), "2025-01-02T10:00:00+08:00"), Step(Sample.confirm(), "2025-01-05T10:00:00+08:00")], []),
        ("confirmation of an unknown form", [Step(Sample.digital, Sample.issuedTime), Step(Sample.confirm("HZ-9"), Sample.later)], [.unknownForm]),
        ("form requested twice", [Step(Sample.digital, Sample.issuedTime), Step(Sample.request(), Sample.later), Step(Sample.request(), Sample.later)], [.formRequestedTwice]),
        ("legacy red letter needs no form", [Step(Sample.legacy(.vatSpecial), "2024-12-10T10:00:00+08:00"), Step(Sample.redLetter(), Sample.later)], []),
        ("red letter with positive totals", [Step(Sample.legacy(.vatSpecial), "2024-12-10T10:00:00+08:00"), Step(Sample.redLetter(72_075, tax: 4_325), Sample.later)], [.redLetterNotNegative]),
        ("red letters beyond the total", [Step(Sample.legacy(.vatSpecial), "2024-12-10T10:00:00+08:00"), Step(Sample.redLetter(-50_000), Sample.later), Step(Sample.redLetter(-30_000), Sample.later)], [.redLetterExceedsTotal]),
        ("red letter of a voided invoice", [Step(Sample.legacy(.vatSpecial), "2024-12-10T10:00:00+08:00"), Step(Sample.void, Sample.later), Step(Sample.redLetter(), Sample.later)], [.redLetterOfVoided]),
        ("delivery with a retry", [Step(Sample.digital, Sample.issuedTime), Step(Sample.attempted(1), Sample.later), Step(Sample.failed(1), Sample.later), Step(Sample.attempted(2), Sample.later), Step(Sample.succeeded(2), Sample.later)], []),
        ("outcome without attempt", [Step(Sample.failed(1), Sample.later)], [.outcomeWithoutAttempt]),
        ("attempt skipped", [Step(Sample.attempted(1), Sample.later), Step(Sample.attempted(3), Sample.later)], [.attemptSkipped]),
        ("attempt repeated", [Step(Sample.attempted(1), Sample.later), Step(Sample.failed(1), Sample.later), Step(Sample.attempted(1), Sample.later)], [.attemptOutOfOrder]),
        ("outcome twice", [Step(Sample.attempted(1), Sample.later), Step(Sample.succeeded(1), Sample.later), Step(Sample.succeeded(1), Sample.later)], [.outcomeTwice]),
        ("receipt then review", [Step(Sample.accepted, Sample.later), Step(Sample.approved, Sample.later)], []),
        ("review before receipt", [Step(Sample.approved, Sample.later)], [.reviewBeforeReceipt]),
        ("review of a rejected receipt", [Step(Sample.rejected, Sample.later), Step(Sample.reviewRejected, Sample.later)], [.reviewOfRejectedReceipt]),
        ("rejected after accepted", [Step(Sample.accepted, Sample.later), Step(Sample.rejected, Sample.later)], [.rejectedAfterAccepted]),
        ("accepted twice", [Step(Sample.accepted, Sample.later), Step(Sample.accepted, Sample.later)], [.acceptedTwice]),
        ("dated before the issue", [Step(Sample.digital, Sample.issuedTime), Step(Sample.accepted, "2024-12-31T16:59:25+08:00")], [.datedBeforeIssue]),
        ("system event on an invoice stream", [Step(.maintenanceEnded(MaintenanceEnded(system: "x")), Sample.later)], [.notInvoiceStream]),
    ] as [(String, [Step], [ViolationCode])])
    func transitions(name: String, steps: [Step], violations: [ViolationCode]) {
        let (_, transitions) = Self.run(steps)
        #expect(transitions.flatMap(\.violations).map(\.code) == violations, "\(name)")
        #expect(transitions.allSatisfy { $0.isLegal == $0.violations.isEmpty })
    }

    @Test func violationsExplainThemselves() {
        let (_, transitions) = Self.run([Step(Sample.digital, Sample.issuedTime), Step(Sample.void, Sample.later)])
        #expect(transitions[1].violations.map(\.message) == ["void of a digital invoice: digital electronic invoices cannot be voided, only red-lettered"])
        let (_, red) = Self.run([Step(Sample.digital, Sample.issuedTime), Step(Sample.redLetter(), Sample.later)])
        #expect(red[1].violations.map(\.message) == ["red_letter_issued without a confirmed confirmation form"])
        let (_, review) = Self.run([Step(Sample.approved, Sample.later)])
        #expect(review[0].violations.map(\.message) == ["review before receipt in beijing-finance"])
    }

    /// Illegal facts are still applied.
    @Test func illegalFactsAreApplied() {
        let (lifecycle, _) = Self.run([Step(Sample.digital, Sample.issuedTime), Step(Sample.void, Sample.later), Step(Sample.accepted, Sample.later)])
        let micros = Fixtures.micros(Sample.later)
        #expect(lifecycle.issuer.status(atMicros: micros) == .voided)
        #expect(lifecycle.visibleStatus(in: Sample.system, requiresReview: true, atMicros: micros) == .voided)
    }

    @Test func redLetterFormsLapseAfter72Hours() {
        let (lifecycle, _) = Self.run([Step(Sample.digital, Sample.issuedTime), Step(Sample.request(), "2025-01-02T10:00:00+08:00")])
        #expect(lifecycle.issuer.status(atMicros: Fixtures.micros("2025-01-05T10:00:00+08:00")) == .redLetterRequested)
        #expect(lifecycle.issuer.status(atMicros: Fixtures.micros("2025-01-05T10:00:01+08:00")) == .issued)
        #expect(lifecycle.issuer.form("HZ-1")?.state(atMicros: Fixtures.micros("2025-01-06T00:00:00+08:00"), lapseSeconds: 72 * 3600) == .lapsed)
    }

    @Test func redLetterStatusesAndReversedAmounts() {
        let steps = [Step(Sample.digital, Sample.issuedTime), Step(Sample.request(), "2025-01-02T10:00:00+08:00"), Step(Sample.confirm(), "2025-01-02T12:00:00+08:00")]
        var (lifecycle, _) = Self.run(steps)
        #expect(lifecycle.issuer.status(atMicros: Fixtures.micros("2025-01-09T00:00:00+08:00")) == .redLetterConfirmed)
        _ = lifecycle.apply(Sample.redLetter(-20_000, tax: -1_200), at: Fixtures.micros("2025-01-03T10:00:00+08:00"))
        #expect(lifecycle.issuer.status(atMicros: Fixtures.micros("2025-01-03T10:00:00+08:00")) == .redLettered)
        #expect(lifecycle.issuer.reversedAmount == Money(fen: 20_000))
        #expect(!lifecycle.issuer.isFullyReversed)
        #expect(lifecycle.issuer.form("HZ-1")?.used == true)
    }

    @Test func deliveryStateFollowsTheLatestAttempt() {
        let (lifecycle, _) = Self.run([Step(Sample.attempted(1), Sample.later), Step(Sample.failed(1), Sample.later), Step(Sample.attempted(2), Sample.later)])
        let delivery = lifecycle.deliveries[Sample.system]
        #expect(delivery?.status == .attempting(attempt: 2))
        #expect(delivery?.failures == 1)
        #expect(delivery?.attempts == 2)
    }

    @Test(arguments: [
        ([Sample.accepted], true, VisibleStatus?.some(.pendingReview)),
        ([Sample.accepted], false, .approved),
        ([Sample.accepted, Sample.approved], true, .approved),
        ([Sample.accepted, Sample.reviewRejected], true, .reviewRejected),
        ([Sample.rejected], true, nil),
        ([], true, nil),
        ([Sample.accepted, Sample.redLetter()], true, .redLettered),
    ] as [([DomainEvent], Bool, VisibleStatus?)])
    func visibleStatusInAReceivingSystem(events: [DomainEvent], requiresReview: Bool, status: VisibleStatus?) {
        let legacy = Sample.legacy(.vatSpecial)
        let (lifecycle, _) = Self.run([Step(legacy, "2024-12-10T10:00:00+08:00")] + events.map { Step($0, Sample.later) })
        #expect(lifecycle.visibleStatus(in: Sample.system, requiresReview: requiresReview, atMicros: Fixtures.micros(Sample.later)) == status)
    }

    /// "not found" within ~24 h of issue is ingestion lag, not evidence of a fake.
    @Test(arguments: [
        (VerificationResult.notFound, "2025-01-01T16:59:25+08:00", VerificationVerdict.ingestionLag),
        (.notFound, "2025-01-01T16:59:26+08:00", .notGenuine(.notFound)),
        (.mismatch, "2024-12-31T17:00:00+08:00", .notGenuine(.mismatch)),
        (.authentic, Sample.later, .authentic),
        (.quotaExceeded, Sample.later, .inconclusive(.quotaExceeded)),
        (.redLettered, Sample.later, .reportsRedLettered),
    ])
    func verificationVerdicts(result: VerificationResult, at time: String, verdict: VerificationVerdict) {
        let (lifecycle, _) = Self.run([Step(Sample.digital, Sample.issuedTime), Step(Sample.checked(result), time)])
        #expect(lifecycle.verificationVerdict() == verdict)
    }

    @Test func verificationQuotaIsPerCSTDay() {
        let steps = (0..<6).map { Step(Sample.checked(.authentic), "2025-01-01T0\($0):00:00+08:00") }
            + [Step(Sample.checked(.quotaExceeded), "2025-01-01T07:00:00+08:00"), Step(Sample.checked(.authentic), "2025-01-01T16:00:00Z")]
        let (_, transitions) = Self.run(steps)
        #expect(transitions.map(\.isLegal) == [true, true, true, true, true, false, true, true])
    }
}
