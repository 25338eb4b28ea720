import FapiaoDomain
import Ledger
import Projections

/// Evaluates every cause of domain.md against one invoice's history, in pipeline order.
struct Diagnosis {
    let history: History
    let question: WhyQuestion
    let rules: RuleBook
    let state: InvoiceState
    let systemRow: SystemRow?
    let asOf: Int64?
    /// Each cause with what to do about it.
    private(set) var found: [(cause: Cause, suggestion: String?)] = []
    /// Suggestions not tied to one cause (near misses).
    private var generalSuggestions: [String] = []
    private var didYouMean: [String]?
    private var queryUsed: WhyAnswer.QueryUsed?
    private var extraTimeline: [DecodedBatch.Item] = []

    init(history: History, question: WhyQuestion, rules: RuleBook) {
        self.history = history
        self.question = question
        self.rules = rules
        state = history.state
        systemRow = history.systemRow
        asOf = history.asOf(cutoff: question.cutoff)
    }

    var system: String { question.system }

    mutating func add(_ cause: Cause, suggestion: String? = nil) {
        var cause = cause
        // Log order, each position once, however the check gathered them (the query's position
        // before the invoice's, a maintenance window's end before the query inside it).
        cause.evidence = Set(cause.evidence).sorted()
        found.append((cause, suggestion))
    }

    var causes: [Cause] { found.map(\.cause) }

    /// The positions of this invoice's events of some types (for this system when `system` is set).
    func positions(_ types: Set<EventType>, inSystem: Bool = false) -> [UInt64] {
        history.invoice.filter { item in
            guard let event = item.event, types.contains(event.type) else { return false }
            return !inSystem || event.system == system
        }.map(\.record.position)
    }

    func record(at position: UInt64) -> Record? {
        for items in [history.invoice, history.systemEvents, history.userEvents] {
            if let item = items.first(where: { $0.record.position == position }) { return item.record }
        }
        return nil
    }

    // MARK: 1. not in the ledger

    mutating func notInLedger(didYouMean nearMisses: [(key: String, difference: KeyDifference)]) {
        let keys = nearMisses.map(\.key)
        didYouMean = keys
        var summary = "no event in the ledger names invoice \(history.key)"
        if let first = nearMisses.first { summary += "; \(first.key) exists (\(first.difference))" }
        add(Cause(code: .notInLedger, summary: summary, since: nil, evidence: [], didYouMean: keys))
        for miss in nearMisses.prefix(3) {
            generalSuggestions.append("check the number: did you mean \(miss.key)? (what was typed: \(miss.difference))")
        }
        if nearMisses.isEmpty {
            generalSuggestions.append("check the number with the seller: no invoice one typo away is in the ledger either, and nothing has reached the ledger under this key")
        }
    }

    // MARK: 2–9: the invoice's own pipeline

    mutating func evaluatePipeline() {
        evaluateIssuer()
        evaluateVerification()
        evaluateRecipient()
        evaluateDelivery()
        evaluateReceiptAndReview()
    }

    private mutating func evaluateIssuer() {
        switch state.issuer.status {
        case "issue_failed":
            let evidence = positions([.invoiceIssueFailed])
            add(Cause(code: .issueFailed, summary: "the issue failed: \(state.issuer.issueFailedReason ?? "no reason given")",
                      since: state.issuer.since.map(CST.format), evidence: evidence),
                suggestion: "ask the seller to issue the invoice again: the tax platform recorded the issue as failed")
        case "voided":
            add(Cause(code: .voided, summary: "voided by \(state.issuer.voidedBy ?? "the seller"): \(state.issuer.voidReason ?? "")",
                      since: state.issuer.since.map(CST.format), evidence: positions([.invoiceVoided])),
                suggestion: "ask the seller for the replacement invoice: this one was voided")
        case "red_lettered":
            let reversals = state.redLetter?.reversals ?? []
            add(Cause(code: .redLetterReversed,
                      summary: "reversed by red-letter invoice\(reversals.count == 1 ? "" : "s") \(reversals.joined(separator: ", ")) (\(state.redLetter?.reversedAmount ?? ""))",
                      since: state.issuer.since.map(CST.format),
                      evidence: positions([.redLetterRequested, .redLetterConfirmed, .redLetterIssued])),
                suggestion: "ask the seller for the replacement invoice: this one was reversed by a red-letter invoice")
        default:
            break
        }
    }

