import FapiaoDomain
import Ledger

/// What the ledger knows of one invoice, as each observer saw it: the issuer, verification,
/// and every receiving system (delivery, receipt, review). Folded from the invoice's stream;
/// `lineage` cites the positions of the events that made it.
public struct InvoiceState: Codable, Sendable, Equatable {
    public var key: String
    public var issuer = Issuer()
    public var invoice: Summary?
    public var redLetter: RedLetter?
    public var verification: Verification?
    public var systems: [String: SystemView] = [:]
    /// Rules the invoice's facts break: rule codes of `fapiao.ledger.flagged` events and
    /// lifecycle violations (a void of a digital invoice, a review before receipt, ...).
    public var flags: [String] = []
    /// Positions of the events folded into this row, oldest first (the first `lineageMax`).
    public var lineage: [UInt64] = []
    public var lastPosition: UInt64 = 0

    public static let lineageMax = 512

    public init(key: String) { self.key = key }

    public struct Issuer: Codable, Sendable, Equatable {
        /// `not_issued`, `issued`, `issue_failed`, `voided`, `red_lettered`.
        public var status = "not_issued"
        public var since: Int64?
        /// The position of the event that set `status` (what a voided or red-lettered view cites).
        public var position: UInt64?
        public var issueFailedReason: String?
        public var voidedBy: String?
        public var voidReason: String?
    }

    public struct Party: Codable, Sendable, Equatable {
        public var name: String
        public var taxId: String?
    }

    public struct Summary: Codable, Sendable, Equatable {
        public var number: String
        public var code: String?
        public var kind: String
        /// `issuedAt` as sent.
        public var issuedAt: String
        public var issuedAtMicros: Int64
        /// The issue date in China Standard Time, `YYYY-MM-DD`: what date filters compare.
        public var issueDate: String
        public var seller: Party
        public var buyer: Party
        public var totalAmount: String
        public var totalTax: String
        public var totalWithTax: String
        public var lineCount: Int
    }

    public struct RedLetter: Codable, Sendable, Equatable {
        public struct Form: Codable, Sendable, Equatable {
            public var id: String
            public var requestedBy: String
            public var requestedAt: Int64
            public var confirmedAt: Int64?
        }

        public var forms: [Form] = []
        public var reversals: [String] = []
        /// Sum of the red-letter invoices' amounts (negative), as a decimal string.
        public var reversedAmount = "0.00"
    }

    public struct Verification: Codable, Sendable, Equatable {
        public var provider: String
        public var result: String
        public var at: Int64
        public var position: UInt64
    }

    public struct SystemView: Codable, Sendable, Equatable {
        /// `none`, `attempting`, `failed`, `succeeded`.
        public var delivery = "none"
        public var deliveryAttempts = 0
        public var deliveryFailures = 0
        public var lastFailureReason: String?
        public var lastFailureDetail: String?
        public var deliverySince: Int64?
        /// `none`, `accepted`, `rejected`.
        public var receipt = "none"
        public var receiptRule: String?
        public var receiptDetail: String?
        public var receiptSince: Int64?
        /// `none`, `approved`, `rejected`.
        public var review = "none"
        public var reviewBy: String?
        public var reviewReason: String?
        public var reviewSince: Int64?
        /// Positions of this system's events for this invoice.
        public var positions: [UInt64] = []
    }

    /// The status a receiving system's views give the invoice (nil: it is not in the system).
    public func viewStatus(in system: String, requiresReview: Bool) -> VisibleStatus? {
        guard let view = systems[system], view.receipt == "accepted" else { return nil }
        if issuer.status == "voided" { return .voided }
        if issuer.status == "red_lettered" { return .redLettered }
        switch view.review {
        case "approved": return .approved
        case "rejected": return .reviewRejected
        default: return requiresReview ? .pendingReview : .approved
        }
    }
}

