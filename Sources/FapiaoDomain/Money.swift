// Exact money, decimals and tax rates. No floating point anywhere: an invoice that is off by
// one fen is a finding, so the arithmetic that finds it must be exact.
//
// Rounding is half away from zero (the 四舍五入 of Chinese invoicing): 31.245 → 31.25 and
// -31.245 → -31.25, so a red-letter reversal mirrors its original to the fen.

/// An amount in fen (0.01 yuan). Amounts arrive as decimal strings with at most two
/// decimals (`"520.75"`, `"-31.25"`, `"100"`); JSON numbers are refused by the event
/// decoders because a binary float cannot carry 0.1 exactly.
public struct Money: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var fen: Int64

    public init(fen: Int64) { self.fen = fen }

    public static let zero = Money(fen: 0)

    /// Amounts above this many yuan digits are refused: ten trillion yuan is far beyond any
    /// invoice, and the bound keeps every sum of a 2,000-line invoice far from overflow.
    public static let yuanDigitsMax = 13

    public static func parse(_ text: String) -> Result<Money, AmountProblem> {
        switch DecimalText.parse(text, fractionDigitsMax: 2, integerDigitsMax: yuanDigitsMax) {
        case .failure(let problem): return .failure(problem)
        case .success(let decimal):
            let scaled = decimal.significand * power10(2 - decimal.scale)
            return .success(Money(fen: Int64(scaled)))
        }
    }

    /// Always two decimals: `520.75`, `-31.25`, `100.00`.
    public var description: String {
        let magnitude = fen.magnitude
        let sign = fen < 0 ? "-" : ""
        let cents = magnitude % 100
        return sign + String(magnitude / 100) + "." + (cents < 10 ? "0" : "") + String(cents)
    }

    public static func < (lhs: Money, rhs: Money) -> Bool { lhs.fen < rhs.fen }
    public static func + (lhs: Money, rhs: Money) -> Money { Money(fen: lhs.fen + rhs.fen) }
    public static func - (lhs: Money, rhs: Money) -> Money { Money(fen: lhs.fen - rhs.fen) }
    public static prefix func - (amount: Money) -> Money { Money(fen: -amount.fen) }

    /// This amount times a rate, exactly, as a decimal with scale 2 + the rate's scale.
    public func times(_ rate: ExactDecimal) -> ExactDecimal {
        ExactDecimal(significand: Int128(fen) * rate.significand, scale: 2 + rate.scale)
    }
}

/// Why a decimal string was refused.
public enum AmountProblem: Error, Sendable, Hashable, CustomStringConvertible {
    case empty
    case exponent
    case tooManyDecimals(Int, max: Int)
    case tooManyDigits(Int, max: Int)
    case leadingZero
    case unexpectedCharacter(Character)
    case missingDigits
    case outOfRange(String)

    public var description: String {
        switch self {
        case .empty: "empty"
        case .exponent: "exponent notation is not accepted"
        case .tooManyDecimals(let count, let max): "\(count) decimal places, at most \(max) allowed"
        case .tooManyDigits(let count, let max): "\(count) integer digits, at most \(max) allowed"
        case .leadingZero: "leading zeros are not accepted"
        case .unexpectedCharacter(let character): "unexpected character '\(character)'"
        case .missingDigits: "digits are required on both sides of '.'"
        case .outOfRange(let rule): "out of range: \(rule)"
        }
    }
}

/// An exact decimal: `significand × 10^-scale`. Used for quantities and unit prices (up to
/// 13 decimal places), rates, and exact products before rounding. Int128 holds the product
/// of two 19-digit significands, which is why each input is bounded to 19 digits.
public struct ExactDecimal: Sendable, Hashable, CustomStringConvertible {
    public let significand: Int128
    public let scale: Int

    public static let quantityDecimalsMax = 13
    public static let digitsMax = 19

    /// Trailing fractional zeros are removed, so 1.50 and 1.5 are the same value.
    public init(significand: Int128, scale: Int) {
        var significand = significand
        var scale = scale
        while scale > 0, significand % 10 == 0 {
            significand /= 10
            scale -= 1
        }
        self.significand = significand
        self.scale = scale
    }

    /// Parses a plain decimal such as `"3"`, `"-1.5"` or `"0.1234567890123"`.
    public static func parse(_ text: String, decimalsMax: Int = quantityDecimalsMax) -> Result<ExactDecimal, AmountProblem> {
        DecimalText.parse(text, fractionDigitsMax: decimalsMax, integerDigitsMax: digitsMax).flatMap { decimal in
            let digits = decimalDigits(decimal.significand.magnitude)
            guard digits <= digitsMax else { return .failure(.tooManyDigits(digits, max: digitsMax)) }
            return .success(decimal)
        }
    }