    private mutating func evaluateVerification() {
        guard let verification = state.verification, verification.result == "not_found" || verification.result == "mismatch" else { return }
        let window = rules.table(atMicros: verification.at).verificationIngestionWindowSeconds * 1_000_000
        if let issuedAt = state.invoice?.issuedAtMicros, verification.result == "not_found", verification.at - issuedAt <= window {
            return // Expected lag of the national platform, not evidence of a fake.
        }
        add(Cause(code: .verificationFailed,
                  summary: "the national verification platform (\(verification.provider)) answered \(verification.result) at \(CST.format(verification.at))",
                  since: CST.format(verification.at), evidence: [verification.position]),
            suggestion: "verify the invoice again; if the platform still answers \(verification.result), treat it as not genuine and ask the seller")
    }

    private mutating func evaluateRecipient() {
        guard let owner = systemRow?.ownerTaxId, let invoice = state.invoice, let buyer = invoice.buyer.taxId, buyer != owner else { return }
        var evidence = positions([.invoiceIssued])
        if let registered = systemRow?.registeredAt { evidence.append(registered) }
        add(Cause(code: .wrongRecipient,
                  summary: "issued to buyer tax ID \(buyer) (\(invoice.buyer.name)); \(system) keeps books for \(owner)",
                  since: CST.format(invoice.issuedAtMicros), evidence: evidence.sorted()),
            suggestion: "ask the seller to red-letter the invoice and issue it again to tax ID \(owner)")
    }

    private mutating func evaluateDelivery() {
        let view = state.systems[system]
        let received = view.map { $0.receipt != "none" } ?? false
        guard !received else { return }
        let delivery = view?.delivery ?? "none"
        let evidence = positions([.deliveryAttempted, .deliveryFailed, .deliverySucceeded], inSystem: true)
        switch delivery {
        case "none":
            // Nothing was issued (the issue failed): there is nothing to deliver, so no cause here.
            guard state.invoice != nil else { break }
            add(Cause(code: .notDelivered, summary: "no delivery to \(system) has been attempted",
                      since: state.invoice.map { CST.format($0.issuedAtMicros) }, evidence: positions([.invoiceIssued])),
                suggestion: "start a delivery to \(system): the sync job has not picked this invoice up")
        case "attempting":
            let last = evidence.last.flatMap(record(at:))
            add(Cause(code: .deliveryPending, summary: "delivery attempt \(view?.deliveryAttempts ?? 1) to \(system) started and has no outcome yet",
                      since: last.map { CST.format($0.occurredMicros) }, evidence: evidence),
                suggestion: "check the sync job for \(system): an attempt started at \(last.map { CST.format($0.occurredMicros) } ?? "?") and never reported back")
        case "failed":
            let failures = history.invoice.filter { item in
                if case let .deliveryFailed(failed)? = item.event { return failed.system == system }
                return false
            }
            let first = evidence.first.flatMap(record(at:))
            let lastFailure = failures.last
            var summary = "\(failures.count) delivery attempt\(failures.count == 1 ? "" : "s") to \(system) failed"
            if let last = lastFailure, case let .deliveryFailed(failed)? = last.event {
                summary += "; last: \(failed.reason.rawValue) at \(CST.format(last.record.occurredMicros))"
            }
            add(Cause(code: .deliveryFailed, summary: summary, since: first.map { CST.format($0.occurredMicros) }, evidence: evidence),
                suggestion: deliverySuggestion(lastFailure))
        default:
            break
        }
    }

    private func deliverySuggestion(_ failure: DecodedBatch.Item?) -> String {
        guard let failure, case let .deliveryFailed(failed)? = failure.event else { return "retry delivery to \(system)" }
        let at = CST.format(failure.record.occurredMicros)
        switch failed.reason {
        case .authExpired: return "retry delivery: the tax-bureau login expired at \(at); log the sync job in again first"
        case .networkTimeout: return "retry delivery to \(system): the last attempt timed out at \(at)"
        case .connectionRefused: return "retry delivery once \(system) accepts connections: refused at \(at)"
        case .httpError: return "retry delivery to \(system): it answered an HTTP error at \(at) (\(failed.detail))"
        case .payloadRejected: return "fix the payload and resend: \(system) rejected it at \(at) (\(failed.detail))"
        }
    }

