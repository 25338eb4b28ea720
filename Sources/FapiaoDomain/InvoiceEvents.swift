// Data of the invoice-stream events: issue, void, red letter, delivery, receipt, review,
// verification. Field names and enumerated values are the contract's (docs/events.md).

public enum InvoiceKind: String, Sendable, Hashable, CaseIterable {
    case digitalSpecial = "digital_special"
    case digitalOrdinary = "digital_ordinary"
    case vatSpecial = "vat_special"
    case vatOrdinary = "vat_ordinary"
    case vatElectronicSpecial = "vat_electronic_special"
    case vatElectronicOrdinary = "vat_electronic_ordinary"

    /// Digital (数电) invoices: a 20-digit number, no code; never voided, only red-lettered.
    public var isDigital: Bool { self == .digitalSpecial || self == .digitalOrdinary }

    /// Legacy paper invoices, the only ones that may be voided.
    public var isPaper: Bool { self == .vatSpecial || self == .vatOrdinary }
}

/// A seller or buyer as printed on the invoice. Individuals buy without a tax ID.
public struct Party: Sendable, Hashable {
    public var name: String
    public var taxId: String?

    public init(name: String, taxId: String?) {
        self.name = name
        self.taxId = taxId
    }

    static func decode(requiringTaxId: Bool) -> (ObjectFields, inout DataReader) -> Party? {
        { fields, reader in
            let name = reader.text(fields, "name")
            let taxId: String?? = requiringTaxId ? reader.text(fields, "taxId").map { .some($0) } : reader.optional(fields, "taxId", Field.nonEmptyString)
            guard let name, let taxId else { return nil }
            return Party(name: name, taxId: taxId)
        }
    }

    var json: JSONValue { .makeObject([("name", .string(name)), ("taxId", taxId.json)]) }
}

public struct InvoiceLine: Sendable, Hashable {
    public var name: String
    public var spec: String?
    public var unit: String?
    public var quantity: ExactDecimal
    public var unitPrice: ExactDecimal
    public var amount: Money
    public var taxRate: TaxRate
    public var tax: Money

    public init(name: String, spec: String? = nil, unit: String? = nil, quantity: ExactDecimal, unitPrice: ExactDecimal, amount: Money, taxRate: TaxRate, tax: Money) {
        self.name = name
        self.spec = spec
        self.unit = unit
        self.quantity = quantity
        self.unitPrice = unitPrice
        self.amount = amount
        self.taxRate = taxRate
        self.tax = tax
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> InvoiceLine? {
        let name = reader.text(fields, "name")
        let spec = reader.optionalText(fields, "spec")
        let unit = reader.optionalText(fields, "unit")
        let quantity = reader.required(fields, "quantity", Field.quantity, expected: "a decimal string like \"1.5\"")
        let unitPrice = reader.required(fields, "unitPrice", Field.quantity, expected: "a decimal string like \"520.75\"")
        let amount = reader.required(fields, "amount", Field.money, expected: Field.amountExpected)
        let taxRate = reader.required(fields, "taxRate", Field.rate, expected: Field.rateExpected)
        let tax = reader.required(fields, "tax", Field.money, expected: Field.amountExpected)
        guard let name, let spec, let unit, let quantity, let unitPrice, let amount, let taxRate, let tax else { return nil }
        return InvoiceLine(name: name, spec: spec, unit: unit, quantity: quantity, unitPrice: unitPrice, amount: amount, taxRate: taxRate, tax: tax)
    }

    var json: JSONValue {
        .makeObject([
            ("name", .string(name)), ("spec", spec.json), ("unit", unit.json),
            ("quantity", .string(quantity.description)), ("unitPrice", .string(unitPrice.description)),
            ("amount", amount.json), ("taxRate", .string(taxRate.description)), ("tax", tax.json),
        ])
    }
}

public struct InvoiceIssued: Sendable, Hashable, EventData {
    public var number: String
    /// Nil for digital invoices.
    public var code: String?
    public var kind: InvoiceKind
    public var issuedAt: Timestamp
    public var seller: Party
    public var buyer: Party
    public var lines: [InvoiceLine]
    public var totalAmount: Money
    public var totalTax: Money
    public var totalWithTax: Money
    public var remarks: String?
    /// A paper invoice printed by the digital platform (数电纸票) carries both a 20-digit
    /// `number` and a legacy `code` with this 8-digit number: `code-paperNumber` is its alias.
    /// An optional extension of the contract.
    public var paperNumber: String?

    /// The largest invoice we accept; the national platform's own ceiling is lower.
    public static let lineCountMax = 2000

