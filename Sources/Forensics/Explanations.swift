import FapiaoDomain
import Projections

/// Why an issue date falls outside a query's range, with the UTC/CST day shift spelled out.
enum DateCheck {
    static func outside(issueDate: String, issuedAt: Int64, from: CalendarDate?, to: CalendarDate?) -> (summary: String, suggestion: String)? {
        let before = from.map { issueDate < $0.description } ?? false
        let after = to.map { issueDate > $0.description } ?? false
        guard before || after else { return nil }
        let range = "\(from?.description ?? "…")–\(to?.description ?? "…")"
        let utcDate = CalendarDate(micros: issuedAt, offsetSeconds: 0).description
        let cstTime = String(CST.format(issuedAt).dropFirst(11).prefix(5))
        var summary = "the invoice was issued on \(issueDate) (CST, \(cstTime)), outside the query's range \(range)"
        var suggestion = "widen the date range to include \(issueDate)"
        if utcDate != issueDate {
            summary += "; in UTC it is \(utcDate)"
            suggestion += ": the invoice was issued \(cstTime) CST, which is \(utcDate) in UTC"
        }
        return (summary, suggestion)
    }
}

/// How a searched number differs from the invoice's: against the invoice number alone when
/// the search looks like one (a legacy 8-digit number), else against the whole key.
enum NumberDifference {
    static func explain(typed: String, number: String, key: String) -> String? {
        let digits = String(typed.unicodeScalars.compactMap { scalar -> Character? in
            switch scalar.value {
            case 0x30...0x39: Character(scalar)
            case 0xFF10...0xFF19: Character(Unicode.Scalar(scalar.value - 0xFF10 + 0x30)!)
            default: nil
            }
        })
        if digits.count == number.count, digits != typed, digits == number { return "typed with full-width digits or separators" }
        if digits.count == number.count, let edit = sameLengthEdit(digits, number) { return edit }
        return InvoiceKey(canonical: key).map { describeDifference(typed: typed, actual: $0).description }
    }

    /// One digit wrong, or two neighbours swapped; nil for anything else.
    static func sameLengthEdit(_ typed: String, _ actual: String) -> String? {
        let a = Array(typed), b = Array(actual)
        let differing = a.indices.filter { a[$0] != b[$0] }
        if differing.count == 1 { return "digit \(differing[0] + 1) differs" }
        if differing.count == 2, differing[1] == differing[0] + 1, a[differing[0]] == b[differing[1]], a[differing[1]] == b[differing[0]] {
            return "digits \(differing[0] + 1) and \(differing[1] + 1) are swapped"
        }
        return nil
    }
}

/// How a typed company name differs from the invoice's, in words a finance user recognises.
enum NameDifference {
    static func explain(typed: String, actual: String) -> String {
        if NameNormalization.normalize(typed) == NameNormalization.normalize(actual) {
            var notes: [String] = []
            let fullWidthBrackets: Set<Character> = ["（", "）"]
            let halfWidthBrackets: Set<Character> = ["(", ")"]
            if typed.contains(where: halfWidthBrackets.contains) && actual.contains(where: fullWidthBrackets.contains) {
                notes.append("used half-width brackets ( ) where the name has full-width （ ）")
            } else if typed.contains(where: fullWidthBrackets.contains) && actual.contains(where: halfWidthBrackets.contains) {
                notes.append("used full-width brackets （ ） where the name has half-width ( )")
            }
            if typed != typed.trimmingCharacters(in: .whitespaces) && actual == actual.trimmingCharacters(in: .whitespaces) {
                notes.append("has leading or trailing spaces")
            }
            if typed.filter({ $0 == " " || $0 == "\u{3000}" }).count != actual.filter({ $0 == " " || $0 == "\u{3000}" }).count {
                notes.append("spaces differ")
            }
            if typed.unicodeScalars.contains(where: { (0xFF01...0xFF5E).contains($0.value) && $0 != "（" && $0 != "）" })
                != actual.unicodeScalars.contains(where: { (0xFF01...0xFF5E).contains($0.value) && $0 != "（" && $0 != "）" }) {
                notes.append("full-width and half-width letters or digits differ")
            }
            if typed.lowercased() == actual.lowercased() && typed != actual { notes.append("letter case differs") }
            return notes.isEmpty ? "differs only in spacing or character width" : notes.joined(separator: "; ")
        }
        let t = NameNormalization.normalize(typed)
        let a = NameNormalization.normalize(actual)
        if a.contains(t) { return "is only part of the name" }
        if t.contains(a) { return "has extra characters" }
        return "is a different name (an old or abbreviated name?)"
    }
}

import Foundation