extension InvoiceState {
    /// What status_views keeps of an invoice's state: the fields that place it in views
    /// (issuer status and position, each system's receipt, review and positions, the issue
    /// date) and the ones a list shows (number, names, total). Folding more events into it
    /// sets these fields exactly as folding them into the full state would: the fold reads
    /// nothing else to set them (whether an invoice was issued, the receipt's and review's
    /// times, the positions so far). The property tests fold the same log in different
    /// batches, and so slim at different points, and compare the bytes.
    func keptForViews() -> InvoiceState {
        var kept = InvoiceState(key: key)
        kept.issuer.status = issuer.status
        kept.issuer.position = issuer.position
        kept.invoice = invoice.map { invoice in
            Summary(
                number: invoice.number, code: nil, kind: "", issuedAt: "", issuedAtMicros: 0, issueDate: invoice.issueDate,
                seller: Party(name: invoice.seller.name, taxId: nil), buyer: Party(name: invoice.buyer.name, taxId: nil),
                totalAmount: "", totalTax: "", totalWithTax: invoice.totalWithTax, lineCount: 0)
        }
        kept.systems = systems.mapValues { view in
            var slim = SystemView()
            slim.receipt = view.receipt
            slim.receiptSince = view.receiptSince
            slim.review = view.review
            slim.reviewSince = view.reviewSince
            slim.positions = view.positions
            return slim
        }
        return kept
    }
}

/// The fold: one event into the invoice's state. Pure.
public enum InvoiceFold {
    public static func apply(_ event: DomainEvent, record: Record, to state: inout InvoiceState) {
        let at = record.occurredMicros
        if state.lineage.count < InvoiceState.lineageMax { state.lineage.append(record.position) }
        state.lastPosition = record.position
        switch event {
        case let .invoiceIssued(issued):
            if state.invoice != nil { flag("issued_twice", &state) }
            state.invoice = summary(issued)
            if state.issuer.status == "not_issued" || state.issuer.status == "issue_failed" {
                state.issuer.status = "issued"
                state.issuer.since = issued.issuedAt.micros
                state.issuer.position = record.position
            }
        case let .invoiceIssueFailed(failed):
            if state.invoice == nil { state.issuer.status = "issue_failed"; state.issuer.since = at; state.issuer.position = record.position }
            else { flag("issue_failed_after_issue", &state) }
            state.issuer.issueFailedReason = failed.reason
        case let .invoiceVoided(voided):
            if let kind = state.invoice?.kind, kind.hasPrefix("digital") { flag("void_of_digital_invoice", &state) }
            if state.invoice == nil { flag("void_before_issue", &state) }
            state.issuer.status = "voided"
            state.issuer.since = at
            state.issuer.position = record.position
            state.issuer.voidedBy = voided.by
            state.issuer.voidReason = voided.reason
        case let .redLetterRequested(request):
            var red = state.redLetter ?? InvoiceState.RedLetter()
            red.forms.append(.init(id: request.confirmationId, requestedBy: request.requestedBy.rawValue, requestedAt: at))
            state.redLetter = red
        case let .redLetterConfirmed(confirmed):
            var red = state.redLetter ?? InvoiceState.RedLetter()
            if let index = red.forms.firstIndex(where: { $0.id == confirmed.confirmationId }) {
                red.forms[index].confirmedAt = at
            } else {
                flag("confirmation_without_request", &state)
            }
            state.redLetter = red
        case let .redLetterIssued(issued):
            var red = state.redLetter ?? InvoiceState.RedLetter()
            let digital = state.invoice?.kind.hasPrefix("digital") ?? (state.key.count == 20)
            if digital && !red.forms.contains(where: { $0.confirmedAt != nil }) { flag("red_letter_without_confirmation", &state) }
            red.reversals.append(issued.redInvoiceNumber)
            let reversed = (Money.parse(red.reversedAmount).success ?? .zero) + issued.totalAmount
            red.reversedAmount = reversed.description
            state.redLetter = red
            state.issuer.status = "red_lettered"
            state.issuer.since = at
            state.issuer.position = record.position
        case let .deliveryAttempted(step):
            update(step.system, record, &state) { view in
                view.deliveryAttempts = max(view.deliveryAttempts, step.attempt)
                guard isLatest(at, view.deliverySince) else { return }
                view.delivery = "attempting"
                view.deliverySince = at
            }
        case let .deliveryFailed(failed):
            update(failed.system, record, &state) { view in
                view.deliveryAttempts = max(view.deliveryAttempts, failed.attempt)
                view.deliveryFailures += 1
                guard isLatest(at, view.deliverySince) else { return }
                view.delivery = "failed"
                view.lastFailureReason = failed.reason.rawValue
                view.lastFailureDetail = failed.detail
                view.deliverySince = at
            }
        case let .deliverySucceeded(step):
            update(step.system, record, &state) { view in
                view.deliveryAttempts = max(view.deliveryAttempts, step.attempt)
                guard isLatest(at, view.deliverySince) else { return }
                view.delivery = "succeeded"
                view.deliverySince = at
            }
        case let .receiptAccepted(accepted):
            update(accepted.system, record, &state) { view in
                guard isLatest(at, view.receiptSince) else { return }
                view.receipt = "accepted"
                view.receiptRule = nil
                view.receiptDetail = nil
                view.receiptSince = at
            }
        case let .receiptRejected(rejected):
            update(rejected.system, record, &state) { view in
                guard isLatest(at, view.receiptSince) else { return }
                view.receipt = "rejected"
                view.receiptRule = rejected.rule.rawValue
                view.receiptDetail = rejected.detail
                view.receiptSince = at
            }
        case let .reviewApproved(approved):
            if state.systems[approved.system]?.receipt != "accepted" { flag("review_before_receipt", &state) }
            update(approved.system, record, &state) { view in
                guard isLatest(at, view.reviewSince) else { return }
                view.review = "approved"
                view.reviewBy = approved.by
                view.reviewReason = nil
                view.reviewSince = at
            }
        case let .reviewRejected(rejected):
            if state.systems[rejected.system]?.receipt != "accepted" { flag("review_before_receipt", &state) }
            update(rejected.system, record, &state) { view in
                guard isLatest(at, view.reviewSince) else { return }
                view.review = "rejected"
                view.reviewBy = rejected.by
                view.reviewReason = rejected.reason
                view.reviewSince = at
            }
        case let .verificationChecked(checked):
            guard isLatest(at, state.verification?.at) else { break }
            state.verification = .init(provider: checked.provider, result: checked.result.rawValue, at: at, position: record.position)
        case let .ledgerFlagged(flagged):
            for finding in flagged.findings { flag(finding.rule.rawValue, &state) }
        case .systemRegistered, .maintenanceStarted, .maintenanceEnded, .accessGranted, .accessRevoked, .queryExecuted:
            break
        }
    }

