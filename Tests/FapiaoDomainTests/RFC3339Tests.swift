import Testing
@testable import FapiaoDomain

struct RFC3339Tests {
    // 2024-12-31T09:20:02Z = 1735636802 s since the epoch.
    @Test(arguments: [
        ("2024-12-31T17:20:02+08:00", Int64(1_735_636_802_000_000), Int32(28_800)),
        ("2024-12-31T09:20:02Z", 1_735_636_802_000_000, 0),
        ("2024-12-31t09:20:02z", 1_735_636_802_000_000, 0),
        ("2024-12-31T09:20:02.5Z", 1_735_636_802_500_000, 0),
        ("2024-12-31T09:20:02.123456789Z", 1_735_636_802_123_456, 0),
        ("2024-12-31T04:50:02-04:30", 1_735_636_802_000_000, -16_200),
        ("2024-12-31T09:20:02-00:00", 1_735_636_802_000_000, 0),
        ("1970-01-01T00:00:00Z", 0, 0),
        ("1969-12-31T23:59:59.999999Z", -1, 0),
        ("2024-02-29T00:00:00+08:00", 1_709_136_000_000_000, 28_800),
    ])
    func parses(text: String, micros: Int64, offset: Int32) throws {
        let time = try RFC3339.parse(text).get()
        #expect(time.micros == micros)
        #expect(time.offsetSeconds == offset)
        #expect(time.text == text)
    }

    @Test(arguments: [
        ("2024-12-31T17:20:02", "a UTC offset: 'Z' or ±hh:mm"),
        ("2024-12-31 17:20:02+08:00", "'T' between date and time"),
        ("2024-12-31T17:20:02+0800", "':' in the UTC offset (±hh:mm)"),
        ("2024-13-01T00:00:00Z", "a month 01-12"),
        ("2023-02-29T00:00:00Z", "a day that exists in 2023-02"),
        ("2024-12-31T24:00:00Z", "an hour 00-23"),
        ("2024-12-31T23:60:00Z", "a minute 00-59"),
        ("2016-12-31T23:59:60Z", "a second 00-59 (leap seconds are not accepted)"),
        ("2024-12-31T17:20:02.Z", "a digit after '.'"),
        ("2024-12-31T17:20:02.1234567890Z", "at most 9 fractional digits"),
        ("24-12-31T17:20:02Z", "4 digits of year"),
        ("2024-12-31T17:20:02Z ", "the end of the text"),
        ("2024-12-31T17:20:02+24:00", "an offset between -23:59 and +23:59"),
    ])
    func refuses(text: String, expected: String) {
        guard case .failure(let problem) = RFC3339.parse(text) else {
            Issue.record("accepted \(text)")
            return
        }
        #expect(problem.expected == expected)
    }

    @Test(arguments: [
        (Int64(1_735_636_802_000_000), Int32(28_800), "2024-12-31T17:20:02+08:00"),
        (1_735_636_802_000_000, 0, "2024-12-31T09:20:02Z"),
        (1_735_636_802_120_000, 0, "2024-12-31T09:20:02.12Z"),
        (1_735_636_802_000_001, -16_200, "2024-12-31T04:50:02.000001-04:30"),
        (-1, 0, "1969-12-31T23:59:59.999999Z"),
    ])
    func formats(micros: Int64, offset: Int32, expected: String) throws {
        let text = RFC3339.format(micros: micros, offsetSeconds: offset)
        #expect(text == expected)
        #expect(try RFC3339.parse(text).get().micros == micros)
    }

    /// An invoice issued 00:00-07:59 CST is on the previous day in UTC: the filter trap.
    @Test(arguments: [
        ("2024-12-31T07:59:59+08:00", "2024-12-31", "2024-12-30"),
        ("2024-12-31T08:00:00+08:00", "2024-12-31", "2024-12-31"),
        ("2024-12-31T16:00:00Z", "2025-01-01", "2024-12-31"),
        ("2024-03-01T00:30:00+08:00", "2024-03-01", "2024-02-29"),
    ])
    func cstAndUTCDatesDiffer(text: String, cst: String, utc: String) throws {
        let time = try RFC3339.parse(text).get()
        #expect(CalendarDate.cst(micros: time.micros).description == cst)
        #expect(time.dateCST.description == cst)
        #expect(CalendarDate(micros: time.micros, offsetSeconds: 0).description == utc)
    }

    @Test func dayStartsAtTheOffsetMidnight() throws {
        let date = try CalendarDate.parse("2024-12-31").get()
        let start = date.startMicros(offsetSeconds: RFC3339.cstOffsetSeconds)
        #expect(RFC3339.formatCST(micros: start) == "2024-12-31T00:00:00+08:00")
        #expect(CalendarDate.cst(micros: start) == date)
        #expect(CalendarDate.cst(micros: start - 1) < date)
    }

    @Test(arguments: ["2024-2-01", "2024-02-30", "2024-00-10", "2024-01-01T", "", "abcd-ef-gh"])
    func refusesBadDates(text: String) {
        #expect(throws: TimeProblem.self) { try CalendarDate.parse(text).get() }
    }

    @Test func daysRoundTripAcrossCenturies() {
        for days in stride(from: Int64(-800_000), through: 2_900_000, by: 997) {
            let date = CalendarDate(daysSinceEpoch: days)
            #expect(date.daysSinceEpoch == days)
        }
        #expect(CalendarDate(year: 2000, month: 2, day: 29) != nil)
        #expect(CalendarDate(year: 1900, month: 2, day: 29) == nil)
    }
}
