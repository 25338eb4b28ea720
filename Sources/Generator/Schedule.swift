import FapiaoDomain

// When things happen: invoices are issued mostly in office hours on weekdays, a few at night
// (online shops, hotels: the 00:00-07:59 CST invoices that a UTC date filter files under the
// previous day), reviewers work office hours, and receiving systems go into maintenance on a
// schedule and, now and then, unexpectedly.

/// Instants are Int64 microseconds since the epoch, as in `Timestamp`.
enum Clock {
    static let second: Int64 = 1_000_000
    static let minute: Int64 = 60 * second
    static let hour: Int64 = 60 * minute
    static let day: Int64 = 24 * hour
    static let cstOffset: Int64 = 8 * hour

    /// Days since 1970-01-01 of the CST calendar day containing `micros`.
    static func cstDay(_ micros: Int64) -> Int64 { floorDivide(micros + cstOffset, day) }

    /// The instant CST day `cstDay` starts.
    static func start(ofDay cstDay: Int64) -> Int64 { cstDay * day - cstOffset }

    /// Microseconds since CST midnight.
    static func timeOfDay(_ micros: Int64) -> Int64 { micros + cstOffset - cstDay(micros) * day }

    /// 0 = Sunday … 6 = Saturday (1970-01-01 was a Thursday).
    static func weekday(ofDay cstDay: Int64) -> Int { Int(((cstDay + 4) % 7 + 7) % 7) }

    /// The first moment at or after `micros` inside office hours (Monday to Friday,
    /// `opens`..<`closes` hours CST).
    static func officeHours(atOrAfter micros: Int64, opens: Int64 = 9, closes: Int64 = 18) -> Int64 {
        var day = cstDay(micros)
        var time = micros
        while true {
            let weekday = weekday(ofDay: day)
            let open = start(ofDay: day) + opens * hour
            let close = start(ofDay: day) + closes * hour
            if weekday != 0 && weekday != 6 && time < close { return max(time, open) }
            day += 1
            time = start(ofDay: day)
        }
    }

    static func floorDivide(_ value: Int64, _ divisor: Int64) -> Int64 {
        let (quotient, remainder) = value.quotientAndRemainder(dividingBy: divisor)
        return remainder < 0 ? quotient - 1 : quotient
    }
}

/// Issue times: invoice `index` of `count` gets a time that never decreases with the index,
/// spread over `days` days with office-hour peaks, so the file reads roughly in time order.
struct IssueSchedule: Sendable {
    let startMicros: Int64
    let days: Int
    let count: Int
    /// Cumulative weight × seconds at the end of each hour of the period.
    private let cumulative: [Int64]
    private let weights: [Int64]

    /// Relative invoicing activity per CST hour.
    static let weekdayWeights: [Int64] = [2, 1, 1, 1, 1, 1, 2, 4, 10, 22, 26, 24, 12, 20, 26, 26, 24, 18, 10, 7, 5, 4, 3, 2]
    static let weekendWeights: [Int64] = [1, 1, 1, 1, 1, 1, 1, 1, 2, 4, 5, 5, 4, 4, 5, 5, 4, 3, 3, 2, 2, 2, 1, 1]

    init(start: CalendarDate, days: Int, count: Int) {
        precondition(days > 0 && count > 0, "an empty schedule")
        startMicros = start.startMicros(offsetSeconds: RFC3339.cstOffsetSeconds)
        self.days = days
        self.count = count
        var weights: [Int64] = []
        weights.reserveCapacity(days * 24)
        let firstDay = Clock.cstDay(startMicros)
        for day in 0..<Int64(days) {
            let weekday = Clock.weekday(ofDay: firstDay + day)
            weights += weekday == 0 || weekday == 6 ? Self.weekendWeights : Self.weekdayWeights
        }
        // In weight-seconds, so that an invoice can land on any second of a quiet hour.
        var total: Int64 = 0
        cumulative = weights.map { total += $0 * 3_600; return total }
        self.weights = weights
    }

    /// Invoice `index`'s issue time, to the second; `jitter` (any 64 bits) places it inside its
    /// slot of the distribution.
    func issueMicros(index: Int, jitter: UInt64) -> Int64 {
        let total = Int128(cumulative[cumulative.count - 1])
        let slot = (Int128(index) << 20) + Int128(jitter >> 44)
        let target = Int64(slot * total / (Int128(count) << 20))
        var low = 0
        var high = cumulative.count - 1
        while low < high {
            let middle = (low + high) / 2
            if cumulative[middle] > target { high = middle } else { low = middle + 1 }
        }
        let before = low == 0 ? 0 : cumulative[low - 1]
        let seconds = (target - before) / weights[low]
        return startMicros + Int64(low) * Clock.hour + seconds * Clock.second
    }
}

/// A receiving system's maintenance: a weekly window and, every few days, an unplanned one.
/// A pure function of the day, so windows are never stored: any instant's window is computed.
struct MaintenancePlan: Sendable {
    struct Window: Sendable, Hashable {
        var start: Int64
        var end: Int64
        var reason: String
        /// Unique per system: the CST day and a letter.
        var id: String
    }

    var system: String
    /// Weekday (0 = Sunday), start hour and length of the planned weekly window.
    var weekly: (weekday: Int, startHour: Int64, minutes: Int64)?
    /// On average one unplanned window per this many days (0: none).
    var unplannedEveryDays: Int
    var seed: UInt64

    static let unplannedReasons = [
        "emergency database failover", "certificate renewal for the tax-bureau gateway", "disk full on the invoice store",
        "hotfix for the import job", "network switch replacement in the server room",
    ]

    /// The windows that start on CST day `day`, earliest first.
    func windows(onDay day: Int64) -> [Window] {
        var windows: [Window] = []
        let dayStart = Clock.start(ofDay: day)
        let systemHash = system.utf8.reduce(UInt64(0xCBF2_9CE4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 }
        var random = SplitMix(seed: seed ^ systemHash, stream: 7, index: UInt64(bitPattern: day))
        let unplanned = unplannedEveryDays > 0 && random.below(unplannedEveryDays) == 0
        if unplanned {
            let start = dayStart + 10 * Clock.hour + Int64(random.below(6 * 60)) * Clock.minute
            let length = Int64(random.int(20...55)) * Clock.minute
            windows.append(Window(start: start, end: start + length, reason: random.pick(Self.unplannedReasons), id: "\(day)u"))
        }
        if let weekly, Clock.weekday(ofDay: day) == weekly.weekday {
            let start = dayStart + weekly.startHour * Clock.hour
            windows.append(Window(start: start, end: start + weekly.minutes * Clock.minute, reason: "weekly release upgrade", id: "\(day)w"))
        }
        return windows.sorted { $0.start < $1.start }
    }

    /// The window `micros` falls in, if any (windows never span more than one day boundary).
    func window(containing micros: Int64) -> Window? {
        let day = Clock.cstDay(micros)
        for candidate in [day - 1, day] {
            if let window = windows(onDay: candidate).first(where: { $0.start <= micros && micros < $0.end }) { return window }
        }
        return nil
    }

    /// The first window that starts after `micros`.
    func firstWindow(startingAfter micros: Int64) -> Window {
        var day = Clock.cstDay(micros)
        while true {
            if let window = windows(onDay: day).first(where: { $0.start > micros }) { return window }
            day += 1
        }
    }

    /// `micros`, or just after the window it falls in (a user retries once the system is back).
    func outsideWindows(_ micros: Int64, random: inout SplitMix) -> Int64 {
        var time = micros
        while let window = window(containing: time) {
            time = window.end + Int64(random.int(3...90)) * Clock.minute
        }
        return time
    }
}