    public init(number: String, code: String?, kind: InvoiceKind, issuedAt: Timestamp, seller: Party, buyer: Party, lines: [InvoiceLine], totalAmount: Money, totalTax: Money, totalWithTax: Money, remarks: String? = nil, paperNumber: String? = nil) {
        self.paperNumber = paperNumber
        self.number = number
        self.code = code
        self.kind = kind
        self.issuedAt = issuedAt
        self.seller = seller
        self.buyer = buyer
        self.lines = lines
        self.totalAmount = totalAmount
        self.totalTax = totalTax
        self.totalWithTax = totalWithTax
        self.remarks = remarks
    }

    /// The key the number and code name: a 20-digit number alone, or code-number. Nil when
    /// they name none (a finding of `InvoiceChecks`, not a decoding problem).
    public var key: InvoiceKey? {
        if let code, let key = InvoiceKey(canonical: code + "-" + number) { return key }
        return InvoiceKey(canonical: number)
    }

    /// The legacy alias of a digital paper invoice (`code-paperNumber`), when it has one.
    public var aliasKey: InvoiceKey? {
        guard number.utf8.count == 20, let code, let paperNumber else { return nil }
        return InvoiceKey(canonical: code + "-" + paperNumber)
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> InvoiceIssued? {
        let number = reader.required(fields, "number", Field.digits(counts: [8, 20]), expected: "an 8- or 20-digit string")
        let code = reader.optional(fields, "code", Field.digits(counts: [10, 12]))
        let kind = reader.required(fields, "kind", Field.choice(InvoiceKind.self), expected: Field.choiceExpected(InvoiceKind.self))
        let issuedAt = reader.required(fields, "issuedAt", Field.timestamp, expected: Field.timeExpected)
        let seller = reader.object(fields, "seller", expected: "an object {name, taxId}", Party.decode(requiringTaxId: true))
        let buyer = reader.object(fields, "buyer", expected: "an object {name, taxId?}", Party.decode(requiringTaxId: false))
        let lines = reader.objects(fields, "lines", countMax: lineCountMax, expected: "an array of invoice lines", InvoiceLine.decode)
        let totalAmount = reader.required(fields, "totalAmount", Field.money, expected: Field.amountExpected)
        let totalTax = reader.required(fields, "totalTax", Field.money, expected: Field.amountExpected)
        let totalWithTax = reader.required(fields, "totalWithTax", Field.money, expected: Field.amountExpected)
        let remarks = reader.optionalText(fields, "remarks")
        let paperNumber = reader.optional(fields, "paperNumber", Field.digits(counts: [8]))
        guard let number, let code, let kind, let issuedAt, let seller, let buyer, let lines,
              let totalAmount, let totalTax, let totalWithTax, let remarks, let paperNumber else { return nil }
        return InvoiceIssued(number: number, code: code, kind: kind, issuedAt: issuedAt, seller: seller, buyer: buyer, lines: lines,
                             totalAmount: totalAmount, totalTax: totalTax, totalWithTax: totalWithTax, remarks: remarks,
                             paperNumber: paperNumber)
    }

    var jsonFields: [(String, JSONValue?)] {
        [
            ("number", .string(number)), ("code", code.json ?? .null), ("kind", .string(kind.rawValue)),
            ("issuedAt", .string(issuedAt.text)), ("seller", seller.json), ("buyer", buyer.json),
            ("lines", .makeArray(lines.map(\.json))), ("totalAmount", totalAmount.json), ("totalTax", totalTax.json),
            ("totalWithTax", totalWithTax.json), ("remarks", remarks.json), ("paperNumber", paperNumber.map { .string($0) }),
        ]
    }
}

public struct InvoiceIssueFailed: Sendable, Hashable, EventData {
    public var reason: String

    public init(reason: String) { self.reason = reason }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> InvoiceIssueFailed? {
        reader.text(fields, "reason").map(InvoiceIssueFailed.init)
    }

    var jsonFields: [(String, JSONValue?)] { [("reason", .string(reason))] }
}

public struct InvoiceVoided: Sendable, Hashable, EventData {
    public var reason: String
    public var by: String

    public init(reason: String, by: String) {
        self.reason = reason
        self.by = by
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> InvoiceVoided? {
        let reason = reader.text(fields, "reason")
        let by = reader.text(fields, "by")
        guard let reason, let by else { return nil }
        return InvoiceVoided(reason: reason, by: by)
    }

    var jsonFields: [(String, JSONValue?)] { [("reason", .string(reason)), ("by", .string(by))] }
}

/// Who asked for a red-letter confirmation form.
public enum RequestingSide: String, Sendable, Hashable, CaseIterable {
    case seller
    case buyer
}

public struct RedLetterRequested: Sendable, Hashable, EventData {
    public var confirmationId: String
    public var requestedBy: RequestingSide
    public var reason: String

