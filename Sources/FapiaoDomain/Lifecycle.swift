// Lifecycles: the state of one invoice as each observer sees it: the issuer, delivery to
// each receiving system, each receiving system itself, and the verification platform.
//
// Every machine is pure and total: `apply(_:at:)` always applies the fact, because it
// happened upstream and the ledger has recorded it. What it returns says whether the fact
// was legal, and if not, which rule it breaks, so the flag can travel with the evidence
// (`void of a digital invoice: ...`, `review before receipt`).

public enum ViolationCode: String, Sendable, Hashable, CaseIterable {
    case issuedTwice = "issued_twice"
    case issueFailedAfterIssue = "issue_failed_after_issue"
    case beforeIssue = "before_issue"
    case datedBeforeIssue = "dated_before_issue"
    case voidOfDigital = "void_of_digital"
    case voidOfElectronic = "void_of_electronic"
    case voidOutsideMonth = "void_outside_month"
    case voidedTwice = "voided_twice"
    case voidAfterRedLetter = "void_after_red_letter"
    case redLetterOfVoided = "red_letter_of_voided"
    case formRequestedTwice = "form_requested_twice"
    case unknownForm = "unknown_form"
    case formLapsed = "form_lapsed"
    case formConfirmedTwice = "form_confirmed_twice"
    case redLetterWithoutConfirmation = "red_letter_without_confirmation"
    case redLetterNotNegative = "red_letter_not_negative"
    case redLetterExceedsTotal = "red_letter_exceeds_total"
    case attemptOutOfOrder = "attempt_out_of_order"
    case attemptSkipped = "attempt_skipped"
    case outcomeWithoutAttempt = "outcome_without_attempt"
    case outcomeTwice = "outcome_twice"
    case acceptedTwice = "accepted_twice"
    case rejectedAfterAccepted = "rejected_after_accepted"
    case reviewBeforeReceipt = "review_before_receipt"
    case reviewOfRejectedReceipt = "review_of_rejected_receipt"
    case checkBeyondQuota = "check_beyond_quota"
    case notInvoiceStream = "not_invoice_stream"
}

/// Why a fact breaks a lifecycle rule.
public struct LifecycleViolation: Sendable, Hashable, CustomStringConvertible {
    public var code: ViolationCode
    public var message: String

