import FapiaoDomain
import Testing
@testable import Ledger
@testable import Projections

/// The status views: where each receiving system shows an invoice, and the events that put it there.
@Suite struct StatusViewTests {
    static let digital = "24112000000015301234"
    static let paper = "011001900111-12345678"

    /// Statuses of `key` in `system` (every status the views hold it under).
    private func statuses(_ engine: ProjectionEngine, _ key: String, in system: String) throws -> [String] {
        try list(engine, InvoiceListCriteria(system: system)).items.filter { $0.key == key }.map(\.status)
    }

    @Test func acceptedIsPendingReviewOnlyWhereReviewIsRequired() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            var script = Script()
            script.system("reviewing", requiresReview: true)
            script.system("trusting", requiresReview: false)
            script.issue(Self.digital)
            script.accept(Self.digital, in: "reviewing")
            script.accept(Self.digital, in: "trusting")
            let positions = try await append(ledger, script.events)

            let reviewing = try list(engine, InvoiceListCriteria(system: "reviewing")).items
            #expect(reviewing.map(\.status) == ["pending_review"])
            #expect(reviewing.first?.evidence == [positions[3]])
            let trusting = try list(engine, InvoiceListCriteria(system: "trusting")).items
            #expect(trusting.map(\.status) == ["approved"])
            #expect(trusting.first?.evidence == [positions[4]])
            #expect(try list(engine, InvoiceListCriteria(system: "reviewing", statuses: [.approved])).items.isEmpty)
        }
    }

    @Test func reviewApprovesOrRejects() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            let other = "24112000000015309999"
            var script = Script()
            script.system("reviewing", requiresReview: true)
            script.issue(Self.digital)
            script.issue(other)
            script.accept(Self.digital, in: "reviewing")
            script.accept(other, in: "reviewing")
            script.add(Self.digital, .reviewApproved(ReviewApproved(system: "reviewing", by: "wang.fang")))
            script.add(other, .reviewRejected(ReviewRejected(system: "reviewing", by: "wang.fang", reason: "no contract")))
            let positions = try await append(ledger, script.events)

            let items = try list(engine, InvoiceListCriteria(system: "reviewing")).items
            #expect(items.first { $0.key == Self.digital }?.status == "approved")
            #expect(items.first { $0.key == Self.digital }?.evidence == [positions[3], positions[5]])
            #expect(items.first { $0.key == other }?.status == "review_rejected")
            #expect(items.first { $0.key == other }?.evidence == [positions[4], positions[6]])
            #expect(try list(engine, InvoiceListCriteria(system: "reviewing", statuses: [.pendingReview])).items.isEmpty)

            // A later approval moves the rejected one; it is under one status only.
            let approval = try await append(ledger, [Build.event(other, .reviewApproved(ReviewApproved(system: "reviewing", by: "li.na")), id: "late", at: "2025-01-03T09:00:00+08:00")])
            #expect(try statuses(engine, other, in: "reviewing") == ["approved"])
            #expect(try list(engine, InvoiceListCriteria(system: "reviewing")).items.first { $0.key == other }?.evidence == [positions[4], positions[6], approval[0]])
        }
    }

    @Test func voidMovesTheInvoiceToVoidedInEverySystem() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            var script = Script()
            script.system("reviewing", requiresReview: true)
            script.system("trusting", requiresReview: false)
            script.issue(Self.paper)
            script.accept(Self.paper, in: "reviewing")
            script.accept(Self.paper, in: "trusting")
            script.add(Self.paper, .reviewApproved(ReviewApproved(system: "reviewing", by: "wang.fang")))
            script.add(Self.paper, .invoiceVoided(InvoiceVoided(reason: "wrong buyer", by: "li.na")))
            let positions = try await append(ledger, script.events)
            let void = positions[6]

            for system in ["reviewing", "trusting"] {
                #expect(try statuses(engine, Self.paper, in: system) == ["voided"], "in \(system)")
                #expect(try list(engine, InvoiceListCriteria(system: system, statuses: [.approved, .pendingReview])).items.isEmpty)
            }
            let reviewing = try list(engine, InvoiceListCriteria(system: "reviewing", statuses: [.voided])).items
            #expect(reviewing.first?.evidence == [positions[3], positions[5], void])
            let trusting = try list(engine, InvoiceListCriteria(system: "trusting", statuses: [.voided])).items
            #expect(trusting.first?.evidence == [positions[4], void])
            let state = try #require(try invoiceRow(engine, Self.paper))
            #expect(state.issuer.status == "voided")
            #expect(state.lineage == Array(positions[2...]))
            #expect(state.flags.isEmpty)
        }
    }

    @Test func redLetterIssuedMovesTheInvoiceToRedLetteredInEverySystem() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            var script = Script()
            script.system("reviewing", requiresReview: true)
            script.system("trusting", requiresReview: false)
            script.issue(Self.digital)
            script.accept(Self.digital, in: "reviewing")
            script.accept(Self.digital, in: "trusting")
            script.add(Self.digital, .redLetterRequested(RedLetterRequested(confirmationId: "HZ-1", requestedBy: .seller, reason: "returned")))
            script.add(Self.digital, .redLetterConfirmed(RedLetterConfirmed(confirmationId: "HZ-1")))
            script.add(Self.digital, .redLetterIssued(RedLetterIssued(redInvoiceNumber: "25112000000000000042", totalAmount: Literal.money("-100.00"), totalTax: Literal.money("-6.00"))))
            let positions = try await append(ledger, script.events)

            for system in ["reviewing", "trusting"] {
                #expect(try statuses(engine, Self.digital, in: system) == ["red_lettered"], "in \(system)")
            }
            let trusting = try list(engine, InvoiceListCriteria(system: "trusting", statuses: [.redLettered])).items
            #expect(trusting.first?.evidence == [positions[4], positions[7]])
            let state = try #require(try invoiceRow(engine, Self.digital))
            #expect(state.issuer.status == "red_lettered")
            #expect(state.redLetter?.reversedAmount == "-100.00")
            #expect(state.flags.isEmpty)
        }
    }

    @Test func rejectedReceiptIsNotListed() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            let accepted = "24112000000015300001"
            var script = Script()
            script.system("trusting", requiresReview: false)
            script.issue(Self.digital)
            script.issue(accepted)
            script.add(Self.digital, .receiptRejected(ReceiptRejected(system: "trusting", rule: .buyerTaxIdMismatch, detail: "not ours")))
            script.accept(accepted, in: "trusting")
            try await append(ledger, script.events)

            #expect(try list(engine, InvoiceListCriteria(system: "trusting")).items.map(\.key) == [accepted])

            // Accepted first and rejected on a re-import: it leaves the view.
            try await append(ledger, [Build.event(accepted, .receiptRejected(ReceiptRejected(system: "trusting", rule: .duplicate, detail: "")), id: "again", at: "2025-01-03T09:00:00+08:00")])
            #expect(try list(engine, InvoiceListCriteria(system: "trusting")).items.isEmpty)
            let state = try #require(try invoiceRow(engine, accepted))
            #expect(state.systems["trusting"]?.receipt == "rejected")
            #expect(state.systems["trusting"]?.receiptRule == "duplicate")
        }
    }

    /// A system may be registered after invoices reached it (its stream imported later): the
    /// view follows the registration however the events were batched.
    @Test func registrationAfterAcceptanceGovernsTheView() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            var script = Script()
            script.issue(Self.digital)
            script.accept(Self.digital, in: "late")
            script.system("late", requiresReview: true)
            try await append(ledger, script.events)
            #expect(try statuses(engine, Self.digital, in: "late") == ["pending_review"])
            for result in try await engine.verify([]) { #expect(result.identical, "\(result.name): \(result.firstDifference ?? "")") }
        }
    }
}