    private mutating func evaluateReceiptAndReview() {
        guard let view = state.systems[system] else { return }
        if view.receipt == "rejected" {
            add(Cause(code: .receiptRejected,
                      summary: "\(system)'s import rule \(view.receiptRule ?? "?") rejected it\(view.receiptDetail.map { $0.isEmpty ? "" : ": \($0)" } ?? "")",
                      since: view.receiptSince.map(CST.format), evidence: positions([.receiptRejected], inSystem: true)),
                suggestion: receiptSuggestion(view))
            return
        }
        guard let status = currentStatus, queryStatuses == nil else { return }
        let shown = Set(systemRow?.visibleStatuses ?? [])
        guard !shown.isEmpty, !shown.contains(status.rawValue) else { return }
        let showsText = shown.sorted().joined(separator: ", ")
        switch status {
        case .pendingReview:
            add(Cause(code: .pendingReview, summary: "accepted into \(system) and waiting for review; its default view shows \(showsText) only",
                      since: view.receiptSince.map(CST.format), evidence: positions([.receiptAccepted, .deliverySucceeded], inSystem: true)),
                suggestion: "ask a reviewer in \(system) to review it, or search with status pending_review")
        case .reviewRejected:
            add(Cause(code: .reviewRejected, summary: "review in \(system) rejected it (\(view.reviewBy ?? "?"): \(view.reviewReason ?? ""))",
                      since: view.reviewSince.map(CST.format), evidence: positions([.reviewRejected], inSystem: true)),
                suggestion: "resolve the review rejection with \(view.reviewBy ?? "the reviewer"): \(view.reviewReason ?? "")")
        default:
            break
        }
    }

    private func receiptSuggestion(_ view: InvoiceState.SystemView) -> String {
        switch view.receiptRule {
        case "buyer_tax_id_mismatch": return "the buyer tax ID on the invoice is not \(system)'s: ask the seller to reissue to the right buyer"
        case "duplicate": return "\(system) thinks it already has this invoice: search for it under its legacy code and number"
        case "parse_error": return "fix the sync job's payload for this invoice and resend it"
        case "totals_inconsistent": return "ask the seller why the totals do not add up, or relax \(system)'s totals rule"
        default: return "fix what \(system)'s rule \(view.receiptRule ?? "?") objects to and resend"
        }
    }

    /// The invoice's status in the system's views (nil: not in the system). A delivery that
    /// succeeded with no receipt event counts as accepted: not every system reports receipts.
    var currentStatus: VisibleStatus? {
        guard var view = state.systems[system] else { return nil }
        if view.receipt == "none" && view.delivery == "succeeded" { view.receipt = "accepted" }
        var adjusted = state
        adjusted.systems[system] = view
        return adjusted.viewStatus(in: system, requiresReview: systemRow?.requiresReview ?? false)
    }

    // MARK: 10–12: the user and the query

    /// The criteria evaluated: the flags', else the user's most recent recorded query.
    private var query: (criteria: QueryCriteria, record: Record?)? {
        if let criteria = question.criteria { return (criteria, nil) }
        guard question.user != nil, let asOf, let last = history.lastQuery(atOrBefore: asOf) else { return nil }
        return (last.query.criteria, last.record)
    }

    var queryStatuses: [VisibleStatus]? { query?.criteria.statuses }

    mutating func evaluateUser() {
        let query = self.query
        if let query {
            queryUsed = WhyAnswer.QueryUsed(
                position: query.record?.position, time: query.record.map { CST.format($0.occurredMicros) },
                criteria: EventSummary.describe(query.criteria))
            if let record = query.record, let item = history.userEvents.first(where: { $0.record.position == record.position }) {
                extraTimeline.append(item)
            }
        }
        if question.user != nil { evaluateAccess(at: query?.record?.occurredMicros ?? asOf) }
        if let record = query?.record { evaluateMaintenance(during: record) }
        if let query { evaluateQuery(query.criteria, record: query.record) }
    }

    private mutating func evaluateAccess(at moment: Int64?) {
        guard let user = question.user, let access = history.access else { return }
        let cutoff = history.userEvents.last { item in (moment.map { item.record.occurredMicros <= $0 } ?? true) }?.record.position ?? 0
        let scope = access.scope(asOf: cutoff)
        let seller = state.invoice?.seller.taxId
        let covered = scope.all || seller.map { scope.sellerTaxIds.contains($0) } ?? false
        guard !covered else { return }
        let revocation = access.changes.last { !$0.granted && $0.position <= cutoff }
        let summary = scope.evidence.isEmpty
            ? "\(user) has no access grant in \(system)"
            : "\(user)'s access in \(system) does not cover seller \(seller ?? "?")" + (revocation.map { " (revoked at \(CST.format($0.at)))" } ?? "")
        add(Cause(code: .accessDenied, summary: summary, since: revocation.map { CST.format($0.at) }, evidence: scope.evidence),
            suggestion: "grant \(user) access to seller \(seller ?? "?") in \(system)")
        extraTimeline += history.userEvents.filter { scope.evidence.contains($0.record.position) }
    }

    private mutating func evaluateMaintenance(during query: Record) {
        guard let row = systemRow else { return }
        for window in row.maintenance where window.start <= query.occurredMicros && (window.end.map { query.occurredMicros < $0 } ?? true) {
            let until = window.end.map { " until \(CST.format($0))" } ?? " (not ended)"
            add(Cause(code: .systemMaintenance,
                      summary: "the query at \(CST.format(query.occurredMicros)) ran while \(system) was in maintenance (\(window.reason)) from \(CST.format(window.start))\(until)",
                      since: CST.format(window.start), evidence: window.positions + [query.position]),
                suggestion: "search again now: \(system) was in maintenance when the query ran")
            extraTimeline += history.systemEvents.filter { window.positions.contains($0.record.position) }
        }
    }

