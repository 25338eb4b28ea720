import FapiaoDomain
import Foundation
import PropertyBased
import Testing
@testable import Ledger
@testable import Projections

/// Random histories over a few invoices, systems and users: every event type of the contract,
/// in any order (voids before issues, reviews before receipts, grants revoked before they
/// were given), plus facts projections must skip (unknown types, data that does not decode,
/// events on the wrong kind of stream) and idempotent retries.
enum RandomHistory {
    static let keys = ["24112000000015301234", "24112000000015301235", "25442000000000000017", "011001900111-12345678", "1100241130-00000042"]
    static let systems = ["beijing-finance", "shanghai-erp", "hq-audit"]
    static let users = ["zhang.wei", "li.na"]
    static let sellers = [(Build.sellerName, Build.sellerTaxId), ("深圳华为技术有限公司", Build.otherSellerTaxId)]
    static let buyers = ["北京某某科技（有限公司）", "北京某某科技(有限公司)", "北京某某 科技（有限公司） ", "上海另一家公司"]
    static let issueTimes = ["2024-12-31T23:59:00+08:00", "2025-01-01T00:30:00+08:00", "2024-12-31T16:30:00Z", "2025-01-15T09:00:00+08:00"]

    /// Event kinds and how often each is drawn.
    enum Kind: CaseIterable {
        case issued, issueFailed, voided, redLetterRequested, redLetterConfirmed, redLetterIssued
        case deliveryAttempted, deliveryFailed, deliverySucceeded, receiptAccepted, receiptRejected
        case reviewApproved, reviewRejected, verificationChecked, flagged
        case systemRegistered, maintenanceStarted, maintenanceEnded, accessGranted, accessRevoked, queryExecuted
        case undecodable, retry

        var weight: Int {
            switch self {
            case .issued, .receiptAccepted: 6
            case .reviewApproved, .reviewRejected, .deliveryAttempted, .deliverySucceeded, .systemRegistered: 3
            case .voided, .redLetterIssued, .accessGranted, .accessRevoked, .receiptRejected, .deliveryFailed: 2
            default: 1
            }
        }
    }

    static let weightedKinds: [Kind] = Kind.allCases.flatMap { Array(repeating: $0, count: $0.weight) }

    /// Turns each random code into an event; the same codes give the same events.
    static func events(from codes: [Int]) -> [NewEvent] {
        var events: [NewEvent] = []
        for (index, code) in codes.enumerated() {
            var draw = Draw(code)
            let kind = weightedKinds[draw.next(weightedKinds.count)]
            if kind == .retry, !events.isEmpty {
                events.append(events[draw.next(events.count)])
                continue
            }
            let time = RFC3339.format(micros: 1_735_660_800_000_000 + Int64(draw.next(2000)) * 60_000_000, offsetSeconds: RFC3339.cstOffsetSeconds)
            let id = "p-\(index)"
            let key = keys[draw.next(keys.count)]
            let system = systems[draw.next(systems.count)]
            let user = users[draw.next(users.count)]
            let attempt = 1 + draw.next(3)
            if kind == .undecodable || kind == .retry {
                events.append(undecodable(draw.next(4), key: key, system: system, id: id, time: time))
                continue
            }
            let (subject, event) = make(kind, key: key, system: system, user: user, attempt: attempt, draw: &draw)
            events.append(Build.event(subject, event, id: id, at: time))
        }
        return events
    }

