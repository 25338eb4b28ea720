// Invoice keys: the canonical stream name of an invoice, how to read what people type, and
// how to find the key they meant when what they typed is not in the ledger.
//
// Canonical forms (the only ones stored): a digital invoice's 20-digit number
// (`24112000000015301234`), or a legacy invoice's `CODE-NUMBER` with a 10- or 12-digit code
// and an 8-digit number (`011001900111-12345678`). Lookups normalise; storage never does.

public enum InvoiceKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// A digital invoice (数电票): 20 digits, nationally unique on its own.
    case digital(number: String)
    /// A legacy invoice: 10- or 12-digit code and 8-digit number, unique only together.
    case legacy(code: String, number: String)

    public static let digitalNumberDigits = 20
    public static let legacyCodeDigits: Set<Int> = [10, 12]
    public static let legacyNumberDigits = 8

    /// The canonical text: the stream subject and the ledger key.
    public var description: String {
        switch self {
        case .digital(let number): number
        case .legacy(let code, let number): code + "-" + number
        }
    }

    /// All digits, code before number: what near-miss signatures are computed over, and
    /// what `KeyDifference` positions (1-based) count.
    public var digits: String {
        switch self {
        case .digital(let number): number
        case .legacy(let code, let number): code + number
        }
    }

    public var isDigital: Bool {
        if case .digital = self { return true }
        return false
    }

    public static func < (lhs: InvoiceKey, rhs: InvoiceKey) -> Bool { lhs.description < rhs.description }

    /// Accepts only the canonical text, as subjects must be. A 20-digit text that starts
    /// with `0` is not canonical: no digital number has a year 00-09, so it is a 12-digit
    /// code and an 8-digit number written without their hyphen.
    public init?(canonical text: String) {
        let utf8 = text.utf8
        guard let hyphen = utf8.firstIndex(of: UInt8(ascii: "-")) else {
            guard utf8.count == InvoiceKey.digitalNumberDigits, utf8.first != UInt8(ascii: "0"), utf8.allSatisfy(isASCIIDigit) else { return nil }
            self = .digital(number: text)
            return
        }
        let code = utf8[..<hyphen]
        let number = utf8[utf8.index(after: hyphen)...]
        guard InvoiceKey.legacyCodeDigits.contains(code.count), number.count == InvoiceKey.legacyNumberDigits,
              code.allSatisfy(isASCIIDigit), number.allSatisfy(isASCIIDigit) else { return nil }
        self = .legacy(code: String(text[..<hyphen]), number: String(text[number.startIndex...]))
    }

    /// Reads a key as people type it: surrounding and inner spaces, full-width digits
    /// (１２３), full-width or typographic hyphens, `/` as a separator, and a legacy pair in
    /// either order (the 8-digit half is the number). Says precisely what is wrong otherwise.
    public static func parse(_ typed: String) -> Result<InvoiceKey, KeyProblem> {
        TypedKey.read(typed).flatMap { $0.resolve() }
    }
}

func isASCIIDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

/// Why typed text is not an invoice key.
public enum KeyProblem: Error, Sendable, Hashable, CustomStringConvertible {
    case empty
    case unexpectedCharacter(Character, position: Int)
    case digitCount(Int)
    case codeDigitCount(Int)
    case numberDigitCount(Int)

    public var description: String {
        switch self {
        case .empty:
            "no digits: an invoice key is a 20-digit number or a legacy code-number pair"
        case .unexpectedCharacter(let character, let position):
            "character \(position) '\(character)' is not a digit, space or hyphen"
        case .digitCount(let count) where count == 18:
            "\(count) digits: a digital invoice number has 20; a legacy key is a 10- or 12-digit code and an 8-digit number, separated by a hyphen"
        case .digitCount(let count):
            "\(count) digits: a digital invoice number has 20"
        case .codeDigitCount(let count):
            "the code has \(count) digits: a legacy invoice code has 10 or 12"
        case .numberDigitCount(let count):
            "the number has \(count) digits: a legacy invoice number has 8"
        }
    }
}

