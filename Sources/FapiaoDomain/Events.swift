// The event contract of docs/events.md as Swift values: every type, decoded from its JSON
// `data` object with a precise problem per bad field, and encoded back.
//
// Decoding tolerates unknown fields (the contract may be extended freely) and drops them;
// encoding writes the contract's fields in the contract's order. The ledger stores `data`
// byte-exact, so encoding is for generators, tests and exports of new events, never a
// rewrite of a stored one.

/// Every event type of the contract.
public enum EventType: String, Sendable, Hashable, CaseIterable {
    case invoiceIssued = "fapiao.invoice.issued"
    case invoiceIssueFailed = "fapiao.invoice.issue_failed"
    case invoiceVoided = "fapiao.invoice.voided"
    case redLetterRequested = "fapiao.invoice.red_letter_requested"
    case redLetterConfirmed = "fapiao.invoice.red_letter_confirmed"
    case redLetterIssued = "fapiao.invoice.red_letter_issued"
    case deliveryAttempted = "fapiao.delivery.attempted"
    case deliveryFailed = "fapiao.delivery.failed"
    case deliverySucceeded = "fapiao.delivery.succeeded"
    case receiptAccepted = "fapiao.receipt.accepted"
    case receiptRejected = "fapiao.receipt.rejected"
    case reviewApproved = "fapiao.review.approved"
    case reviewRejected = "fapiao.review.rejected"
    case verificationChecked = "fapiao.verification.checked"
    case systemRegistered = "fapiao.system.registered"
    case maintenanceStarted = "fapiao.system.maintenance_started"
    case maintenanceEnded = "fapiao.system.maintenance_ended"
    case accessGranted = "fapiao.access.granted"
    case accessRevoked = "fapiao.access.revoked"
    case queryExecuted = "fapiao.query.executed"
    /// Emitted by the ledger itself beside an upstream fact that breaks a rule: the fact is
    /// recorded as it happened, and this says which rules it breaks.
    case ledgerFlagged = "fapiao.ledger.flagged"

    /// Which kind of stream (subject) events of this type belong to.
    public var streamKind: StreamKind {
        switch self {
        case .systemRegistered, .maintenanceStarted, .maintenanceEnded: .system
        case .accessGranted, .accessRevoked, .queryExecuted: .user
        default: .invoice
        }
    }
}