    public static func * (lhs: ExactDecimal, rhs: ExactDecimal) -> ExactDecimal {
        ExactDecimal(significand: lhs.significand * rhs.significand, scale: lhs.scale + rhs.scale)
    }

    /// Rounded half away from zero to whole fen.
    public var roundedToFen: Money {
        Money(fen: Int64(roundHalfAwayFromZero(significand, droppingDigits: scale - 2)))
    }

    /// The value in units of 10^-scale, for sums at a common scale.
    func significand(atScale target: Int) -> Int128 {
        precondition(target >= scale, "rescaling down would lose digits")
        return significand * power10(target - scale)
    }

    /// Whether |self − amount| ≤ tolerance, exactly, without overflowing even when self has
    /// 26 decimal places: the difference is split into whole fen and a remainder below one fen.
    public func isWithin(_ tolerance: Money, of amount: Money) -> Bool {
        let drop = scale - 2
        guard drop > 0 else {
            let fen = significand * power10(-drop)
            return (fen - Int128(amount.fen)).magnitude <= tolerance.fen.magnitude
        }
        let unit = power10(drop)
        let (wholeFen, remainder) = significand.quotientAndRemainder(dividingBy: unit)
        let fenDifference = wholeFen - Int128(amount.fen)
        guard fenDifference.magnitude <= UInt128(tolerance.fen.magnitude) + 1 else { return false }
        let difference = fenDifference * unit + remainder
        return difference.magnitude <= UInt128(tolerance.fen.magnitude) * UInt128(unit)
    }

    public var description: String {
        let digits = String(significand.magnitude)
        let sign = significand < 0 ? "-" : ""
        guard scale > 0 else { return sign + digits }
        let padded = String(repeating: "0", count: max(0, scale + 1 - digits.count)) + digits
        let split = padded.index(padded.endIndex, offsetBy: -scale)
        return sign + padded[..<split] + "." + padded[split...]
    }
}

/// 10^exponent as Int128, for exponents 0...38.
/// How many decimal digits `value` has (one for zero): what `String(value).count` counts,
/// without making the string (an invoice's every quantity and unit price is counted).
func decimalDigits(_ value: UInt128) -> Int {
    // 64-bit division where it fits: a 128-bit one is a library call.
    if let small = UInt64(exactly: value) { return countDigits(small) }
    return countDigits(value)
}

private func countDigits<T: FixedWidthInteger & UnsignedInteger>(_ value: T) -> Int {
    var rest = value
    var digits = 1
    while rest >= 10 {
        rest /= 10
        digits += 1
    }
    return digits
}

func power10(_ exponent: Int) -> Int128 {
    precondition((0...38).contains(exponent), "10^\(exponent) does not fit in Int128")
    var result: Int128 = 1
    for _ in 0..<exponent { result *= 10 }
    return result
}

/// Drops `count` trailing decimal digits, rounding half away from zero.
func roundHalfAwayFromZero(_ value: Int128, droppingDigits count: Int) -> Int128 {
    guard count > 0 else { return value * power10(-count) }
    let unit = power10(count)
    let (quotient, remainder) = value.quotientAndRemainder(dividingBy: unit)
    guard remainder.magnitude * 2 >= unit.magnitude else { return quotient }
    return value < 0 ? quotient - 1 : quotient + 1
}

/// The grammar shared by amounts and quantities: `-?(0|[1-9][0-9]*)(\.[0-9]+)?`.
enum DecimalText {
    static func parse(_ text: String, fractionDigitsMax: Int, integerDigitsMax: Int) -> Result<ExactDecimal, AmountProblem> {
        // Read in place: amounts, quantities and rates are parsed for every line of every
        // invoice a projection folds, and a copy of the bytes was an allocation each.
        var utf8 = text
        return utf8.withUTF8 { all in
            parse(UnsafeRawBufferPointer(all)[...], text: text, fractionDigitsMax: fractionDigitsMax, integerDigitsMax: integerDigitsMax)
        }
    }

