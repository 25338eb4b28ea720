// Versioned rule parameters and the checks of an issued invoice against them.
//
// Every parameter is data with an effective-from date, never a constant in a check: the
// real rules changed (rates 17% → 16% → 13%, a 1-year verification look-back became 5) and
// will change again. Findings are flags, never refusals: an issued invoice is a fact that
// happened upstream, so it is recorded even when its tax is off by a yuan, and the finding
// travels with it.

/// The rule parameters in force from one date on.
public struct RuleTable: Sendable, Hashable {
    public var version: String
    /// The CST date from which these rules apply.
    public var effectiveFrom: CalendarDate
    /// |quantity × unit price − amount| per line (vendor tolerance).
    public var lineAmountToleranceFen: Int64
    /// |amount × rate − tax| per line (vendor tolerance).
    public var lineTaxToleranceFen: Int64
    /// |Σ(amount × rate) − Σ tax| per invoice (vendor tolerance).
    public var invoiceTaxToleranceFen: Int64
    /// Rates an invoice may carry today.
    public var ratesInUse: [TaxRate]
    /// Old rates that appear only on red-letter reversals of old invoices.
    public var historicRates: [TaxRate]
    /// Kinds that may be voided at all (legacy paper only), and only in the month of issue.
    public var voidableKinds: Set<InvoiceKind>
    /// An unconfirmed red-letter confirmation form lapses after this long.
    public var redLetterLapseSeconds: Int64
    /// Verification platform quota per invoice per CST day.
    public var verificationChecksPerDayMax: Int
    /// The verification platform knows invoices this many years back.
    public var verificationLookBackYears: Int
    /// A "not found" this soon after issue is ingestion lag, not evidence of a fake.
    public var verificationIngestionWindowSeconds: Int64

    public init(version: String, effectiveFrom: CalendarDate, lineAmountToleranceFen: Int64, lineTaxToleranceFen: Int64,
                invoiceTaxToleranceFen: Int64, ratesInUse: [TaxRate], historicRates: [TaxRate], voidableKinds: Set<InvoiceKind>,
                redLetterLapseSeconds: Int64, verificationChecksPerDayMax: Int, verificationLookBackYears: Int,
                verificationIngestionWindowSeconds: Int64) {
        self.version = version
        self.effectiveFrom = effectiveFrom
        self.lineAmountToleranceFen = lineAmountToleranceFen
        self.lineTaxToleranceFen = lineTaxToleranceFen
        self.invoiceTaxToleranceFen = invoiceTaxToleranceFen
        self.ratesInUse = ratesInUse
        self.historicRates = historicRates
        self.voidableKinds = voidableKinds
        self.redLetterLapseSeconds = redLetterLapseSeconds
        self.verificationChecksPerDayMax = verificationChecksPerDayMax
        self.verificationLookBackYears = verificationLookBackYears
        self.verificationIngestionWindowSeconds = verificationIngestionWindowSeconds
    }

    /// The rules as domain.md states them today.
    public static let current = RuleTable(
        version: "2024-digital",
        effectiveFrom: CalendarDate(year: 2024, month: 12, day: 1)!,
        lineAmountToleranceFen: 1,
        lineTaxToleranceFen: 6,
        invoiceTaxToleranceFen: 127,
        ratesInUse: [130, 90, 60, 0, 30, 50, 10, 15, 5].map(TaxRate.percent(tenths:)),
        historicRates: [170, 160, 110, 100].map(TaxRate.percent(tenths:)),
        voidableKinds: [.vatSpecial, .vatOrdinary],
        redLetterLapseSeconds: 72 * 3600,
        verificationChecksPerDayMax: 5,
        verificationLookBackYears: 5,
        verificationIngestionWindowSeconds: 24 * 3600
    )

    /// The older rules: a 1-year verification look-back. (The effective date of the change
    /// to 5 years is a placeholder to confirm; the point is that it is data.)
    public static let older: RuleTable = {
        var table = RuleTable.current
        table.version = "2019-rates"
        table.effectiveFrom = CalendarDate(year: 2019, month: 4, day: 1)!
        table.verificationLookBackYears = 1
        return table
    }()

    /// Whether a taxable rate is in use (exempt and non-taxable lines carry no rate).
    public func isInUse(_ rate: TaxRate) -> Bool { rate.treatment != .taxable || ratesInUse.contains(rate) }
    public func isHistoric(_ rate: TaxRate) -> Bool { historicRates.contains(rate) }