    /// Whether an event that happened at `at` is the newest word on something last changed at
    /// `since`. A late arrival (it happened before what the ledger already has) is kept in the
    /// lineage and the counters, but does not roll the status back: the fold gives the same
    /// state whatever order the events were recorded in.
    private static func isLatest(_ at: Int64, _ since: Int64?) -> Bool {
        since.map { at >= $0 } ?? true
    }

    /// Changes the system's view in place: a copy taken out of the dictionary and put back
    /// would copy its positions on every event.
    private static func update(_ system: String, _ record: Record, _ state: inout InvoiceState, _ change: (inout InvoiceState.SystemView) -> Void) {
        Self.change(&state.systems[system, default: InvoiceState.SystemView()], position: record.position, change)
    }

    private static func change(_ view: inout InvoiceState.SystemView, position: UInt64, _ change: (inout InvoiceState.SystemView) -> Void) {
        change(&view)
        if view.positions.count < InvoiceState.lineageMax { view.positions.append(position) }
    }

    private static func flag(_ code: String, _ state: inout InvoiceState) {
        if !state.flags.contains(code) { state.flags.append(code) }
    }

    static func summary(_ issued: InvoiceIssued) -> InvoiceState.Summary {
        InvoiceState.Summary(
            number: issued.number, code: issued.code, kind: issued.kind.rawValue, issuedAt: issued.issuedAt.text,
            issuedAtMicros: issued.issuedAt.micros, issueDate: issued.issuedAt.dateCST.description,
            seller: .init(name: issued.seller.name, taxId: issued.seller.taxId),
            buyer: .init(name: issued.buyer.name, taxId: issued.buyer.taxId),
            totalAmount: issued.totalAmount.description, totalTax: issued.totalTax.description,
            totalWithTax: issued.totalWithTax.description, lineCount: issued.lines.count)
    }
}

extension Result {
    var success: Success? { try? get() }
}
