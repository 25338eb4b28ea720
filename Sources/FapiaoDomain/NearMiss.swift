// "Did you mean": finding the key someone meant when what they typed is not in the ledger.
//
// Approach: a symmetric deletion neighbourhood (the idea behind SymSpell). Enumerating every
// key one edit away from a 20-digit typed key means 180 substitutions, 19 swaps, 21
// deletions and 210 insertions, each an index probe, most of them empty. Instead every
// stored key is indexed under a handful of *signatures*: its own digit string and the
// string with each single digit deleted (at most 21 entries, fewer when adjacent digits
// repeat). A typed key produces the same set. Two digit strings share a signature exactly
// when one edit, or an adjacent swap, separates them:
//
// - one digit wrong at i:   both minus position i are equal;
// - adjacent swap at i,i+1: "..ab.." minus a at i equals "..ba.." minus a at i+1;
// - a digit missing:        the typed string equals a stored deletion;
// - a digit extra:          a typed deletion equals a stored key's own digits.
//
// Sharing a signature can also happen two edits apart (a shifted run), so candidates are
// always confirmed with `describeDifference(typed:actual:)`, which classifies the
// difference and says `.unrelated` for those. Code/number swaps and full-width digits are
// not edits at all: `InvoiceKey.parse` already undoes them, and `readings(ofTyped:)` lists
// every way a run of digits can be read as a key, for exact look-ups.

extension InvoiceKey {
    /// The signatures to index this key under (see the file comment).
    public var nearMissSignatures: [String] { NearMiss.signatures(ofDigits: digits) }

    /// The signatures to look up for typed text, which need not parse: its digits
    /// (full-width ones read as digits, other characters ignored), code first if it reads
    /// as a legacy pair.
    public static func nearMissSignatures(forTyped typed: String) -> [String] {
        NearMiss.signatures(ofDigits: NearMiss.digits(ofTyped: typed))
    }

    /// Every key a typed run of digits could mean, the parsed reading first. Twenty digits
    /// are also read as a 12-digit code and 8-digit number in both orders; eighteen as a
    /// 10-digit code and number in both orders.
    public static func readings(ofTyped typed: String) -> [InvoiceKey] {
        var keys: [InvoiceKey] = []
        if case .success(let key) = parse(typed) { keys.append(key) }
        let digits = NearMiss.digits(ofTyped: typed)
        switch digits.count {
        case 20:
            if digits.first != "0" { keys.append(.digital(number: digits)) }
            keys.append(.legacy(code: String(digits.prefix(12)), number: String(digits.suffix(8))))
            keys.append(.legacy(code: String(digits.suffix(12)), number: String(digits.prefix(8))))
        case 18:
            keys.append(.legacy(code: String(digits.prefix(10)), number: String(digits.suffix(8))))
            keys.append(.legacy(code: String(digits.suffix(10)), number: String(digits.prefix(8))))
        default:
            break
        }
        return keys.uniqued()
    }
}

/// How typed text differs from a key that exists. Positions are 1-based over the key's
/// `digits` (a legacy key counts its code digits, then its number digits).
public enum KeyDifference: Sendable, Hashable, CustomStringConvertible {
    /// Typed exactly as stored.
    case identical
    /// Same digits, different spaces or hyphens.
    case formatting
    /// Same key once full-width digits (１２３) are read as digits.
    case fullWidthDigits
    /// A legacy pair typed number first.
    case codeNumberSwapped
    case oneDigitWrong(position: Int)
    /// The digits at `position` and `position + 1` are swapped.
    case adjacentSwap(position: Int)
    /// The digit at `position` of the key was left out.
    case digitMissing(position: Int)
    /// The typed text has an extra digit where the key's `position` digit is.
    case extraDigit(position: Int)
    /// More than one edit apart: not a near miss.
    case unrelated
    /// The typed text is the legacy code and number printed on this digital paper invoice.
    case legacyAlias