    private static func make(_ kind: Kind, key: String, system: String, user: String, attempt: Int, draw: inout Draw) -> (String, DomainEvent) {
        let confirmation = "HZ-\(draw.next(2))"
        switch kind {
        case .issued:
            let seller = sellers[draw.next(sellers.count)]
            return (key, Build.issued(key, at: issueTimes[draw.next(issueTimes.count)], seller: seller.0, sellerTaxId: seller.1,
                                      buyer: buyers[draw.next(buyers.count)], amount: ["100.00", "520.75", "9.99"][draw.next(3)]))
        case .issueFailed: return (key, .invoiceIssueFailed(InvoiceIssueFailed(reason: "platform unavailable")))
        case .voided: return (key, .invoiceVoided(InvoiceVoided(reason: "wrong buyer", by: "li.na")))
        case .redLetterRequested:
            return (key, .redLetterRequested(RedLetterRequested(confirmationId: confirmation, requestedBy: draw.next(2) == 0 ? .buyer : .seller, reason: "returned goods")))
        case .redLetterConfirmed: return (key, .redLetterConfirmed(RedLetterConfirmed(confirmationId: confirmation)))
        case .redLetterIssued:
            return (key, .redLetterIssued(RedLetterIssued(redInvoiceNumber: "2511200000000000004\(draw.next(10))", totalAmount: Literal.money("-100.00"), totalTax: Literal.money("-6.00"))))
        case .deliveryAttempted: return (key, .deliveryAttempted(DeliveryStep(system: system, attempt: attempt)))
        case .deliveryFailed:
            return (key, .deliveryFailed(DeliveryFailed(system: system, attempt: attempt, reason: DeliveryFailureReason.allCases[draw.next(5)], detail: "detail")))
        case .deliverySucceeded: return (key, .deliverySucceeded(DeliveryStep(system: system, attempt: attempt)))
        case .receiptAccepted: return (key, .receiptAccepted(ReceiptAccepted(system: system)))
        case .receiptRejected:
            return (key, .receiptRejected(ReceiptRejected(system: system, rule: ReceiptRule.known[draw.next(4)], detail: "")))
        case .reviewApproved: return (key, .reviewApproved(ReviewApproved(system: system, by: "wang.fang")))
        case .reviewRejected: return (key, .reviewRejected(ReviewRejected(system: system, by: "wang.fang", reason: "no contract")))
        case .verificationChecked:
            return (key, .verificationChecked(VerificationChecked(provider: "chinatax", result: VerificationResult.allCases[draw.next(7)])))
        case .flagged:
            return (key, .ledgerFlagged(LedgerFlagged(
                event: .init(source: Build.source, id: "p-0", type: EventType.invoiceIssued.rawValue), rulesVersion: "2025-01",
                findings: [RuleFinding(lineIndex: nil, rule: RuleCode.allCases[draw.next(RuleCode.allCases.count)], expected: "x", actual: "y")])))
        case .systemRegistered:
            let visible = [[VisibleStatus.approved], [.approved, .pendingReview], VisibleStatus.allCases][draw.next(3)]
            return ("system/" + system, Build.registered(system, requiresReview: draw.next(2) == 0, visible: visible))
        case .maintenanceStarted: return ("system/" + system, .maintenanceStarted(MaintenanceStarted(system: system, reason: "upgrade")))
        case .maintenanceEnded: return ("system/" + system, .maintenanceEnded(MaintenanceEnded(system: system)))
        case .accessGranted, .accessRevoked:
            let scope: AccessScope = draw.next(2) == 0 ? .all : .sellerTaxIds([sellers[draw.next(2)].1])
            let change = AccessChange(system: system, user: user, scope: scope)
            return ("system/\(system)/user/\(user)", kind == .accessGranted ? .accessGranted(change) : .accessRevoked(change))
        case .queryExecuted:
            let criteria = QueryCriteria(number: key, issuedFrom: CalendarDate(year: 2025, month: 1, day: 1), buyerName: buyers[draw.next(buyers.count)])
            return ("system/\(system)/user/\(user)", .queryExecuted(QueryExecuted(system: system, user: user, criteria: criteria, resultCount: draw.next(3))))
        case .undecodable, .retry:
            preconditionFailure("handled by the caller")
        }
    }