    public init(confirmationId: String, requestedBy: RequestingSide, reason: String) {
        self.confirmationId = confirmationId
        self.requestedBy = requestedBy
        self.reason = reason
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> RedLetterRequested? {
        let confirmationId = reader.text(fields, "confirmationId")
        let requestedBy = reader.required(fields, "requestedBy", Field.choice(RequestingSide.self), expected: Field.choiceExpected(RequestingSide.self))
        let reason = reader.text(fields, "reason")
        guard let confirmationId, let requestedBy, let reason else { return nil }
        return RedLetterRequested(confirmationId: confirmationId, requestedBy: requestedBy, reason: reason)
    }

    var jsonFields: [(String, JSONValue?)] {
        [("confirmationId", .string(confirmationId)), ("requestedBy", .string(requestedBy.rawValue)), ("reason", .string(reason))]
    }
}

public struct RedLetterConfirmed: Sendable, Hashable, EventData {
    public var confirmationId: String

    public init(confirmationId: String) { self.confirmationId = confirmationId }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> RedLetterConfirmed? {
        reader.text(fields, "confirmationId").map(RedLetterConfirmed.init)
    }

    var jsonFields: [(String, JSONValue?)] { [("confirmationId", .string(confirmationId))] }
}

public struct RedLetterIssued: Sendable, Hashable, EventData {
    public var redInvoiceNumber: String
    /// Negative: the amount reversed. A non-negative total is a lifecycle flag.
    public var totalAmount: Money
    public var totalTax: Money
    /// Our extension: which confirmation form this reversal used, when the sender knows.
    public var confirmationId: String?

    public init(redInvoiceNumber: String, totalAmount: Money, totalTax: Money, confirmationId: String? = nil) {
        self.redInvoiceNumber = redInvoiceNumber
        self.totalAmount = totalAmount
        self.totalTax = totalTax
        self.confirmationId = confirmationId
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> RedLetterIssued? {
        let number = reader.text(fields, "redInvoiceNumber")
        let totalAmount = reader.required(fields, "totalAmount", Field.money, expected: Field.amountExpected)
        let totalTax = reader.required(fields, "totalTax", Field.money, expected: Field.amountExpected)
        let confirmationId = reader.optional(fields, "confirmationId", Field.nonEmptyString)
        guard let number, let totalAmount, let totalTax, let confirmationId else { return nil }
        return RedLetterIssued(redInvoiceNumber: number, totalAmount: totalAmount, totalTax: totalTax, confirmationId: confirmationId)
    }

    var jsonFields: [(String, JSONValue?)] {
        [("redInvoiceNumber", .string(redInvoiceNumber)), ("totalAmount", totalAmount.json), ("totalTax", totalTax.json), ("confirmationId", confirmationId.json)]
    }
}

// MARK: - Delivery, receipt, review

/// `fapiao.delivery.attempted` and `fapiao.delivery.succeeded` carry the same fields.
public struct DeliveryStep: Sendable, Hashable, EventData {
    public var system: String
    /// 1-based attempt number.
    public var attempt: Int

    public init(system: String, attempt: Int) {
        self.system = system
        self.attempt = attempt
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> DeliveryStep? {
        let system = reader.identifier(fields, "system")
        let attempt = reader.required(fields, "attempt", Field.integer(minimum: 1), expected: "a positive integer")
        guard let system, let attempt else { return nil }
        return DeliveryStep(system: system, attempt: attempt)
    }

    var jsonFields: [(String, JSONValue?)] { [("system", .string(system)), ("attempt", .integer(attempt))] }
}

public typealias DeliveryAttempted = DeliveryStep
public typealias DeliverySucceeded = DeliveryStep

public enum DeliveryFailureReason: String, Sendable, Hashable, CaseIterable {
    case networkTimeout = "network_timeout"
    case connectionRefused = "connection_refused"
    case httpError = "http_error"
    /// The tax-bureau login expired: sync stops silently until someone logs in again.
    case authExpired = "auth_expired"
    case payloadRejected = "payload_rejected"
}

public struct DeliveryFailed: Sendable, Hashable, EventData {
    public var system: String
    public var attempt: Int
    public var reason: DeliveryFailureReason
    public var detail: String

    public init(system: String, attempt: Int, reason: DeliveryFailureReason, detail: String) {
        self.system = system
        self.attempt = attempt
        self.reason = reason
        self.detail = detail
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> DeliveryFailed? {
        let step = DeliveryStep.decode(fields, &reader)
        let reason = reader.required(fields, "reason", Field.choice(DeliveryFailureReason.self), expected: Field.choiceExpected(DeliveryFailureReason.self))
        let detail = reader.text(fields, "detail", allowEmpty: true)
        guard let step, let reason, let detail else { return nil }
        return DeliveryFailed(system: step.system, attempt: step.attempt, reason: reason, detail: detail)
    }

    var jsonFields: [(String, JSONValue?)] {
        [("system", .string(system)), ("attempt", .integer(attempt)), ("reason", .string(reason.rawValue)), ("detail", .string(detail))]
    }
}

public struct ReceiptAccepted: Sendable, Hashable, EventData {
    public var system: String

