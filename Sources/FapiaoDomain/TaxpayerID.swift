// Taxpayer IDs: the Unified Social Credit Code (统一社会信用代码, GB 32100-2015) and the
// older 15-, 17- and 20-character tax registration numbers that still appear on invoices.
//
// A failed check is reported, never acted on here: real codes that fail the check exist,
// so for received invoices a failure is a flag recorded with the fact (see `InvoiceChecks`).

/// What checking a taxpayer ID found.
public enum TaxpayerIDCheck: Sendable, Hashable, CustomStringConvertible {
    /// An 18-character USCC whose check character is right.
    case valid
    /// A pre-2015 form (15, 17 or 20 characters); these carry no check character.
    case legacyForm(length: Int)
    /// A well-formed USCC whose 18th character should have been `expected`.
    case checkFailed(expected: Character, found: Character)
    /// Not a taxpayer ID at all; the reason says what is wrong.
    case malformed(String)

    public var description: String {
        switch self {
        case .valid: "valid USCC"
        case .legacyForm(let length): "legacy \(length)-character taxpayer ID (no check character)"
        case .checkFailed(let expected, let found): "USCC check character is '\(found)', expected '\(expected)'"
        case .malformed(let reason): "malformed taxpayer ID: \(reason)"
        }
    }

    /// Valid or legacy: nothing to flag.
    public var isAcceptable: Bool {
        switch self {
        case .valid, .legacyForm: true
        case .checkFailed, .malformed: false
        }
    }
}

public enum TaxpayerID {
    /// The 31 USCC symbols: digits and upper-case letters without I, O, S, V, Z.
    public static let alphabet: [Character] = Array("0123456789ABCDEFGHJKLMNPQRTUWXY")
    /// W[i] = 3^i mod 31 for the first 17 characters.
    public static let weights: [Int] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    public static let usccLength = 18
    public static let legacyLengths: Set<Int> = [15, 17, 20]

    public static func check(_ id: String) -> TaxpayerIDCheck {
        let characters = Array(id)
        if legacyLengths.contains(characters.count) { return checkLegacy(characters) }
        guard characters.count == usccLength else {
            return .malformed("\(characters.count) characters: a USCC has 18 (older IDs 15, 17 or 20)")
        }
        if let problem = alphabetProblem(characters) { return .malformed(problem) }
        let expected = checkCharacter(first17: characters[..<17])!
        return expected == characters[17] ? .valid : .checkFailed(expected: expected, found: characters[17])
    }

    /// The weighted sum Σ value(c[i]) × W[i] over the first 17 characters; nil if one of them
    /// is not in the alphabet. Huawei's `914403001922038216` sums to 831.
    public static func weightedSum(first17: some Collection<Character>) -> Int? {
        guard first17.count == 17 else { return nil }
        var sum = 0
        for (character, weight) in zip(first17, weights) {
            guard let value = alphabet.firstIndex(of: character) else { return nil }
            sum += value * weight
        }
        return sum
    }

    /// check = (31 − sum mod 31) mod 31, as a symbol of the alphabet.
    public static func checkCharacter(first17: some Collection<Character>) -> Character? {
        weightedSum(first17: first17).map { alphabet[(31 - $0 % 31) % 31] }
    }

    /// A valid USCC from its first 17 characters, for data generators.
    public static func generate(first17: String) -> String? {
        checkCharacter(first17: Array(first17)).map { first17 + String($0) }
    }

    static func alphabetProblem(_ characters: [Character]) -> String? {
        guard let offset = characters.firstIndex(where: { !alphabet.contains($0) }) else { return nil }
        let character = characters[offset]
        let hint = character.isLowercase ? " (letters are upper-case)" : " (the USCC alphabet has no I, O, S, V, Z)"
        return "character '\(character)' at position \(offset + 1) is not in the USCC alphabet" + hint
    }

    /// Old forms use digits and upper-case letters (including those the USCC excludes).
    static func checkLegacy(_ characters: [Character]) -> TaxpayerIDCheck {
        guard let offset = characters.firstIndex(where: { !($0.isASCII && ($0.isNumber || $0.isUppercase)) }) else {
            return .legacyForm(length: characters.count)
        }
        return .malformed("character '\(characters[offset])' at position \(offset + 1): expected a digit or an upper-case letter")
    }
}
