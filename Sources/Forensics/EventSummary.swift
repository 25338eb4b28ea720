import FapiaoDomain
import Ledger

/// One line a finance user understands, per event.
public enum EventSummary {
    public static func describe(_ event: DomainEvent?, record: Record) -> String {
        guard let event else { return "\(record.type) from \(record.source)" }
        switch event {
        case let .invoiceIssued(issued):
            return "issued by \(issued.seller.name) to \(issued.buyer.name)\(issued.buyer.taxId.map { " (\($0))" } ?? ""): \(issued.totalWithTax) incl. tax \(issued.totalTax), issue date \(issued.issuedAt.dateCST) CST"
        case let .invoiceIssueFailed(failed): return "the issue failed: \(failed.reason)"
        case let .invoiceVoided(voided): return "voided by \(voided.by): \(voided.reason)"
        case let .redLetterRequested(request): return "red-letter confirmation form \(request.confirmationId) requested by the \(request.requestedBy.rawValue): \(request.reason)"
        case let .redLetterConfirmed(confirmed): return "red-letter confirmation form \(confirmed.confirmationId) confirmed"
        case let .redLetterIssued(issued): return "reversed by red-letter invoice \(issued.redInvoiceNumber) (\(issued.totalAmount), tax \(issued.totalTax))"
        case let .deliveryAttempted(step): return "delivery attempt \(step.attempt) to \(step.system) started"
        case let .deliveryFailed(failed): return "delivery attempt \(failed.attempt) to \(failed.system) failed: \(failed.reason.rawValue)\(failed.detail.isEmpty ? "" : " (\(failed.detail))")"
        case let .deliverySucceeded(step): return "delivered to \(step.system) on attempt \(step.attempt)"
        case let .receiptAccepted(accepted): return "accepted into \(accepted.system)"
        case let .receiptRejected(rejected): return "rejected by \(rejected.system)'s import rule \(rejected.rule)\(rejected.detail.isEmpty ? "" : ": \(rejected.detail)")"
        case let .reviewApproved(approved): return "approved in \(approved.system) by \(approved.by)"
        case let .reviewRejected(rejected): return "review rejected in \(rejected.system) by \(rejected.by): \(rejected.reason)"
        case let .verificationChecked(checked): return "verification at \(checked.provider): \(checked.result.rawValue)\(checked.detail.map { " (\($0))" } ?? "")"
        case let .systemRegistered(registered): return "\(registered.system) registered: keeps books for \(registered.ownerTaxId); \(registered.requiresReview ? "needs review" : "no review"); default view shows \(registered.visibleStatuses.map(\.rawValue).joined(separator: ", "))"
        case let .maintenanceStarted(started): return "\(started.system) went into maintenance: \(started.reason)"
        case let .maintenanceEnded(ended): return "\(ended.system) came out of maintenance"
        case let .accessGranted(change): return "\(change.user) granted access in \(change.system): \(describe(change.scope))"
        case let .accessRevoked(change): return "\(change.user)'s access in \(change.system) revoked: \(describe(change.scope))"
        case let .queryExecuted(query): return "\(query.user) searched \(query.system): \(describe(query.criteria)) → \(query.resultCount) result\(query.resultCount == 1 ? "" : "s")"
        case let .ledgerFlagged(flagged): return "flagged by the ledger: " + flagged.findings.map(\.rule.rawValue).joined(separator: ", ")
        }
    }

    static func describe(_ scope: AccessScope) -> String {
        switch scope {
        case .all: "all sellers"
        case let .sellerTaxIds(ids): "sellers " + ids.joined(separator: ", ")
        }
    }

    static func describe(_ criteria: QueryCriteria) -> String {
        var parts: [String] = []
        if let number = criteria.number { parts.append("number \(number)") }
        if criteria.issuedFrom != nil || criteria.issuedTo != nil {
            parts.append("issued \(criteria.issuedFrom?.description ?? "…")–\(criteria.issuedTo?.description ?? "…")")
        }
        if let buyer = criteria.buyerName { parts.append("buyer \"\(buyer)\"") }
        if let seller = criteria.sellerName { parts.append("seller \"\(seller)\"") }
        if let statuses = criteria.statuses { parts.append("status " + statuses.map(\.rawValue).joined(separator: "/")) }
        return parts.isEmpty ? "no criteria" : parts.joined(separator: ", ")
    }
}