    /// Whether an invoice issued at `issuedAtMicros` is older than the verification
    /// look-back on the CST day of `atMicros` (issued 2019-03-05 is still in a 5-year window
    /// on 2024-03-05 and out of it on 2024-03-06).
    public func isBeyondLookBack(issuedAtMicros: Int64, atMicros: Int64) -> Bool {
        let issued = CalendarDate.cst(micros: issuedAtMicros)
        let now = CalendarDate.cst(micros: atMicros)
        let anniversary = (issued.year + verificationLookBackYears, issued.month, issued.day)
        return (now.year, now.month, now.day) > anniversary
    }
}

/// Rule tables by effective date.
public struct RuleBook: Sendable, Hashable {
    public private(set) var tables: [RuleTable]

    /// Tables are kept sorted by `effectiveFrom`; at least one is required.
    public init(tables: [RuleTable]) {
        precondition(!tables.isEmpty, "a rule book needs at least one table")
        self.tables = tables.sorted { $0.effectiveFrom < $1.effectiveFrom }
    }

    public static let standard = RuleBook(tables: [.older, .current])

    /// The table in force on a CST date; the earliest table before any effective date.
    public func table(on date: CalendarDate) -> RuleTable {
        tables.last { $0.effectiveFrom <= date } ?? tables[0]
    }

    public func table(atMicros micros: Int64) -> RuleTable { table(on: .cst(micros: micros)) }
}

// MARK: - Findings

public enum RuleCode: String, Sendable, Hashable, CaseIterable {
    case noLines = "no_lines"
    case lineAmountMismatch = "line_amount_mismatch"
    case lineTaxMismatch = "line_tax_mismatch"
    case untaxedLineWithTax = "untaxed_line_with_tax"
    case invoiceTaxMismatch = "invoice_tax_mismatch"
    case totalAmountMismatch = "total_amount_mismatch"
    case totalTaxMismatch = "total_tax_mismatch"
    case totalWithTaxMismatch = "total_with_tax_mismatch"
    case rateNotInUse = "rate_not_in_use"
    case historicRate = "historic_rate"
    case sellerTaxIdInvalid = "seller_tax_id_invalid"
    case buyerTaxIdInvalid = "buyer_tax_id_invalid"
    case numberDoesNotFitKind = "number_does_not_fit_kind"
    case keyMismatch = "key_mismatch"
}

/// One rule an issued invoice breaks: which line (nil for the whole invoice), what the rule
/// expected and what the invoice says.
public struct RuleFinding: Sendable, Hashable, CustomStringConvertible {
    public var lineIndex: Int?
    public var rule: RuleCode
    public var expected: String
    public var actual: String

    public init(lineIndex: Int?, rule: RuleCode, expected: String, actual: String) {
        self.lineIndex = lineIndex
        self.rule = rule
        self.expected = expected
        self.actual = actual
    }

    public var description: String {
        (lineIndex.map { "line \($0): " } ?? "") + "\(rule.rawValue): expected \(expected), actual \(actual)"
    }
}

public enum InvoiceChecks {
    /// Every rule the invoice breaks under `rules`. `subject`, when given, is the stream the
    /// event arrived on; its key must be the one the number and code name.
    public static func check(_ issued: InvoiceIssued, rules: RuleTable, subject: InvoiceKey? = nil) -> [RuleFinding] {
        var findings: [RuleFinding] = []
        if issued.lines.isEmpty { findings.append(RuleFinding(lineIndex: nil, rule: .noLines, expected: "at least one line", actual: "none")) }
        for (index, line) in issued.lines.enumerated() {
            findings += checkLine(line, index: index, rules: rules)
        }
        findings += checkTotals(issued, rules: rules)
        findings += checkParties(issued)
        findings += checkIdentity(issued, subject: subject)
        return findings
    }

    static func checkLine(_ line: InvoiceLine, index: Int, rules: RuleTable) -> [RuleFinding] {
        var findings: [RuleFinding] = []
        let extended = line.quantity * line.unitPrice
        if !extended.isWithin(Money(fen: rules.lineAmountToleranceFen), of: line.amount) {
            findings.append(RuleFinding(lineIndex: index, rule: .lineAmountMismatch,
                                        expected: "quantity × unit price = \(extended) (±\(Money(fen: rules.lineAmountToleranceFen)))", actual: line.amount.description))
        }
        findings += checkLineRate(line, index: index, rules: rules)
        return findings
    }

