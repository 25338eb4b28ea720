import Testing
@testable import FapiaoDomain

struct RulesTests {
    /// An invoice of quantity-1 lines whose totals are consistent with its lines.
    static func invoice(_ lines: [(amount: String, rate: String, tax: String)]) -> InvoiceIssued {
        var issued = Fixtures.issued()
        issued.lines = lines.map { line in
            let amount = try! Money.parse(line.amount).get()
            return InvoiceLine(name: "x", quantity: ExactDecimal(significand: 1, scale: 0), unitPrice: ExactDecimal(significand: Int128(amount.fen), scale: 2),
                               amount: amount, taxRate: try! TaxRate.parse(line.rate).get(), tax: try! Money.parse(line.tax).get())
        }
        issued.totalAmount = issued.lines.reduce(.zero) { $0 + $1.amount }
        issued.totalTax = issued.lines.reduce(.zero) { $0 + $1.tax }
        issued.totalWithTax = issued.totalAmount + issued.totalTax
        return issued
    }

    static func rules(_ findings: [RuleFinding]) -> [RuleCode] { findings.map(\.rule) }

    @Test func theFixtureIsClean() {
        #expect(InvoiceChecks.check(Fixtures.issued(), rules: .current, subject: .digital(number: "24112000000015301234")).isEmpty)
    }

    /// 520.75 × 6% = 31.245, printed 31.25: exactly right, not a tolerance case.
    @Test func roundingExample() {
        let issued = Self.invoice([("520.75", "6%", "31.25")])
        #expect(InvoiceChecks.check(issued, rules: .current).isEmpty)
        #expect(issued.lines[0].amount.times(issued.lines[0].taxRate.fraction).roundedToFen == Money(fen: 3125))
        let red = Self.invoice([("-520.75", "0.06", "-31.25")])
        #expect(InvoiceChecks.check(red, rules: .current).isEmpty)
    }

    @Test(arguments: [
        ("100.00", "6.06", true), ("100.00", "6.07", false), ("100.00", "5.94", true), ("100.00", "5.93", false),
        ("-100.00", "-6.06", true), ("-100.00", "-6.07", false),
    ])
    func lineTaxTolerance(amount: String, tax: String, ok: Bool) {
        let findings = InvoiceChecks.check(Self.invoice([(amount, "0.06", tax)]), rules: .current)
        #expect(Self.rules(findings).contains(.lineTaxMismatch) == !ok)
    }

    @Test(arguments: [("100.01", true), ("100.02", false), ("99.99", true), ("99.98", false)])
    func lineAmountTolerance(amount: String, ok: Bool) throws {
        var issued = Self.invoice([(amount, "0.06", "6.00")])
        issued.lines[0].unitPrice = try ExactDecimal.parse("50").get()
        issued.lines[0].quantity = try ExactDecimal.parse("2").get()
        let findings = InvoiceChecks.check(issued, rules: .current)
        #expect(Self.rules(findings).contains(.lineAmountMismatch) == !ok)
        if !ok {
            #expect(findings.first { $0.rule == .lineAmountMismatch } == RuleFinding(lineIndex: 0, rule: .lineAmountMismatch, expected: "quantity × unit price = 100 (±0.01)", actual: amount))
        }
    }

    /// Twenty-one lines 0.06 over and one line `last` over: each line within its 0.06, the
    /// invoice 1.26 + last over in all.
    @Test(arguments: [("6.01", true), ("6.02", false)])
    func invoiceTaxTolerance(last: String, ok: Bool) {
        let lines = Array(repeating: ("100.00", "0.06", "6.06"), count: 21) + [("100.00", "0.06", last)]
        let findings = InvoiceChecks.check(Self.invoice(lines), rules: .current)
        #expect(!Self.rules(findings).contains(.lineTaxMismatch))
        #expect(Self.rules(findings).contains(.invoiceTaxMismatch) == !ok)
    }

    @Test func perInvoiceSumIsNotRoundedPerLine() {
        let lines = Array(repeating: ("0.25", "0.06", "0.02"), count: 100)
        // Each line is 0.015 → 0.02 rounded; the exact sum is 1.50, the taxes sum to 2.00.
        #expect(InvoiceChecks.exactTaxSum(Self.invoice(lines).lines).description == "1.5")
        #expect(Self.rules(InvoiceChecks.check(Self.invoice(lines), rules: .current)) == [])
        let more = Array(repeating: ("0.25", "0.06", "0.02"), count: 260)
        #expect(Self.rules(InvoiceChecks.check(Self.invoice(more), rules: .current)) == [.invoiceTaxMismatch])
    }