/// One event's `data`, typed.
/// `indirect`: every case's payload lives in a box, so passing an event around (projections
/// and forensics look at each one many times) costs one retain, not one per string inside it.
public indirect enum DomainEvent: Sendable, Hashable {
    case invoiceIssued(InvoiceIssued)
    case invoiceIssueFailed(InvoiceIssueFailed)
    case invoiceVoided(InvoiceVoided)
    case redLetterRequested(RedLetterRequested)
    case redLetterConfirmed(RedLetterConfirmed)
    case redLetterIssued(RedLetterIssued)
    case deliveryAttempted(DeliveryAttempted)
    case deliveryFailed(DeliveryFailed)
    case deliverySucceeded(DeliverySucceeded)
    case receiptAccepted(ReceiptAccepted)
    case receiptRejected(ReceiptRejected)
    case reviewApproved(ReviewApproved)
    case reviewRejected(ReviewRejected)
    case verificationChecked(VerificationChecked)
    case systemRegistered(SystemRegistered)
    case maintenanceStarted(MaintenanceStarted)
    case maintenanceEnded(MaintenanceEnded)
    case accessGranted(AccessGranted)
    case accessRevoked(AccessRevoked)
    case queryExecuted(QueryExecuted)
    case ledgerFlagged(LedgerFlagged)

    public var type: EventType {
        switch self {
        case .invoiceIssued: .invoiceIssued
        case .invoiceIssueFailed: .invoiceIssueFailed
        case .invoiceVoided: .invoiceVoided
        case .redLetterRequested: .redLetterRequested
        case .redLetterConfirmed: .redLetterConfirmed
        case .redLetterIssued: .redLetterIssued
        case .deliveryAttempted: .deliveryAttempted
        case .deliveryFailed: .deliveryFailed
        case .deliverySucceeded: .deliverySucceeded
        case .receiptAccepted: .receiptAccepted
        case .receiptRejected: .receiptRejected
        case .reviewApproved: .reviewApproved
        case .reviewRejected: .reviewRejected
        case .verificationChecked: .verificationChecked
        case .systemRegistered: .systemRegistered
        case .maintenanceStarted: .maintenanceStarted
        case .maintenanceEnded: .maintenanceEnded
        case .accessGranted: .accessGranted
        case .accessRevoked: .accessRevoked
        case .queryExecuted: .queryExecuted
        case .ledgerFlagged: .ledgerFlagged
        }
    }

    /// Decodes a `data` value as the given type; every problem found is returned, with
    /// paths relative to `data`.
    public static func decode(type: EventType, data: JSONNode) -> Result<DomainEvent, DataProblems> {
        guard case .object(let members) = data.value else {
            return .failure(DataProblems([DataProblem(path: "", expected: "a JSON object", got: data.value.kindDescription)]))
        }
        var reader = DataReader()
        let event = decode(type: type, fields: ObjectFields(members: members, path: ""), reader: &reader)
        guard let event, reader.problems.isEmpty else { return .failure(DataProblems(reader.problems)) }
        return .success(event)
    }

    /// Parses and decodes `data` given as JSON bytes.
    public static func decode(type: EventType, dataBytes: [UInt8]) -> Result<DomainEvent, DataProblems> {
        do throws(JSONError) {
            return decode(type: type, data: try JSONParser.parse(dataBytes))
        } catch {
            return .failure(DataProblems([DataProblem(path: "", expected: error.expected + " (at byte \(error.offset))", got: error.found)]))
        }
    }

    private static func decode(type: EventType, fields: ObjectFields, reader: inout DataReader) -> DomainEvent? {
        switch type {
        case .invoiceIssued: InvoiceIssued.decode(fields, &reader).map(DomainEvent.invoiceIssued)
        case .invoiceIssueFailed: InvoiceIssueFailed.decode(fields, &reader).map(DomainEvent.invoiceIssueFailed)
        case .invoiceVoided: InvoiceVoided.decode(fields, &reader).map(DomainEvent.invoiceVoided)
        case .redLetterRequested: RedLetterRequested.decode(fields, &reader).map(DomainEvent.redLetterRequested)
        case .redLetterConfirmed: RedLetterConfirmed.decode(fields, &reader).map(DomainEvent.redLetterConfirmed)
        case .redLetterIssued: RedLetterIssued.decode(fields, &reader).map(DomainEvent.redLetterIssued)
        case .deliveryAttempted: DeliveryStep.decode(fields, &reader).map(DomainEvent.deliveryAttempted)
        case .deliveryFailed: DeliveryFailed.decode(fields, &reader).map(DomainEvent.deliveryFailed)
        case .deliverySucceeded: DeliveryStep.decode(fields, &reader).map(DomainEvent.deliverySucceeded)
        case .receiptAccepted: ReceiptAccepted.decode(fields, &reader).map(DomainEvent.receiptAccepted)
        case .receiptRejected: ReceiptRejected.decode(fields, &reader).map(DomainEvent.receiptRejected)
        case .reviewApproved: ReviewApproved.decode(fields, &reader).map(DomainEvent.reviewApproved)
        case .reviewRejected: ReviewRejected.decode(fields, &reader).map(DomainEvent.reviewRejected)
        case .verificationChecked: VerificationChecked.decode(fields, &reader).map(DomainEvent.verificationChecked)
        case .systemRegistered: SystemRegistered.decode(fields, &reader).map(DomainEvent.systemRegistered)
        case .maintenanceStarted: MaintenanceStarted.decode(fields, &reader).map(DomainEvent.maintenanceStarted)
        case .maintenanceEnded: MaintenanceEnded.decode(fields, &reader).map(DomainEvent.maintenanceEnded)
        case .accessGranted: AccessChange.decode(fields, &reader).map(DomainEvent.accessGranted)
        case .accessRevoked: AccessChange.decode(fields, &reader).map(DomainEvent.accessRevoked)
        case .queryExecuted: QueryExecuted.decode(fields, &reader).map(DomainEvent.queryExecuted)
        case .ledgerFlagged: LedgerFlagged.decode(fields, &reader).map(DomainEvent.ledgerFlagged)
        }
    }

    /// The `data` object, contract fields in contract order; absent optionals left out.
    public var data: JSONValue {
        .makeObject(payload.jsonFields)
    }

    /// `data` as compact JSON bytes.
    public var encodedData: [UInt8] { JSONWriter.encode(data) }

    private var payload: any EventData {
        switch self {
        case .invoiceIssued(let data): data
        case .invoiceIssueFailed(let data): data
        case .invoiceVoided(let data): data
        case .redLetterRequested(let data): data
        case .redLetterConfirmed(let data): data
        case .redLetterIssued(let data): data
        case .deliveryAttempted(let data): data
        case .deliveryFailed(let data): data
        case .deliverySucceeded(let data): data
        case .receiptAccepted(let data): data
        case .receiptRejected(let data): data
        case .reviewApproved(let data): data
        case .reviewRejected(let data): data
        case .verificationChecked(let data): data
        case .systemRegistered(let data): data
        case .maintenanceStarted(let data): data
        case .maintenanceEnded(let data): data
        case .accessGranted(let data): data
        case .accessRevoked(let data): data
        case .queryExecuted(let data): data
        case .ledgerFlagged(let data): data
        }
    }

    /// The receiving system the event concerns, for delivery, receipt and review events
    /// and for system and user streams.
    public var system: String? {
        switch self {
        case .deliveryAttempted(let data), .deliverySucceeded(let data): data.system
        case .deliveryFailed(let data): data.system
        case .receiptAccepted(let data): data.system
        case .receiptRejected(let data): data.system
        case .reviewApproved(let data): data.system
        case .reviewRejected(let data): data.system
        case .systemRegistered(let data): data.system
        case .maintenanceStarted(let data): data.system
        case .maintenanceEnded(let data): data.system
        case .accessGranted(let data), .accessRevoked(let data): data.system
        case .queryExecuted(let data): data.system
        default: nil
        }
    }

    /// The user, for user-stream events.
    public var user: String? {
        switch self {
        case .accessGranted(let data), .accessRevoked(let data): data.user
        case .queryExecuted(let data): data.user
        default: nil
        }
    }
}

/// What every event's data can do: be read from its fields and written back as fields.
protocol EventData: Sendable {
    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> Self?
    var jsonFields: [(String, JSONValue?)] { get }
}

// MARK: - Shared vocabularies

/// The statuses a receiving system's view can show (`visibleStatuses`, query `statuses`).
public enum VisibleStatus: String, Sendable, Hashable, CaseIterable {
    case pendingReview = "pending_review"
    case approved
    case reviewRejected = "review_rejected"
    case voided
    case redLettered = "red_lettered"
}

extension Money {
    var json: JSONValue { .string(description) }
}

extension Optional where Wrapped == String {
    var json: JSONValue? { map(JSONValue.string) }
}