    private mutating func evaluateQuery(_ criteria: QueryCriteria, record: Record?) {
        guard let invoice = state.invoice else { return }
        let evidence = record.map { [$0.position] } ?? []
        let since = record.map { CST.format($0.occurredMicros) }
        let issued = positions([.invoiceIssued])
        if let number = criteria.number, number != invoice.number, number != state.key {
            let difference = NumberDifference.explain(typed: number, number: invoice.number, key: state.key)
            add(Cause(code: .queryNumberMismatch,
                      summary: "the query searched for number \(number), the invoice is \(state.key)\(difference.map { " (\($0))" } ?? "")",
                      since: since, evidence: evidence + issued),
                suggestion: "search for number \(invoice.number)\(difference.map { " (your query: \($0))" } ?? "")")
        }
        if let problem = DateCheck.outside(issueDate: invoice.issueDate, issuedAt: invoice.issuedAtMicros, from: criteria.issuedFrom, to: criteria.issuedTo) {
            add(Cause(code: .queryDateOutOfRange, summary: problem.summary, since: since, evidence: evidence + issued), suggestion: problem.suggestion)
        }
        if let buyer = criteria.buyerName, buyer != invoice.buyer.name {
            let difference = NameDifference.explain(typed: buyer, actual: invoice.buyer.name)
            add(Cause(code: .queryBuyerNameMismatch, summary: "the query's buyer name \"\(buyer)\" is not the invoice's \"\(invoice.buyer.name)\": \(difference)",
                      since: since, evidence: evidence + issued),
                suggestion: "search with buyer name \(invoice.buyer.name) (your query \(difference))")
        }
        if let seller = criteria.sellerName, seller != invoice.seller.name {
            let difference = NameDifference.explain(typed: seller, actual: invoice.seller.name)
            add(Cause(code: .querySellerNameMismatch, summary: "the query's seller name \"\(seller)\" is not the invoice's \"\(invoice.seller.name)\": \(difference)",
                      since: since, evidence: evidence + issued),
                suggestion: "search with seller name \(invoice.seller.name) (your query \(difference))")
        }
        if let statuses = criteria.statuses, let status = currentStatus, !statuses.contains(status) {
            add(Cause(code: .queryStatusFiltered,
                      summary: "the query asked for status \(statuses.map(\.rawValue).joined(separator: "/")); the invoice is \(status.rawValue) in \(system)",
                      since: since, evidence: evidence + positions([.receiptAccepted, .reviewApproved, .reviewRejected], inSystem: true)
                          + positions([.invoiceVoided, .redLetterIssued])),
                suggestion: "include status \(status.rawValue) in the search")
        }
    }

    // MARK: The answer

    func answer() -> WhyAnswer {
        let sorted = found.enumerated().sorted { a, b in
            a.element.cause.code != b.element.cause.code ? a.element.cause.code < b.element.cause.code : a.offset < b.offset
        }.map(\.element)
        let ordered = sorted.map(\.cause)
        var suggestions = generalSuggestions
        for suggestion in sorted.compactMap(\.suggestion) where !suggestions.contains(suggestion) { suggestions.append(suggestion) }
        let timelineItems = (history.invoice + extraTimeline + registrationItems)
        var seen = Set<UInt64>()
        let timeline = timelineItems.filter { seen.insert($0.record.position).inserted }.sorted { $0.record.position < $1.record.position }.map { item in
            TimelineEntry(position: item.record.position, system: item.event?.system, time: CST.format(item.record.occurredMicros), recorded: CST.format(item.record.recordedMicros),
                          type: item.record.type, source: item.record.source, summary: EventSummary.describe(item.event, record: item.record))
        }
        return WhyAnswer(
            key: history.key, system: system, user: question.user, asOf: asOf.map(CST.format), visible: ordered.isEmpty,
            causes: ordered, timeline: timeline, suggestions: ordered.isEmpty ? [] : suggestions, didYouMean: didYouMean,
            query: queryUsed,
            cutoff: .init(at: question.cutoff.at.map(CST.format), knownAt: question.cutoff.knownAt.map(CST.format), position: question.cutoff.position))
    }

    /// The system's registration, when a cause leans on it.
    private var registrationItems: [DecodedBatch.Item] {
        guard causes.contains(where: { [.wrongRecipient, .pendingReview, .reviewRejected].contains($0.code) }) else { return [] }
        return history.systemEvents.filter { $0.event?.type == .systemRegistered }
    }

}

