// RFC 3339 timestamps and calendar dates, without Foundation.
//
// Instants are Int64 microseconds since the Unix epoch (UTC): enough for ±292,000 years and
// finer than any upstream clock we see. The original text and its UTC offset are kept
// because "17:20 +08:00" and "09:20 Z" are the same instant but not the same fact: the
// offset tells which calendar day the source meant, and issue dates are China Standard
// Time. A system that files a 00:00-07:59 CST invoice under its UTC date files it a day
// early, which is one of the causes `why` looks for.

/// An instant as written in an event: the text verbatim, the instant, and its UTC offset.
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var text: String
    public var micros: Int64
    public var offsetSeconds: Int32

    public init(text: String, micros: Int64, offsetSeconds: Int32) {
        self.text = text
        self.micros = micros
        self.offsetSeconds = offsetSeconds
    }

    /// A timestamp for an instant, written as RFC 3339 in the given offset.
    public init(micros: Int64, offsetSeconds: Int32 = RFC3339.cstOffsetSeconds) {
        self.init(text: RFC3339.format(micros: micros, offsetSeconds: offsetSeconds), micros: micros, offsetSeconds: offsetSeconds)
    }

    /// Instants compare by time alone; the text is how it was written.
    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.micros < rhs.micros }

    public var description: String { text }

    /// The calendar day of this instant in China Standard Time.
    public var dateCST: CalendarDate { CalendarDate(micros: micros, offsetSeconds: RFC3339.cstOffsetSeconds) }
}

/// Why a timestamp or date was refused, with the 0-based character position.
public struct TimeProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var position: Int
    public var expected: String

    public init(position: Int, expected: String) {
        self.position = position
        self.expected = expected
    }

    public var description: String { "expected \(expected) at character \(position + 1)" }
}

public enum RFC3339 {
    /// China Standard Time, UTC+8, all year (no daylight saving since 1991).
    public static let cstOffsetSeconds: Int32 = 8 * 3600
    public static let microsPerSecond: Int64 = 1_000_000
    public static let microsPerDay: Int64 = 86_400 * microsPerSecond
    /// Digits beyond microseconds are accepted and truncated; more than this is refused.
    public static let fractionDigitsMax = 9
    public static let textBytesMax = 40

    /// Parses `2024-12-31T17:20:02.123+08:00` (or `Z`). The offset is required: a local time
    /// without one names no instant. Lower-case `t`/`z` are accepted as RFC 3339 allows.
    /// Leap seconds (`:60`) are refused: no upstream clock we know emits them.
    public static func parse(_ text: String) -> Result<Timestamp, TimeProblem> {
        guard text.utf8.count <= textBytesMax else {
            return .failure(TimeProblem(position: textBytesMax, expected: "at most \(textBytesMax) characters"))
        }
        var scanner = DigitScanner(Array(text.utf8))
        do {
            let micros = try scanner.scanTimestamp()
            return .success(Timestamp(text: text, micros: micros.instant, offsetSeconds: micros.offset))
        } catch {
            return .failure(error)
        }
    }

    /// Writes an instant in the given offset: `2024-12-31T17:20:02+08:00`, with `Z` for UTC,
    /// and fractional seconds only when the instant has them (6 digits, trailing zeros cut).
    public static func format(micros: Int64, offsetSeconds: Int32 = 0) -> String {
        let local = micros + Int64(offsetSeconds) * microsPerSecond
        let (days, microsOfDay) = floorDivide(local, microsPerDay)
        let date = CalendarDate(daysSinceEpoch: days)
        let seconds = microsOfDay / microsPerSecond
        var text = date.description + "T" + pad(seconds / 3600, 2) + ":" + pad(seconds / 60 % 60, 2) + ":" + pad(seconds % 60, 2)
        text += fraction(microsOfDay % microsPerSecond)
        return text + offsetText(offsetSeconds)
    }

    /// Formats in China Standard Time, as invoices print their dates.
    public static func formatCST(micros: Int64) -> String {
        format(micros: micros, offsetSeconds: cstOffsetSeconds)
    }