// MARK: - Reading typed text

/// Typed text split into digit runs. `groups` are split at every separator; `parts` only at
/// hyphens and slashes, because people also put spaces inside one long number.
struct TypedKey {
    var groups: [String] = []
    var parts: [String] = []
    var usedFullWidth = false

    var allDigits: String { groups.joined() }

    static func read(_ typed: String) -> Result<TypedKey, KeyProblem> {
        var key = TypedKey()
        var group = ""
        var part = ""
        for (offset, character) in typed.enumerated() {
            guard let kind = TypedCharacter(character) else {
                return .failure(.unexpectedCharacter(character, position: offset + 1))
            }
            switch kind {
            case .digit(let digit, let fullWidth):
                group.append(digit)
                part.append(digit)
                key.usedFullWidth = key.usedFullWidth || fullWidth
            case .space:
                key.close(&group, into: \.groups)
            case .hyphen:
                key.close(&group, into: \.groups)
                key.close(&part, into: \.parts)
            }
        }
        key.close(&group, into: \.groups)
        key.close(&part, into: \.parts)
        return key.groups.isEmpty ? .failure(.empty) : .success(key)
    }

    mutating func close(_ run: inout String, into list: WritableKeyPath<TypedKey, [String]>) {
        guard !run.isEmpty else { return }
        self[keyPath: list].append(run)
        run = ""
    }

    func resolve() -> Result<InvoiceKey, KeyProblem> {
        if let pair = TypedKey.legacyPair(groups) ?? TypedKey.legacyPair(parts) { return .success(pair) }
        if parts.count == 2 { return .failure(TypedKey.pairProblem(parts)) }
        let digits = allDigits
        guard digits.count == InvoiceKey.digitalNumberDigits else { return .failure(.digitCount(digits.count)) }
        if digits.first == "0" {
            return .success(.legacy(code: String(digits.prefix(12)), number: String(digits.suffix(8))))
        }
        return .success(.digital(number: digits))
    }

    /// A code and a number in either order.
    static func legacyPair(_ runs: [String]) -> InvoiceKey? {
        guard runs.count == 2 else { return nil }
        let (first, second) = (runs[0], runs[1])
        if InvoiceKey.legacyCodeDigits.contains(first.count) && second.count == InvoiceKey.legacyNumberDigits {
            return .legacy(code: first, number: second)
        }
        if first.count == InvoiceKey.legacyNumberDigits && InvoiceKey.legacyCodeDigits.contains(second.count) {
            return .legacy(code: second, number: first)
        }
        return nil
    }

    /// For a two-part entry that is no pair, blame the longer part (the code) first.
    static func pairProblem(_ parts: [String]) -> KeyProblem {
        let code = parts.max { $0.count < $1.count }!
        let number = parts.min { $0.count < $1.count }!
        if !InvoiceKey.legacyCodeDigits.contains(code.count) { return .codeDigitCount(code.count) }
        return .numberDigitCount(number.count)
    }
}

/// One typed character, classified.
enum TypedCharacter {
    case digit(Character, fullWidth: Bool)
    case space
    case hyphen

    init?(_ character: Character) {
        guard let scalar = character.unicodeScalars.first, character.unicodeScalars.count == 1 else { return nil }
        switch scalar.value {
        case 0x30...0x39: self = .digit(character, fullWidth: false)
        case 0xFF10...0xFF19: self = .digit(Character(Unicode.Scalar(scalar.value - 0xFF10 + 0x30)!), fullWidth: true)
        // space, tab, no-break space, en/em spaces, zero-width space, ideographic space
        case 0x20, 0x09, 0xA0, 0x2000...0x200B, 0x3000: self = .space
        // hyphen-minus, typographic hyphens and dashes, minus sign, small and full-width
        // hyphen-minus, slash and full-width solidus
        case 0x2D, 0x2010...0x2015, 0x2212, 0xFE58, 0xFE63, 0xFF0D, 0x2F, 0xFF0F: self = .hyphen
        default: return nil
        }
    }
}

