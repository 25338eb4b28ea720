// "Did you mean": finding the key someone meant when what they typed is not in the ledger.
//
// Approach: enumerate every key one edit away from what was typed and look each up exactly.
// For 20 typed digits that is 180 substitutions and at most 19 adjacent swaps (digit strings
// of 18 or 20 digits only: no other length is a key), each read as a digital key and as a
// legacy code and number: about 400 point look-ups, well under a millisecond. One typed
// digit short or over adds 200 insertions or 21 deletions instead.
//
// (Until search projection version 4 every stored key was indexed under its 21 deletion
// signatures, SymSpell-style, so a look-up was 21 range scans. That made the near-miss rows
// 85% of the search index, and most of the cost of rebuilding it: the ledger pays for every
// stored key, a "did you mean" only for the rare key typed wrong.)
//
// Candidates are confirmed with `describeDifference(typed:actual:)`, which classifies the
// difference. Code/number swaps and full-width digits are not edits at all:
// `InvoiceKey.parse` already undoes them, and `readings(ofTyped:)` lists every way a run of
// digits can be read as a key, for exact look-ups.

extension InvoiceKey {
    /// Every key one edit away from typed text (a digit wrong, missing or extra, or two
    /// neighbours swapped), in order of the edit's position, each digit string read as a
    /// digital key and as a legacy code and number. The text need not parse: its digits are
    /// used (full-width ones read as digits, other characters ignored), code first if it
    /// reads as a legacy pair.
    public static func nearMissCandidates(forTyped typed: String) -> [InvoiceKey] {
        NearMiss.candidates(ofDigits: NearMiss.digits(ofTyped: typed))
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
    /// See `InvoiceKey.nearMissCandidates(forTyped:)`.
    static func candidates(ofDigits digits: String) -> [InvoiceKey] {
        let typed = Array(digits.utf8)
        let zero = UInt8(ascii: "0"), nine = UInt8(ascii: "9")
        guard typed.allSatisfy({ $0 >= zero && $0 <= nine }) else { return [] }
        let keyLengths: Set<Int> = [InvoiceKey.digitalNumberDigits, 10 + InvoiceKey.legacyNumberDigits]
        var seen = Set<[UInt8]>()
        var keys: [InvoiceKey] = []
        func add(_ candidate: [UInt8]) {
            guard seen.insert(candidate).inserted else { return }
            let text = String(decoding: candidate, as: UTF8.self)
            if candidate.count == InvoiceKey.digitalNumberDigits {
                if candidate.first != zero { keys.append(.digital(number: text)) }
                keys.append(.legacy(code: String(text.prefix(12)), number: String(text.suffix(8))))
            } else {
                keys.append(.legacy(code: String(text.prefix(10)), number: String(text.suffix(8))))
            }
        }
        let sameLength = keyLengths.contains(typed.count)
        let longer = keyLengths.contains(typed.count + 1)
        let shorter = keyLengths.contains(typed.count - 1)
        for position in 0...typed.count {
            if position < typed.count {
                if sameLength {
                    for digit in zero...nine where digit != typed[position] {
                        var candidate = typed
                        candidate[position] = digit
                        add(candidate)
                    }
                    if position + 1 < typed.count && typed[position] != typed[position + 1] {
                        var candidate = typed
                        candidate.swapAt(position, position + 1)
                        add(candidate)
                    }
                }
                if shorter {
                    var candidate = typed
                    candidate.remove(at: position)
                    add(candidate)
                }
            }
            if longer {
                for digit in zero...nine {
                    var candidate = typed
                    candidate.insert(digit, at: position)
                    add(candidate)
                }
            }
        }
        return keys
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
