import Testing
@testable import FapiaoDomain

struct MoneyTests {
    @Test(arguments: [
        ("520.75", Int64(52_075), "520.75"),
        ("-31.25", -3_125, "-31.25"),
        ("100", 10_000, "100.00"),
        ("0.5", 50, "0.50"),
        ("0", 0, "0.00"),
        ("-0.01", -1, "-0.01"),
        ("9999999999999.99", 999_999_999_999_999, "9999999999999.99"),
    ])
    func parsesAndFormats(text: String, fen: Int64, formatted: String) throws {
        let money = try Money.parse(text).get()
        #expect(money.fen == fen)
        #expect(money.description == formatted)
        #expect(try Money.parse(money.description).get() == money)
    }

    @Test(arguments: [
        ("52.755", AmountProblem.tooManyDecimals(3, max: 2)),
        ("1e3", .exponent),
        ("5.2E1", .exponent),
        ("", .empty),
        ("-", .missingDigits),
        (".5", .missingDigits),
        ("5.", .missingDigits),
        ("007.50", .leadingZero),
        ("+5", .unexpectedCharacter("+")),
        ("1,000.00", .unexpectedCharacter(",")),
        (" 5", .unexpectedCharacter(" ")),
        ("５", .unexpectedCharacter("５")),
        ("5-3", .unexpectedCharacter("-")),
        ("10000000000000", .tooManyDigits(14, max: 13)),
    ])
    func refusesWithReason(text: String, problem: AmountProblem) {
        #expect(Money.parse(text) == .failure(problem))
    }

    /// 520.75 × 6% = 31.245 → 31.25; the negative mirrors it (half away from zero).
    @Test(arguments: [
        ("520.75", "0.06", "31.25"),
        ("-520.75", "0.06", "-31.25"),
        ("100.00", "0.13", "13.00"),
        ("0.08", "0.06", "0.00"),
        ("0.09", "0.06", "0.01"),
        ("33.33", "0.015", "0.50"),
        ("-33.33", "0.015", "-0.50"),
        ("1000.01", "0.09", "90.00"),
    ])
    func roundsHalfAwayFromZero(amount: String, rate: String, tax: String) throws {
        let product = try Money.parse(amount).get().times(TaxRate.parse(rate).get().fraction)
        #expect(product.roundedToFen.description == tax)
    }

    @Test func exactDecimalsCarryThirteenPlaces() throws {
        let quantity = try ExactDecimal.parse("3.0000000000001").get()
        let price = try ExactDecimal.parse("0.1234567890123").get()
        #expect(quantity.scale == 13)
        let product = quantity * price
        #expect(product.scale == 26)
        #expect(product.description == "0.37037036703691234567890123")
        #expect(product.roundedToFen == Money(fen: 37))
        #expect(ExactDecimal.parse("1.50").map(\.description) == .success("1.5"))
        #expect(ExactDecimal.parse("0.12345678901234") == .failure(.tooManyDecimals(14, max: 13)))
        #expect(ExactDecimal.parse("12345678901234567890") == .failure(.tooManyDigits(20, max: 19)))
        // Significant digits, integer and fraction together (leading zeros do not count).
        #expect(ExactDecimal.parse("1234567.1234567890123") == .failure(.tooManyDigits(20, max: 19)))
        #expect(ExactDecimal.parse("123456.1234567890123").map(\.description) == .success("123456.1234567890123"))
        #expect(ExactDecimal.parse("0.0000000000001").map(\.description) == .success("0.0000000000001"))
        #expect(decimalDigits(0) == 1)
        #expect(decimalDigits(9) == 1)
        #expect(decimalDigits(10) == 2)
        #expect(decimalDigits(UInt128(UInt64.max)) == 20)
        #expect(decimalDigits(UInt128(UInt64.max) + 1) == 20)
        #expect(decimalDigits(UInt128.max) == String(UInt128.max).count)
    }

    /// The tolerance comparison is exact even at 26 decimal places.
    @Test(arguments: [
        ("1.00", "100.00", "100.01", 1, true),
        ("1.00", "100.00", "100.02", 1, false),
        ("1.00", "100.00", "99.99", 1, true),
        ("1.00", "100.00", "99.98", 1, false),
        ("3", "33.3366666666666", "100.00", 1, true),
        ("3", "33.3366666666667", "100.00", 1, false),
        ("-1", "520.75", "-520.74", 1, true),
        ("-1", "520.75", "-520.73", 1, false),
        ("0.0000000000001", "0.0000000000001", "0.01", 1, true),
        ("99999999.9999999", "999999.999999999999", "99999999999999.89", 1, true),
        ("99999999.9999999", "999999.999999999999", "99999999999999.91", 1, false),
    ])
    func toleranceIsExact(quantity: String, price: String, amount: String, toleranceFen: Int64, within: Bool) throws {
        let product = try ExactDecimal.parse(quantity).get() * ExactDecimal.parse(price).get()
        let money = Money(fen: try DecimalText.parse(amount, fractionDigitsMax: 2, integerDigitsMax: 19).get().significand(atScale: 2).fenValue)
        #expect(product.isWithin(Money(fen: toleranceFen), of: money) == within)
    }

    @Test(arguments: [
        ("0.06", "0.06", "6%"),
        ("6%", "0.06", "6%"),
        ("13%", "0.13", "13%"),
        ("1.5%", "0.015", "1.5%"),
        ("0.015", "0.015", "1.5%"),
        ("0", "0", "0%"),
        ("0%", "0", "0%"),
        ("exempt", "exempt", "exempt"),
        ("non_taxable", "non_taxable", "non_taxable"),
    ])
    func parsesRates(text: String, written: String, percent: String) throws {
        let rate = try TaxRate.parse(text).get()
        #expect(rate.description == written)
        #expect(rate.percentText == percent)
        #expect(try TaxRate.parse(rate.description).get() == rate)
    }

    @Test(arguments: ["-0.06", "106%", "1.5", "6 %", "six", "0.0000001", "taxable", ""])
    func refusesBadRates(text: String) {
        #expect(throws: AmountProblem.self) { try TaxRate.parse(text).get() }
    }

    @Test func ratesCompareByValue() throws {
        #expect(try TaxRate.parse("6%").get() == TaxRate.percent(tenths: 60))
        #expect(try TaxRate.parse("0.060").get() == TaxRate.parse("0.06").get())
        #expect(try TaxRate.parse("0.06").get() != TaxRate.parse("0.6").get())
    }
}

extension Int128 {
    var fenValue: Int64 { Int64(self) }
}