    public var description: String {
        switch self {
        case .identical: "identical"
        case .formatting: "same digits, different spacing or hyphens"
        case .fullWidthDigits: "typed with full-width digits"
        case .codeNumberSwapped: "invoice code and number typed in the wrong order"
        case .oneDigitWrong(let position): "digit \(position) differs"
        case .adjacentSwap(let position): "digits \(position) and \(position + 1) are swapped"
        case .digitMissing(let position): "digit \(position) is missing"
        case .extraDigit(let position): "an extra digit before digit \(position)"
        case .unrelated: "more than one typo apart"
        case .legacyAlias: "the legacy code and number printed on this digital paper invoice"
        }
    }

    /// Whether the typed text means this key after normalisation alone.
    public var isSameKey: Bool {
        switch self {
        case .identical, .formatting, .fullWidthDigits, .codeNumberSwapped, .legacyAlias: true
        default: false
        }
    }
}

/// Classifies how `typed` differs from `actual`, most specific first: a normalisation
/// (full width, swapped pair, spacing) before a digit edit.
public func describeDifference(typed: String, actual: InvoiceKey) -> KeyDifference {
    if typed == actual.description { return .identical }
    let parsed = try? InvoiceKey.parse(typed).get()
    let rawDigits = NearMiss.digits(inTypedOrder: typed)
    if parsed == actual {
        if case .success(let key) = TypedKey.read(typed), key.usedFullWidth { return .fullWidthDigits }
        return rawDigits == actual.digits ? .formatting : .codeNumberSwapped
    }
    if case .legacy(let code, let number) = actual, rawDigits == number + code { return .codeNumberSwapped }
    return NearMiss.classifyEdit(typed: parsed?.digits ?? rawDigits, actual: actual.digits)
}

enum NearMiss {
    static func signatures(ofDigits digits: String) -> [String] {
        let characters = Array(digits)
        var signatures = [digits]
        for position in characters.indices {
            // Deleting either of two equal neighbours gives the same string: keep one.
            if position > 0 && characters[position] == characters[position - 1] { continue }
            var deleted = characters
            deleted.remove(at: position)
            signatures.append(String(deleted))
        }
        return signatures
    }

    /// Digits of typed text in the order typed, full-width ones converted, all else dropped.
    static func digits(inTypedOrder typed: String) -> String {
        var digits = ""
        for character in typed {
            if case .digit(let digit, _) = TypedCharacter(character) { digits.append(digit) }
        }
        return digits
    }

    /// The parsed key's digits when the text parses (code first), else the typed order.
    static func digits(ofTyped typed: String) -> String {
        (try? InvoiceKey.parse(typed).get())?.digits ?? digits(inTypedOrder: typed)
    }

    static func classifyEdit(typed: String, actual: String) -> KeyDifference {
        let typed = Array(typed)
        let actual = Array(actual)
        switch typed.count - actual.count {
        case 0: return classifySameLength(typed, actual)
        case -1: return firstDeletion(from: actual, giving: typed).map { .digitMissing(position: $0 + 1) } ?? .unrelated
        case 1: return firstDeletion(from: typed, giving: actual).map { .extraDigit(position: $0 + 1) } ?? .unrelated
        default: return .unrelated
        }
    }

    static func classifySameLength(_ typed: [Character], _ actual: [Character]) -> KeyDifference {
        let differing = typed.indices.filter { typed[$0] != actual[$0] }
        switch differing.count {
        case 0: return .formatting
        case 1: return .oneDigitWrong(position: differing[0] + 1)
        case 2:
            let (first, second) = (differing[0], differing[1])
            let swapped = second == first + 1 && typed[first] == actual[second] && typed[second] == actual[first]
            return swapped ? .adjacentSwap(position: first + 1) : .unrelated
        default: return .unrelated
        }
    }

    /// The first position whose deletion from `longer` gives `shorter`.
    static func firstDeletion(from longer: [Character], giving shorter: [Character]) -> Int? {
        let prefix = zip(longer, shorter).prefix { $0 == $1 }.count
        return longer[(prefix + 1)...].elementsEqual(shorter[prefix...]) ? prefix : nil
    }
}

extension Array where Element: Hashable {
    func uniqued() -> [Element] {
        var seen: Set<Element> = []
        return filter { seen.insert($0).inserted }
    }
}