    static func fraction(_ micros: Int64) -> String {
        guard micros != 0 else { return "" }
        var digits = pad(micros, 6)
        while digits.last == "0" { digits.removeLast() }
        return "." + digits
    }

    static func offsetText(_ offsetSeconds: Int32) -> String {
        guard offsetSeconds != 0 else { return "Z" }
        let sign = offsetSeconds < 0 ? "-" : "+"
        let minutes = Int64(abs(offsetSeconds)) / 60
        return sign + pad(minutes / 60, 2) + ":" + pad(minutes % 60, 2)
    }
}

/// Floor division, so that instants before 1970 land on the right day.
func floorDivide(_ value: Int64, _ divisor: Int64) -> (quotient: Int64, remainder: Int64) {
    let (quotient, remainder) = value.quotientAndRemainder(dividingBy: divisor)
    return remainder < 0 ? (quotient - 1, remainder + divisor) : (quotient, remainder)
}

func pad(_ value: Int64, _ width: Int) -> String {
    let digits = String(value)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

// MARK: - Calendar dates

/// A proleptic Gregorian calendar day, such as an invoice's issue date in CST or the
/// bounds of a query's date filter.
public struct CalendarDate: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let year: Int
    public let month: Int
    public let day: Int

    /// Nil unless the day exists (February 29 only in leap years); years 1-9999.
    public init?(year: Int, month: Int, day: Int) {
        guard (1...9999).contains(year), (1...12).contains(month),
              (1...CalendarDate.daysInMonth(year: year, month: month)).contains(day) else { return nil }
        self.year = year
        self.month = month
        self.day = day
    }

    /// The day containing `micros` at the given UTC offset.
    public init(micros: Int64, offsetSeconds: Int32) {
        let local = micros + Int64(offsetSeconds) * RFC3339.microsPerSecond
        self.init(daysSinceEpoch: floorDivide(local, RFC3339.microsPerDay).quotient)
    }

    /// The China Standard Time day of an instant: the day an invoice says it was issued.
    public static func cst(micros: Int64) -> CalendarDate {
        CalendarDate(micros: micros, offsetSeconds: RFC3339.cstOffsetSeconds)
    }

    /// Parses `YYYY-MM-DD`.
    public static func parse(_ text: String) -> Result<CalendarDate, TimeProblem> {
        var scanner = DigitScanner(Array(text.utf8))
        do {
            let date = try scanner.scanDate()
            try scanner.expectEnd()
            return .success(date)
        } catch {
            return .failure(error)
        }
    }

    /// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    public var daysSinceEpoch: Int64 {
        let shiftedYear = Int64(month <= 2 ? year - 1 : year)
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * Int64((month + 9) % 12) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The inverse of `daysSinceEpoch` (Hinnant's `civil_from_days`).
    init(daysSinceEpoch: Int64) {
        let shifted = daysSinceEpoch + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        year = Int(yearOfEra + era * 400 + (month <= 2 ? 1 : 0))
        self.month = Int(month)
        day = Int(dayOfYear - (153 * monthIndex + 2) / 5 + 1)
    }

    /// The instant this day starts at the given offset; a date filter `issuedFrom` in CST
    /// starts at `startMicros(offsetSeconds: RFC3339.cstOffsetSeconds)`.
    public func startMicros(offsetSeconds: Int32) -> Int64 {
        daysSinceEpoch * RFC3339.microsPerDay - Int64(offsetSeconds) * RFC3339.microsPerSecond
    }

    /// The same year and month: the window in which a paper invoice may be voided.
    public func isSameMonth(as other: CalendarDate) -> Bool { year == other.year && month == other.month }

    public static func < (lhs: CalendarDate, rhs: CalendarDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    public var description: String { pad(Int64(year), 4) + "-" + pad(Int64(month), 2) + "-" + pad(Int64(day), 2) }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    static func isLeapYear(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }
}

// MARK: - Scanner

/// A cursor over ASCII text that reads fixed-width digit fields.
private struct DigitScanner {
    let bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var peek: UInt8 { index < bytes.count ? bytes[index] : 0 }

    mutating func number(digits count: Int, _ what: String) throws(TimeProblem) -> Int {
        var value = 0
        for _ in 0..<count {
            let digit = peek &- UInt8(ascii: "0")
            guard digit < 10 else { throw TimeProblem(position: index, expected: "\(count) digits of \(what)") }
            value = value * 10 + Int(digit)
            index += 1
        }
        return value
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws(TimeProblem) {
        guard peek == byte else { throw TimeProblem(position: index, expected: what) }
        index += 1
    }

    mutating func expectEnd() throws(TimeProblem) {
        guard index == bytes.count else { throw TimeProblem(position: index, expected: "the end of the text") }
    }

    mutating func scanDate() throws(TimeProblem) -> CalendarDate {
        let year = try number(digits: 4, "year")
        try expect(UInt8(ascii: "-"), "'-' after the year")
        let month = try number(digits: 2, "month")
        try expect(UInt8(ascii: "-"), "'-' after the month")
        let dayPosition = index
        let day = try number(digits: 2, "day")
        guard (1...12).contains(month) else { throw TimeProblem(position: dayPosition - 3, expected: "a month 01-12") }
        guard let date = CalendarDate(year: year, month: month, day: day) else {
            throw TimeProblem(position: dayPosition, expected: "a day that exists in \(pad(Int64(year), 4))-\(pad(Int64(month), 2))")
        }
        return date
    }

    mutating func scanTimestamp() throws(TimeProblem) -> (instant: Int64, offset: Int32) {
        let date = try scanDate()
        guard peek == UInt8(ascii: "T") || peek == UInt8(ascii: "t") else {
            throw TimeProblem(position: index, expected: "'T' between date and time")
        }
        index += 1
        let secondsOfDay = try scanTimeOfDay()
        let fractionMicros = try scanFraction()
        let offset = try scanOffset()
        try expectEnd()
        let localSeconds = date.daysSinceEpoch * 86_400 + Int64(secondsOfDay)
        return ((localSeconds - Int64(offset)) * RFC3339.microsPerSecond + fractionMicros, offset)
    }

    mutating func scanTimeOfDay() throws(TimeProblem) -> Int {
        let start = index
        let hour = try number(digits: 2, "hour")
        try expect(UInt8(ascii: ":"), "':' after the hour")
        let minute = try number(digits: 2, "minute")
        try expect(UInt8(ascii: ":"), "':' after the minute")
        let second = try number(digits: 2, "second")
        guard hour < 24 else { throw TimeProblem(position: start, expected: "an hour 00-23") }
        guard minute < 60 else { throw TimeProblem(position: start + 3, expected: "a minute 00-59") }
        guard second < 60 else { throw TimeProblem(position: start + 6, expected: "a second 00-59 (leap seconds are not accepted)") }
        return hour * 3600 + minute * 60 + second
    }

    mutating func scanFraction() throws(TimeProblem) -> Int64 {
        guard peek == UInt8(ascii: ".") else { return 0 }
        index += 1
        var micros: Int64 = 0
        var count = 0
        while case let digit = peek &- UInt8(ascii: "0"), digit < 10 {
            count += 1
            guard count <= RFC3339.fractionDigitsMax else {
                throw TimeProblem(position: index, expected: "at most \(RFC3339.fractionDigitsMax) fractional digits")
            }
            if count <= 6 { micros = micros * 10 + Int64(digit) }
            index += 1
        }
        guard count > 0 else { throw TimeProblem(position: index, expected: "a digit after '.'") }
        for _ in count..<max(count, 6) { micros *= 10 }
        return micros
    }

    mutating func scanOffset() throws(TimeProblem) -> Int32 {
        switch peek {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            index += 1
            return 0
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign: Int32 = peek == UInt8(ascii: "-") ? -1 : 1
            index += 1
            let start = index
            let hours = try number(digits: 2, "offset hours")
            try expect(UInt8(ascii: ":"), "':' in the UTC offset (±hh:mm)")
            let minutes = try number(digits: 2, "offset minutes")
            guard hours < 24, minutes < 60 else { throw TimeProblem(position: start, expected: "an offset between -23:59 and +23:59") }
            return sign * Int32(hours * 3600 + minutes * 60)
        default:
            throw TimeProblem(position: index, expected: "a UTC offset: 'Z' or ±hh:mm")
        }
    }
}