    static func checkLineRate(_ line: InvoiceLine, index: Int, rules: RuleTable) -> [RuleFinding] {
        guard line.taxRate.treatment == .taxable else {
            guard line.tax == .zero else {
                return [RuleFinding(lineIndex: index, rule: .untaxedLineWithTax, expected: "tax 0.00 on a \(line.taxRate) line", actual: line.tax.description)]
            }
            return []
        }
        var findings: [RuleFinding] = []
        if !rules.isInUse(line.taxRate) {
            let rule: RuleCode = rules.isHistoric(line.taxRate) ? .historicRate : .rateNotInUse
            let inUse = rules.ratesInUse.map(\.percentText).joined(separator: ", ")
            findings.append(RuleFinding(lineIndex: index, rule: rule, expected: "one of \(inUse)", actual: line.taxRate.percentText))
        }
        let computed = line.amount.times(line.taxRate.fraction)
        if !computed.isWithin(Money(fen: rules.lineTaxToleranceFen), of: line.tax) {
            findings.append(RuleFinding(lineIndex: index, rule: .lineTaxMismatch,
                                        expected: "amount × rate = \(computed.roundedToFen) (±\(Money(fen: rules.lineTaxToleranceFen)))", actual: line.tax.description))
        }
        return findings
    }

    /// The exact-to-the-fen invariants and the per-invoice tax tolerance.
    static func checkTotals(_ issued: InvoiceIssued, rules: RuleTable) -> [RuleFinding] {
        var findings: [RuleFinding] = []
        let amountSum = issued.lines.reduce(Money.zero) { $0 + $1.amount }
        let taxSum = issued.lines.reduce(Money.zero) { $0 + $1.tax }
        if amountSum != issued.totalAmount {
            findings.append(RuleFinding(lineIndex: nil, rule: .totalAmountMismatch, expected: "Σ line amount = \(amountSum)", actual: issued.totalAmount.description))
        }
        if taxSum != issued.totalTax {
            findings.append(RuleFinding(lineIndex: nil, rule: .totalTaxMismatch, expected: "Σ line tax = \(taxSum)", actual: issued.totalTax.description))
        }
        if issued.totalAmount + issued.totalTax != issued.totalWithTax {
            findings.append(RuleFinding(lineIndex: nil, rule: .totalWithTaxMismatch,
                                        expected: "total amount + total tax = \(issued.totalAmount + issued.totalTax)", actual: issued.totalWithTax.description))
        }
        let computed = exactTaxSum(issued.lines)
        if !computed.isWithin(Money(fen: rules.invoiceTaxToleranceFen), of: taxSum) {
            findings.append(RuleFinding(lineIndex: nil, rule: .invoiceTaxMismatch,
                                        expected: "Σ(amount × rate) = \(computed.roundedToFen) (±\(Money(fen: rules.invoiceTaxToleranceFen)))", actual: taxSum.description))
        }
        return findings
    }

    /// Σ(amount × rate) without rounding any line first: the per-invoice tolerance exists
    /// because per-line rounding drifts, so the reference must be the unrounded sum.
    public static func exactTaxSum(_ lines: [InvoiceLine]) -> ExactDecimal {
        let products = lines.map { $0.amount.times($0.taxRate.fraction) }
        let scale = products.map(\.scale).max() ?? 0
        let sum = products.reduce(Int128(0)) { $0 + $1.significand(atScale: scale) }
        return ExactDecimal(significand: sum, scale: scale)
    }

    static func checkParties(_ issued: InvoiceIssued) -> [RuleFinding] {
        var findings: [RuleFinding] = []
        if let id = issued.seller.taxId, case let result = TaxpayerID.check(id), !result.isAcceptable {
            findings.append(RuleFinding(lineIndex: nil, rule: .sellerTaxIdInvalid, expected: "a valid USCC or legacy taxpayer ID", actual: "\(id): \(result)"))
        }
        if let id = issued.buyer.taxId, case let result = TaxpayerID.check(id), !result.isAcceptable {
            findings.append(RuleFinding(lineIndex: nil, rule: .buyerTaxIdInvalid, expected: "a valid USCC or legacy taxpayer ID", actual: "\(id): \(result)"))
        }
        return findings
    }

    /// Digital kinds carry a 20-digit number and no code; legacy kinds a code and an
    /// 8-digit number (a digital-platform paper invoice may carry both a 20-digit number
    /// and a code).
    static func checkIdentity(_ issued: InvoiceIssued, subject: InvoiceKey?) -> [RuleFinding] {
        var findings: [RuleFinding] = []
        let fits = issued.kind.isDigital
            ? issued.number.utf8.count == 20 && issued.code == nil
            : issued.code != nil || issued.number.utf8.count == 20
        if !fits {
            let expected = issued.kind.isDigital ? "a 20-digit number and no code" : "a code with an 8-digit number"
            findings.append(RuleFinding(lineIndex: nil, rule: .numberDoesNotFitKind, expected: "\(expected) for \(issued.kind.rawValue)",
                                        actual: "number \(issued.number), code \(issued.code ?? "null")"))
        }
        if let subject, let key = issued.key, key != subject, subject != InvoiceKey(canonical: issued.number) {
            findings.append(RuleFinding(lineIndex: nil, rule: .keyMismatch, expected: "the subject \(subject)", actual: key.description))
        }
        return findings
    }
}