    public init(system: String) { self.system = system }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> ReceiptAccepted? {
        reader.identifier(fields, "system").map(ReceiptAccepted.init)
    }

    var jsonFields: [(String, JSONValue?)] { [("system", .string(system))] }
}

/// An import rule of a receiving system. Open: systems name their own rules; these four
/// are the ones the contract names.
public struct ReceiptRule: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }

    public static let buyerTaxIdMismatch = ReceiptRule(rawValue: "buyer_tax_id_mismatch")
    public static let duplicate = ReceiptRule(rawValue: "duplicate")
    public static let parseError = ReceiptRule(rawValue: "parse_error")
    public static let totalsInconsistent = ReceiptRule(rawValue: "totals_inconsistent")
    public static let known: [ReceiptRule] = [.buyerTaxIdMismatch, .duplicate, .parseError, .totalsInconsistent]

    public var isKnown: Bool { ReceiptRule.known.contains(self) }
    public var description: String { rawValue }
}

public struct ReceiptRejected: Sendable, Hashable, EventData {
    public var system: String
    public var rule: ReceiptRule
    public var detail: String

    public init(system: String, rule: ReceiptRule, detail: String) {
        self.system = system
        self.rule = rule
        self.detail = detail
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> ReceiptRejected? {
        let system = reader.identifier(fields, "system")
        let rule = reader.text(fields, "rule")
        let detail = reader.text(fields, "detail", allowEmpty: true)
        guard let system, let rule, let detail else { return nil }
        return ReceiptRejected(system: system, rule: ReceiptRule(rawValue: rule), detail: detail)
    }

    var jsonFields: [(String, JSONValue?)] { [("system", .string(system)), ("rule", .string(rule.rawValue)), ("detail", .string(detail))] }
}

public struct ReviewApproved: Sendable, Hashable, EventData {
    public var system: String
    public var by: String

    public init(system: String, by: String) {
        self.system = system
        self.by = by
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> ReviewApproved? {
        let system = reader.identifier(fields, "system")
        let by = reader.text(fields, "by")
        guard let system, let by else { return nil }
        return ReviewApproved(system: system, by: by)
    }

    var jsonFields: [(String, JSONValue?)] { [("system", .string(system)), ("by", .string(by))] }
}

public struct ReviewRejected: Sendable, Hashable, EventData {
    public var system: String
    public var by: String
    public var reason: String

    public init(system: String, by: String, reason: String) {
        self.system = system
        self.by = by
        self.reason = reason
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> ReviewRejected? {
        let approval = ReviewApproved.decode(fields, &reader)
        let reason = reader.text(fields, "reason")
        guard let approval, let reason else { return nil }
        return ReviewRejected(system: approval.system, by: approval.by, reason: reason)
    }

    var jsonFields: [(String, JSONValue?)] { [("system", .string(system)), ("by", .string(by)), ("reason", .string(reason))] }
}

// MARK: - Verification

public enum VerificationResult: String, Sendable, Hashable, CaseIterable {
    case authentic
    case notFound = "not_found"
    case mismatch
    case voided
    case redLettered = "red_lettered"
    case quotaExceeded = "quota_exceeded"
    case tooOld = "too_old"
}

public struct VerificationChecked: Sendable, Hashable, EventData {
    public var provider: String
    public var result: VerificationResult
    public var detail: String?

    public init(provider: String, result: VerificationResult, detail: String? = nil) {
        self.provider = provider
        self.result = result
        self.detail = detail
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> VerificationChecked? {
        let provider = reader.text(fields, "provider")
        let result = reader.required(fields, "result", Field.choice(VerificationResult.self), expected: Field.choiceExpected(VerificationResult.self))
        let detail = reader.optionalText(fields, "detail")
        guard let provider, let result, let detail else { return nil }
        return VerificationChecked(provider: provider, result: result, detail: detail)
    }

    var jsonFields: [(String, JSONValue?)] { [("provider", .string(provider)), ("result", .string(result.rawValue)), ("detail", detail.json)] }
}

extension Field {
    /// A string of ASCII digits of one of the given lengths (invoice numbers and codes).
    static func digits(counts: Set<Int>) -> (JSONNode) -> Result<String, FieldMismatch> {
        { node in
            if case .string(let text) = node.value, counts.contains(text.utf8.count), text.utf8.allSatisfy(isASCIIDigit) { return .success(text) }
            let expected = "a string of " + counts.sorted().map(String.init).joined(separator: " or ") + " digits"
            guard case .string(let text) = node.value else { return .failure(FieldMismatch(expected: expected, got: node.value.kindDescription)) }
            return .failure(FieldMismatch(expected: expected, got: quote(text)))
        }
    }
}