// MARK: - Decomposition

/// What a digital invoice number says about itself.
public struct DigitalNumberParts: Sendable, Hashable {
    public var year: Int
    /// Digits 3-4: the province-level tax bureau, the first two digits of the GB/T 2260 code.
    public var provinceCode: String
    public var provinceName: String?
    /// Digit 5: the issuing channel.
    public var channel: Character
    /// Digits 6-20.
    public var sequence: String
}

/// The legacy invoice kinds a code's kind digits name.
public enum LegacyCodeKind: String, Sendable, Hashable, CaseIterable {
    case paperSpecial = "paper_special"
    case paperOrdinary = "paper_ordinary"
    case roll
    case electronicOrdinary = "electronic_ordinary"
    case toll
    case electronicSpecial = "electronic_special"
}

/// What a legacy invoice code says about itself.
public struct LegacyCodeParts: Sendable, Hashable {
    /// The 4-digit region (`1100` Beijing).
    public var region: String
    public var year: Int
    /// The digits that carry the kind: digit 8 of a 10-digit code, digits 11-12 of a 12-digit one.
    public var kindDigits: String
    /// Nil when the digits name no kind we know.
    public var kind: LegacyCodeKind?
}

extension InvoiceKey {
    /// The GB/T 2260 province-level codes, which digital numbers use for the tax bureau.
    public static let provinceNames: [String: String] = [
        "11": "Beijing", "12": "Tianjin", "13": "Hebei", "14": "Shanxi", "15": "Inner Mongolia",
        "21": "Liaoning", "22": "Jilin", "23": "Heilongjiang", "31": "Shanghai", "32": "Jiangsu",
        "33": "Zhejiang", "34": "Anhui", "35": "Fujian", "36": "Jiangxi", "37": "Shandong",
        "41": "Henan", "42": "Hubei", "43": "Hunan", "44": "Guangdong", "45": "Guangxi",
        "46": "Hainan", "50": "Chongqing", "51": "Sichuan", "52": "Guizhou", "53": "Yunnan",
        "54": "Tibet", "61": "Shaanxi", "62": "Gansu", "63": "Qinghai", "64": "Ningxia",
        "65": "Xinjiang",
    ]

    public var digitalParts: DigitalNumberParts? {
        guard case .digital(let number) = self else { return nil }
        let digits = Array(number)
        let province = String(digits[2..<4])
        return DigitalNumberParts(
            year: 2000 + Int(String(digits[0..<2]))!,
            provinceCode: province,
            provinceName: InvoiceKey.provinceNames[province],
            channel: digits[4],
            sequence: String(digits[5...])
        )
    }

    public var legacyCodeParts: LegacyCodeParts? {
        guard case .legacy(let code, _) = self else { return nil }
        let digits = Array(code)
        if digits.count == 10 {
            let kindDigit = String(digits[7])
            let kind: LegacyCodeKind? = ["1": .paperSpecial, "5": .paperSpecial, "3": .paperOrdinary, "6": .paperOrdinary][kindDigit]
            return LegacyCodeParts(region: String(digits[0..<4]), year: InvoiceKey.fullYear(digits[4..<6]), kindDigits: kindDigit, kind: kind)
        }
        let kindDigits = String(digits[10..<12])
        let kinds: [String: LegacyCodeKind] = [
            "04": .paperOrdinary, "05": .paperOrdinary, "06": .roll, "07": .roll,
            "11": .electronicOrdinary, "12": .toll, "13": .electronicSpecial,
        ]
        return LegacyCodeParts(region: String(digits[1..<5]), year: InvoiceKey.fullYear(digits[5..<7]), kindDigits: kindDigits, kind: kinds[kindDigits])
    }

    /// Two-digit years: legacy codes date from the 1990s on.
    static func fullYear(_ digits: ArraySlice<Character>) -> Int {
        let yy = Int(String(digits))!
        return yy >= 90 ? 1900 + yy : 2000 + yy
    }
}