    private static func parse(_ all: Slice<UnsafeRawBufferPointer>, text: String, fractionDigitsMax: Int, integerDigitsMax: Int) -> Result<ExactDecimal, AmountProblem> {
        var bytes = all
        guard !bytes.isEmpty else { return .failure(.empty) }
        let negative = bytes.first == UInt8(ascii: "-")
        if negative { bytes = bytes.dropFirst() }
        let integer = bytes.prefix { $0 != UInt8(ascii: ".") }
        let hasPoint = integer.count < bytes.count
        let fraction = bytes.dropFirst(integer.count + 1)
        if let problem = problem(integer: integer, fraction: fraction, hasPoint: hasPoint) {
            guard case .unexpectedCharacter = problem else { return .failure(problem) }
            return .failure(.unexpectedCharacter(firstUnexpectedCharacter(text)))
        }
        guard integer.count <= integerDigitsMax else { return .failure(.tooManyDigits(integer.count, max: integerDigitsMax)) }
        guard fraction.count <= fractionDigitsMax else { return .failure(.tooManyDecimals(fraction.count, max: fractionDigitsMax)) }
        var significand: Int128 = 0
        for byte in integer { significand = significand * 10 + Int128(byte - UInt8(ascii: "0")) }
        for byte in fraction { significand = significand * 10 + Int128(byte - UInt8(ascii: "0")) }
        return .success(ExactDecimal(significand: negative ? -significand : significand, scale: fraction.count))
    }

    /// The character to name in a problem: bytes alone cannot name a full-width digit.
    private static func firstUnexpectedCharacter(_ text: String) -> Character {
        let body = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        return body.first { !($0.isASCII && ($0.isWholeNumber || $0 == ".")) } ?? "?"
    }

    private static func problem(integer: Slice<UnsafeRawBufferPointer>, fraction: Slice<UnsafeRawBufferPointer>, hasPoint: Bool) -> AmountProblem? {
        for byte in integer where !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
            if byte | 0x20 == UInt8(ascii: "e") { return .exponent }
            return .unexpectedCharacter(Character(Unicode.Scalar(byte)))
        }
        for byte in fraction where !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
            if byte | 0x20 == UInt8(ascii: "e") { return .exponent }
            return .unexpectedCharacter(Character(Unicode.Scalar(byte)))
        }
        if integer.isEmpty || (hasPoint && fraction.isEmpty) { return .missingDigits }
        if integer.count > 1 && integer.first == UInt8(ascii: "0") { return .leadingZero }
        return nil
    }
}

// MARK: - Tax rates

/// A VAT rate as the fraction it is (`0.06`), accepted as `"0.06"` or `"6%"` and written as
/// `"0.06"`. Exempt (免税) and non-taxable (不征税) lines are not a 0% number: they arrive as
/// `"exempt"` and `"non_taxable"` and carry no rate, so the rule checks can tell them apart.
public struct TaxRate: Sendable, Hashable, CustomStringConvertible {
    public enum Treatment: String, Sendable, Hashable, CaseIterable {
        case taxable
        case exempt
        case nonTaxable = "non_taxable"
    }

    public let treatment: Treatment
    /// The rate as a fraction; zero for exempt and non-taxable lines.
    public let fraction: ExactDecimal

    /// More precision than any rate in use (1.5% is 0.015); bounds the products.
    public static let decimalsMax = 6

    public init(fraction: ExactDecimal) {
        treatment = .taxable
        self.fraction = fraction
    }

    public init(treatment: Treatment) {
        self.treatment = treatment
        fraction = ExactDecimal(significand: 0, scale: 0)
    }

    /// A taxable rate from a percentage given in tenths of a percent: `percent(tenths: 60)` is 6%.
    public static func percent(tenths: Int) -> TaxRate {
        TaxRate(fraction: ExactDecimal(significand: Int128(tenths), scale: 3))
    }

    public static func parse(_ text: String) -> Result<TaxRate, AmountProblem> {
        if let treatment = Treatment(rawValue: text), treatment != .taxable { return .success(TaxRate(treatment: treatment)) }
        let isPercent = text.hasSuffix("%")
        let digits = isPercent ? String(text.dropLast()) : text
        let decimalsMax = isPercent ? decimalsMax - 2 : decimalsMax
        return DecimalText.parse(digits, fractionDigitsMax: decimalsMax, integerDigitsMax: 3).flatMap { value in
            let fraction = isPercent ? ExactDecimal(significand: value.significand, scale: value.scale + 2) : value
            guard fraction.significand >= 0 else { return .failure(.outOfRange("a rate is not negative")) }
            guard fraction.significand <= power10(fraction.scale) else { return .failure(.outOfRange("a rate is at most 100%")) }
            return .success(TaxRate(fraction: fraction))
        }
    }

    /// `"0.06"`, or the treatment's name.
    public var description: String {
        treatment == .taxable ? fraction.description : treatment.rawValue
    }

    /// `6%`, `1.5%`: how people read rates.
    public var percentText: String {
        guard treatment == .taxable else { return treatment.rawValue }
        return ExactDecimal(significand: fraction.significand * 100, scale: fraction.scale).description + "%"
    }
}