    /// Facts the ledger keeps and projections skip or fold harmlessly.
    private static func undecodable(_ variant: Int, key: String, system: String, id: String, time: String) -> NewEvent {
        let (stream, type, data) = switch variant {
        case 0: (key, "fapiao.test.unknown", #"{"x":1}"#)
        case 1: (key, EventType.receiptAccepted.rawValue, #"{"sys":"\#(system)"}"#)
        // A system's event on an invoice's stream: a rebuild grouping the log by stream from the
        // streams index does not expect it there, and must start again from a header scan.
        case 2: (key, EventType.accessGranted.rawValue, #"{"system":"\#(system)","user":"li.na","scope":{"all":true}}"#)
        default: ("system/\(system)/user/zhang.wei", EventType.receiptAccepted.rawValue, #"{"system":"\#(system)"}"#)
        }
        return NewEvent(stream: stream, type: type, source: Build.source, id: id, time: time, occurredMicros: Literal.instant(time).micros,
                        dataContentType: "application/json", data: Array(data.utf8))
    }

    /// Draws small numbers from one random code.
    struct Draw {
        var rest: Int
        init(_ code: Int) { rest = code }
        mutating func next(_ count: Int) -> Int {
            defer { rest /= count }
            return rest % count
        }
    }
}

/// Appends `events` in batches of the given sizes (cycled). Each batch goes as one or two
/// requests queued together, so the writer may commit them in one transaction or in two.
func appendInBatches(_ ledger: Ledger, _ events: [NewEvent], sizes: [Int]) async throws {
    var start = 0
    var turn = 0
    while start < events.count {
        let size = max(1, sizes[turn % sizes.count])
        let batch = Array(events[start..<min(start + size, events.count)])
        let split = batch.count > 1 && turn % 3 == 0 ? batch.count / 2 : batch.count
        var pending = [try ledger.enqueue(batch[..<split].map { AppendEntry($0) })]
        if split < batch.count { pending.append(try ledger.enqueue(batch[split...].map { AppendEntry($0) })) }
        for append in pending { _ = try await append.result() }
        start += size
        turn += 1
    }
}

@Suite struct ProjectionPropertyTests {
    /// The central invariant: projections are a pure function of the log. Folding the events
    /// as they are appended (inline, in the append's transaction), following them (async, in
    /// chunks the catch-up loop picks), and rebuilding from scratch all give the same bytes,
    /// whether the rebuild keeps every row in memory to the end or writes them out as it goes.
    @Test func inlineAsyncAndRebuildAgreeByteForByte() async throws {
        await propertyCheck(
            count: 100,
            input: Gen.int(in: 0...Int.max).array(of: 1...100), Gen.int(in: 1...9).array(of: 1...6)
        ) { codes, sizes in
            let events = RandomHistory.events(from: codes)
            do {
                try await checkAgreement(events, sizes: sizes)
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    private func checkAgreement(_ events: [NewEvent], sizes: [Int]) async throws {
        let inlineDirectory = TemporaryDirectory("property-inline")
        let asyncDirectory = TemporaryDirectory("property-async")
        // The inline ledger merges its index tail every 7 records, so its rebuilds group most of
        // the log by stream from the streams index; the async one keeps most keys in its tail
        // (it merges only when idle for a second).
        let merging = LedgerOptions(indexMergeEventsMin: 7)
        let (inline, rebuilt) = try await withEngine(at: inlineDirectory.ledgerPath, mode: .inline, options: merging) { ledger, engine in
            try await appendInBatches(ledger, events, sizes: sizes)
            let head = try ledger.headPosition()
            let inline = try dump(engine)
            // Inline is read-your-writes: nothing to wait for.
            #expect(inline.checkpoints.values.allSatisfy { $0 == head }, "inline checkpoints \(inline.checkpoints) behind head \(head)")
            let verified = try await engine.verify([])
            #expect(verified.count == engine.projections.count)
            for result in verified { #expect(result.identical, "inline \(result.name): \(result.firstDifference ?? "")") }
            try await engine.rebuild([])
            return (inline, try dump(engine))
        }
        // Its verify rebuilds in chunks of 5 records (streams in 3 parts), writing the buffered
        // rows out after every chunk (3 per transaction), so later chunks read through to stored
        // rows and delete them. Each projection is also verified alone: status_views is then
        // folded from every event, not derived from invoice_state's rows.
        let tiny = RebuildLimits(chunkEvents: 5, bufferBytes: 0, rowsPerTransaction: 3, streamParts: 3)
        let following = try await withEngine(at: asyncDirectory.ledgerPath, mode: .async, rebuildLimits: tiny) { ledger, engine in
            try await appendInBatches(ledger, events, sizes: sizes.reversed())
            try await waitUntilCaughtUp(engine)
            let following = try dump(engine)
            for result in try await engine.verify([]) { #expect(result.identical, "async \(result.name): \(result.firstDifference ?? "")") }
            for name in engine.projections.map(\.name) {
                for result in try await engine.verify([name]) { #expect(result.identical, "async, alone \(result.name): \(result.firstDifference ?? "")") }
            }
            return following
        }
        #expect(inline == following, "inline vs async: \(inline.firstDifference(from: following) ?? "")")
        #expect(inline == rebuilt, "inline vs rebuilt: \(inline.firstDifference(from: rebuilt) ?? "")")
    }
}