    @Test func totalsMustAddUpToTheFen() {
        var issued = Fixtures.issued()
        issued.totalAmount = issued.totalAmount + Money(fen: 1)
        #expect(Self.rules(InvoiceChecks.check(issued, rules: .current)) == [.totalAmountMismatch, .totalWithTaxMismatch])
        issued = Fixtures.issued()
        issued.totalTax = issued.totalTax - Money(fen: 1)
        #expect(Self.rules(InvoiceChecks.check(issued, rules: .current)) == [.totalTaxMismatch, .totalWithTaxMismatch])
        issued = Fixtures.issued()
        issued.totalWithTax = issued.totalWithTax + Money(fen: 1)
        let findings = InvoiceChecks.check(issued, rules: .current)
        #expect(findings == [RuleFinding(lineIndex: nil, rule: .totalWithTaxMismatch, expected: "total amount + total tax = 764.00", actual: "764.01")])
    }

    @Test(arguments: [
        ("0.07", RuleCode?.some(.rateNotInUse)), ("17%", .historicRate), ("0.16", .historicRate),
        ("0.13", nil), ("0.015", nil), ("0.005", nil), ("0", nil),
    ])
    func ratesInUse(rate: String, finding: RuleCode?) throws {
        let amount = Money(fen: 10_000)
        let tax = amount.times(try TaxRate.parse(rate).get().fraction).roundedToFen
        let findings = InvoiceChecks.check(Self.invoice([("100.00", rate, tax.description)]), rules: .current)
        #expect(Self.rules(findings) == (finding.map { [$0] } ?? []))
    }

    @Test func untaxedLinesCarryNoTax() {
        #expect(InvoiceChecks.check(Self.invoice([("100.00", "exempt", "0.00")]), rules: .current).isEmpty)
        #expect(Self.rules(InvoiceChecks.check(Self.invoice([("100.00", "non_taxable", "1.00")]), rules: .current)) == [.untaxedLineWithTax])
    }

    @Test func taxIdsAreFlaggedNotRefused() {
        var issued = Fixtures.issued()
        issued.seller.taxId = "91320621MA1MRHG207"
        issued.buyer.taxId = "110108551385082"
        let findings = InvoiceChecks.check(issued, rules: .current)
        #expect(findings == [RuleFinding(lineIndex: nil, rule: .sellerTaxIdInvalid, expected: "a valid USCC or legacy taxpayer ID",
                                         actual: "91320621MA1MRHG207: USCC check character is '7', expected '5'")])
    }

    @Test func numberMustFitKindAndSubject() {
        var issued = Fixtures.issued()
        issued.code = "011001900111"
        #expect(Self.rules(InvoiceChecks.check(issued, rules: .current)) == [.numberDoesNotFitKind])
        issued = Fixtures.issued()
        #expect(Self.rules(InvoiceChecks.check(issued, rules: .current, subject: .digital(number: "24112000000015301235"))) == [.keyMismatch])
        issued.kind = .vatOrdinary
        issued.number = "12345678"
        issued.code = "011001900111"
        #expect(InvoiceChecks.check(issued, rules: .current, subject: .legacy(code: "011001900111", number: "12345678")).isEmpty)
        issued.lines = []
        issued.totalAmount = .zero
        issued.totalTax = .zero
        issued.totalWithTax = .zero
        #expect(Self.rules(InvoiceChecks.check(issued, rules: .current)) == [.noLines])
    }

    @Test(arguments: [
        ("2019-03-05T10:00:00+08:00", "2024-03-05T23:59:59+08:00", false),
        ("2019-03-05T10:00:00+08:00", "2024-03-06T00:00:00+08:00", true),
        ("2019-03-05T00:30:00+08:00", "2024-03-05T16:30:00Z", true),
        ("2020-02-29T10:00:00+08:00", "2025-03-01T00:00:00+08:00", true),
        ("2020-02-29T10:00:00+08:00", "2025-02-28T00:00:00+08:00", false),
    ])
    func verificationLookBack(issued: String, at: String, beyond: Bool) {
        #expect(RuleTable.current.isBeyondLookBack(issuedAtMicros: Fixtures.micros(issued), atMicros: Fixtures.micros(at)) == beyond)
        #expect(RuleTable.older.isBeyondLookBack(issuedAtMicros: Fixtures.micros(issued), atMicros: Fixtures.micros(at)))
    }

    @Test func ruleBookPicksTheTableInForce() throws {
        let book = RuleBook.standard
        #expect(book.table(on: CalendarDate(year: 2024, month: 11, day: 30)!).verificationLookBackYears == 1)
        #expect(book.table(on: CalendarDate(year: 2024, month: 12, day: 1)!).verificationLookBackYears == 5)
        #expect(book.table(on: CalendarDate(year: 2001, month: 1, day: 1)!).version == RuleTable.older.version)
        // 2024-11-30T16:00Z is already December 1st in CST.
        #expect(book.table(atMicros: Fixtures.micros("2024-11-30T16:00:00Z")).version == RuleTable.current.version)
        #expect(RuleTable.current.redLetterLapseSeconds == 72 * 3600)
        #expect(RuleTable.current.verificationChecksPerDayMax == 5)
    }
}