    public init(_ code: ViolationCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// The outcome of applying one fact: legal, or the rules it breaks. It was applied either way.
public struct Transition: Sendable, Hashable {
    public var violations: [LifecycleViolation]

    public init(violations: [LifecycleViolation] = []) { self.violations = violations }

    public static let legal = Transition()

    public var isLegal: Bool { violations.isEmpty }

    static func flag(_ code: ViolationCode, _ message: String) -> Transition {
        Transition(violations: [LifecycleViolation(code, message)])
    }

    static func + (lhs: Transition, rhs: Transition) -> Transition {
        Transition(violations: lhs.violations + rhs.violations)
    }
}

// MARK: - Issuer

/// A red-letter confirmation form (红字确认单).
public struct ConfirmationForm: Sendable, Hashable {
    public enum State: String, Sendable, Hashable {
        case pending
        case confirmed
        /// Not confirmed within the lapse period.
        case lapsed
        /// A red-letter invoice was issued against it.
        case used
    }

    public var id: String
    public var requestedBy: RequestingSide
    public var requestedAtMicros: Int64
    public var confirmedAtMicros: Int64?
    public var used = false

    public func state(atMicros micros: Int64, lapseSeconds: Int64) -> State {
        if used { return .used }
        if confirmedAtMicros != nil { return .confirmed }
        return micros > requestedAtMicros + lapseSeconds * RFC3339.microsPerSecond ? .lapsed : .pending
    }
}

public enum IssuerStatus: String, Sendable, Hashable, CaseIterable {
    case notIssued = "not_issued"
    case issued
    case issueFailed = "issue_failed"
    case voided
    case redLetterRequested = "red_letter_requested"
    case redLetterConfirmed = "red_letter_confirmed"
    case redLettered = "red_lettered"
}

/// The invoice as its issuer (and the tax platform) know it.
public struct IssuerLifecycle: Sendable, Hashable {
    public let key: InvoiceKey?
    public let rules: RuleTable
    public private(set) var issued: InvoiceIssued?
    public private(set) var issueFailedAtMicros: Int64?
    public private(set) var voidedAtMicros: Int64?
    public private(set) var forms: [ConfirmationForm] = []
    public private(set) var reversals: [RedLetterIssued] = []

    public init(key: InvoiceKey?, rules: RuleTable) {
        self.key = key
        self.rules = rules
    }

    /// Digital when the issued event says so, else when the key is a 20-digit number.
    public var isDigital: Bool { issued?.kind.isDigital ?? key?.isDigital ?? false }

    /// The amount reversed so far, as a positive amount.
    public var reversedAmount: Money { reversals.reduce(Money.zero) { $0 - $1.totalAmount } }

    public var isFullyReversed: Bool {
        guard let issued, !reversals.isEmpty else { return false }
        return reversedAmount >= issued.totalAmount
    }

    public func status(atMicros micros: Int64) -> IssuerStatus {
        guard issued != nil else { return issueFailedAtMicros == nil ? .notIssued : .issueFailed }
        if voidedAtMicros != nil { return .voided }
        if !reversals.isEmpty { return .redLettered }
        let states = forms.map { $0.state(atMicros: micros, lapseSeconds: rules.redLetterLapseSeconds) }
        if states.contains(.confirmed) { return .redLetterConfirmed }
        if states.contains(.pending) { return .redLetterRequested }
        return .issued
    }

    public func form(_ id: String) -> ConfirmationForm? { forms.first { $0.id == id } }

    public mutating func apply(_ event: DomainEvent, at micros: Int64) -> Transition {
        switch event {
        case .invoiceIssued(let data): applyIssued(data)
        case .invoiceIssueFailed: applyIssueFailed(at: micros)
        case .invoiceVoided: applyVoided(at: micros)
        case .redLetterRequested(let data): applyRequested(data, at: micros)
        case .redLetterConfirmed(let data): applyConfirmed(data, at: micros)
        case .redLetterIssued(let data): applyRedLetter(data, at: micros)
        default: .legal
        }
    }

    mutating func applyIssued(_ data: InvoiceIssued) -> Transition {
        defer { issued = data }
        return issued == nil ? .legal : .flag(.issuedTwice, "issued twice: the invoice was already issued")
    }

    mutating func applyIssueFailed(at micros: Int64) -> Transition {
        issueFailedAtMicros = micros
        return issued == nil ? .legal : .flag(.issueFailedAfterIssue, "issue_failed after the invoice was issued")
    }

    mutating func applyVoided(at micros: Int64) -> Transition {
        defer { voidedAtMicros = micros }
        guard let issued else { return .flag(.beforeIssue, "void before the invoice was issued") }
        if voidedAtMicros != nil { return .flag(.voidedTwice, "voided twice") }
        if !reversals.isEmpty { return .flag(.voidAfterRedLetter, "void after a red-letter reversal") }
        if issued.kind.isDigital {
            return .flag(.voidOfDigital, "void of a digital invoice: digital electronic invoices cannot be voided, only red-lettered")
        }
        if !rules.voidableKinds.contains(issued.kind) {
            return .flag(.voidOfElectronic, "void of a \(issued.kind.rawValue) invoice: only legacy paper invoices can be voided")
        }
        let issueDate = issued.issuedAt.dateCST
        let voidDate = CalendarDate.cst(micros: micros)
        guard voidDate.isSameMonth(as: issueDate) else {
            return .flag(.voidOutsideMonth, "void on \(voidDate) of an invoice issued \(issueDate): voiding is allowed in the month of issue only")
        }
        return .legal
    }

    mutating func applyRequested(_ data: RedLetterRequested, at micros: Int64) -> Transition {
        let duplicate = form(data.confirmationId) != nil
        if !duplicate {
            forms.append(ConfirmationForm(id: data.confirmationId, requestedBy: data.requestedBy, requestedAtMicros: micros))
        }
        return redLetterPreconditions("red-letter request")
            + (duplicate ? .flag(.formRequestedTwice, "confirmation form \(data.confirmationId) requested twice") : .legal)
    }

    mutating func applyConfirmed(_ data: RedLetterConfirmed, at micros: Int64) -> Transition {
        guard let index = forms.firstIndex(where: { $0.id == data.confirmationId }) else {
            return .flag(.unknownForm, "confirmation of form \(data.confirmationId), which was never requested")
        }
        let state = forms[index].state(atMicros: micros, lapseSeconds: rules.redLetterLapseSeconds)
        // A late confirmation is recorded (and flagged) but does not revive a lapsed form.
        if state == .pending { forms[index].confirmedAtMicros = micros }
        switch state {
        case .pending: return .legal
        case .lapsed: return .flag(.formLapsed, "confirmation of form \(data.confirmationId) after it lapsed (\(rules.redLetterLapseSeconds / 3600) h unconfirmed)")
        case .confirmed, .used: return .flag(.formConfirmedTwice, "form \(data.confirmationId) confirmed twice")
        }
    }

    mutating func applyRedLetter(_ data: RedLetterIssued, at micros: Int64) -> Transition {
        var transition = redLetterPreconditions("red_letter_issued")
        if isDigital { transition = transition + useConfirmedForm(data.confirmationId, at: micros) }
        if data.totalAmount.fen > 0 || data.totalTax.fen > 0 {
            transition = transition + .flag(.redLetterNotNegative, "red-letter totals \(data.totalAmount) / \(data.totalTax) are not negative")
        }
        reversals.append(data)
        if let issued, reversedAmount > issued.totalAmount {
            transition = transition + .flag(.redLetterExceedsTotal, "red-letter reversals total \(reversedAmount), more than the invoice's \(issued.totalAmount)")
        }
        return transition
    }

    /// A digital red letter needs a confirmed form: the one it names, or any confirmed one.
    mutating func useConfirmedForm(_ id: String?, at micros: Int64) -> Transition {
        let index = forms.firstIndex { form in
            (id == nil || form.id == id) && form.state(atMicros: micros, lapseSeconds: rules.redLetterLapseSeconds) == .confirmed
        }
        guard let index else {
            return .flag(.redLetterWithoutConfirmation, "red_letter_issued without a confirmed confirmation form")
        }
        forms[index].used = true
        return .legal
    }

    func redLetterPreconditions(_ what: String) -> Transition {
        if issued == nil { return .flag(.beforeIssue, "\(what) before the invoice was issued") }
        if voidedAtMicros != nil { return .flag(.redLetterOfVoided, "\(what) for a voided invoice") }
        return .legal
    }
}

// MARK: - Delivery

/// Delivery of the invoice to one receiving system.
public struct DeliveryLifecycle: Sendable, Hashable {
    public enum Status: Sendable, Hashable {
        case none
        case attempting(attempt: Int)
        case failed(attempt: Int, reason: DeliveryFailureReason)
        case succeeded(attempt: Int)
    }

    public let system: String
    public private(set) var status: Status = .none
    /// The highest attempt number seen.
    public private(set) var attempts = 0
    public private(set) var failures = 0
    public private(set) var lastChangeMicros: Int64?

    public init(system: String) { self.system = system }

    public mutating func apply(_ event: DomainEvent, at micros: Int64) -> Transition {
        let transition: Transition
        switch event {
        case .deliveryAttempted(let data) where data.system == system:
            transition = applyAttempt(data.attempt)
        case .deliveryFailed(let data) where data.system == system:
            transition = applyOutcome(data.attempt, .failed(attempt: data.attempt, reason: data.reason))
            failures += 1
        case .deliverySucceeded(let data) where data.system == system:
            transition = applyOutcome(data.attempt, .succeeded(attempt: data.attempt))
        default:
            return .legal
        }
        lastChangeMicros = micros
        return transition
    }

    mutating func applyAttempt(_ attempt: Int) -> Transition {
        defer {
            status = .attempting(attempt: attempt)
            attempts = max(attempts, attempt)
        }
        if attempt <= attempts { return .flag(.attemptOutOfOrder, "delivery attempt \(attempt) to \(system) after attempt \(attempts)") }
        if attempt > attempts + 1 { return .flag(.attemptSkipped, "delivery attempt \(attempt) to \(system) follows attempt \(attempts): attempts are missing") }
        return .legal
    }

    mutating func applyOutcome(_ attempt: Int, _ outcome: Status) -> Transition {
        let previous = status
        status = outcome
        attempts = max(attempts, attempt)
        if previous == .attempting(attempt: attempt) { return .legal }
        switch previous {
        case .failed(let last, _) where last == attempt, .succeeded(let last) where last == attempt:
            return .flag(.outcomeTwice, "attempt \(attempt) to \(system) already had an outcome")
        default:
            return .flag(.outcomeWithoutAttempt, "outcome of delivery attempt \(attempt) to \(system), which was not recorded as started")
        }
    }
}

// MARK: - Receiving system

/// The invoice inside one receiving system: imported or not, and reviewed or not.
public struct ReceivingLifecycle: Sendable, Hashable {
    public enum Receipt: Sendable, Hashable {
        case none
        case accepted
        case rejected(ReceiptRule)
    }

    public enum Review: Sendable, Hashable {
        case none
        case approved(by: String)
        case rejected(by: String, reason: String)
    }

    public let system: String
    public private(set) var receipt: Receipt = .none
    public private(set) var review: Review = .none

    public init(system: String) { self.system = system }

    public mutating func apply(_ event: DomainEvent, at micros: Int64) -> Transition {
        switch event {
        case .receiptAccepted(let data) where data.system == system:
            defer { receipt = .accepted }
            return receipt == .accepted ? .flag(.acceptedTwice, "accepted twice by \(system)") : .legal
        case .receiptRejected(let data) where data.system == system:
            defer { receipt = .rejected(data.rule) }
            return receipt == .accepted ? .flag(.rejectedAfterAccepted, "rejected by \(system) after it was accepted") : .legal
        case .reviewApproved(let data) where data.system == system:
            return applyReview(.approved(by: data.by))
        case .reviewRejected(let data) where data.system == system:
            return applyReview(.rejected(by: data.by, reason: data.reason))
        default:
            return .legal
        }
    }

    mutating func applyReview(_ outcome: Review) -> Transition {
        review = outcome
        switch receipt {
        case .accepted: return .legal
        case .none: return .flag(.reviewBeforeReceipt, "review before receipt in \(system)")
        case .rejected(let rule): return .flag(.reviewOfRejectedReceipt, "review in \(system) of an invoice its import rule \(rule) rejected")
        }
    }

    /// The status the system's views filter on; nil when the invoice is not in the system.
    public func status(requiresReview: Bool) -> VisibleStatus? {
        guard receipt == .accepted else { return nil }
        switch review {
        case .approved: return .approved
        case .rejected: return .reviewRejected
        case .none: return requiresReview ? .pendingReview : .approved
        }
    }
}

// MARK: - Verification

public struct VerificationRecord: Sendable, Hashable {
    public var provider: String
    public var result: VerificationResult
    public var atMicros: Int64
}

/// What the verification history means for the invoice's genuineness.
public enum VerificationVerdict: Sendable, Hashable {
    case unverified
    case authentic
    /// Not found within the ingestion window after issue: expected lag, not evidence.
    case ingestionLag
    /// Not found after the window, or a mismatch.
    case notGenuine(VerificationResult)
    case reportsVoided
    case reportsRedLettered
    /// The platform gave no answer about the invoice (quota exceeded, older than look-back).
    case inconclusive(VerificationResult)
}

/// Checks against the national verification platform; the latest result decides.
public struct VerificationLifecycle: Sendable, Hashable {
    public let rules: RuleTable
    public private(set) var latest: VerificationRecord?
    public private(set) var checkDay: CalendarDate?
    public private(set) var checksOnCheckDay = 0

    public init(rules: RuleTable) { self.rules = rules }

    public mutating func apply(_ event: DomainEvent, at micros: Int64) -> Transition {
        guard case .verificationChecked(let data) = event else { return .legal }
        latest = VerificationRecord(provider: data.provider, result: data.result, atMicros: micros)
        let day = CalendarDate.cst(micros: micros)
        checksOnCheckDay = day == checkDay ? checksOnCheckDay + 1 : 1
        checkDay = day
        guard checksOnCheckDay > rules.verificationChecksPerDayMax, data.result != .quotaExceeded else { return .legal }
        return .flag(.checkBeyondQuota, "check \(checksOnCheckDay) on \(day) answered \(data.result.rawValue), beyond the quota of \(rules.verificationChecksPerDayMax) per day")
    }

    /// The latest result, read with the ingestion window when the issue time is known.
    public func verdict(issuedAtMicros: Int64?) -> VerificationVerdict {
        guard let latest else { return .unverified }
        switch latest.result {
        case .authentic: return .authentic
        case .voided: return .reportsVoided
        case .redLettered: return .reportsRedLettered
        case .quotaExceeded, .tooOld: return .inconclusive(latest.result)
        case .mismatch: return .notGenuine(.mismatch)
        case .notFound:
            guard let issuedAtMicros else { return .notGenuine(.notFound) }
            let window = rules.verificationIngestionWindowSeconds * RFC3339.microsPerSecond
            return latest.atMicros - issuedAtMicros < window ? .ingestionLag : .notGenuine(.notFound)
        }
    }
}

// MARK: - The whole invoice

/// Every observer's lifecycle of one invoice, fed the invoice stream in ledger order.
public struct InvoiceLifecycle: Sendable, Hashable {
    public private(set) var issuer: IssuerLifecycle
    public private(set) var deliveries: [String: DeliveryLifecycle] = [:]
    public private(set) var receivers: [String: ReceivingLifecycle] = [:]
    public private(set) var verification: VerificationLifecycle

    public init(key: InvoiceKey?, rules: RuleTable) {
        issuer = IssuerLifecycle(key: key, rules: rules)
        verification = VerificationLifecycle(rules: rules)
    }

    /// Routes the fact to the observer it concerns, and flags facts dated before the issue.
    public mutating func apply(_ event: DomainEvent, at micros: Int64) -> Transition {
        guard event.type.streamKind == .invoice else {
            return .flag(.notInvoiceStream, "\(event.type.rawValue) is not an invoice-stream event")
        }
        let dating = datingCheck(event, at: micros)
        switch event {
        case .deliveryAttempted(let data), .deliverySucceeded(let data):
            return dating + deliveries[data.system, default: DeliveryLifecycle(system: data.system)].apply(event, at: micros)
        case .deliveryFailed(let data):
            return dating + deliveries[data.system, default: DeliveryLifecycle(system: data.system)].apply(event, at: micros)
        case .receiptAccepted, .receiptRejected, .reviewApproved, .reviewRejected:
            let system = event.system!
            return dating + receivers[system, default: ReceivingLifecycle(system: system)].apply(event, at: micros)
        case .verificationChecked:
            return dating + verification.apply(event, at: micros)
        default:
            return dating + issuer.apply(event, at: micros)
        }
    }

    func datingCheck(_ event: DomainEvent, at micros: Int64) -> Transition {
        guard let issuedAt = issuer.issued?.issuedAt, micros < issuedAt.micros, event.type != .invoiceIssued else { return .legal }
        return .flag(.datedBeforeIssue, "\(event.type.rawValue) at \(RFC3339.formatCST(micros: micros)) is dated before the issue at \(issuedAt.text)")
    }

    /// The invoice's status in a receiving system's views: voided and red-lettered override
    /// review; nil when the system does not have the invoice.
    public func visibleStatus(in system: String, requiresReview: Bool, atMicros micros: Int64) -> VisibleStatus? {
        guard let inSystem = receivers[system]?.status(requiresReview: requiresReview) else { return nil }
        switch issuer.status(atMicros: micros) {
        case .voided: return .voided
        case .redLettered: return .redLettered
        default: return inSystem
        }
    }

    public func verificationVerdict() -> VerificationVerdict {
        verification.verdict(issuedAtMicros: issuer.issued?.issuedAt.micros)
    }
}
