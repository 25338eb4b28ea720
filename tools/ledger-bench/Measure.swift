import Foundation

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds.
enum Monotonic {
    @inline(__always)
    static func nanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    static func seconds(since started: UInt64) -> Double {
        Double(nanoseconds() - started) / 1e9
    }
}

/// Bytes this process has handed to write system calls so far (`wchar` of /proc/self/io):
/// the difference over a phase is the pages LMDB wrote, i.e. its write amplification.
enum WrittenBytes {
    static func now() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("wchar:") {
            return Int(line.dropFirst("wchar:".count).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return 0
    }
}

/// Latency percentiles (nearest rank) of a set of nanosecond samples.
struct Percentiles: Sendable {
    let p50: Double
    let p99: Double
    let p999: Double
    let max: Double

    /// In microseconds.
    init(nanoseconds samples: [UInt64]) {
        precondition(!samples.isEmpty, "no samples")
        let sorted = samples.sorted()
        func rank(_ q: Double) -> Double {
            let index = Swift.min(sorted.count - 1, Swift.max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
            return Double(sorted[index]) / 1_000
        }
        p50 = rank(0.50)
        p99 = rank(0.99)
        p999 = rank(0.999)
        max = Double(sorted[sorted.count - 1]) / 1_000
    }

    var summary: String {
        "p50 \(Format.micros(p50))  p99 \(Format.micros(p99))  p99.9 \(Format.micros(p999))  max \(Format.micros(max))"
    }
}

enum Format {
    /// 1234567 -> "1,234,567".
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return (value < 0 ? "-" : "") + out
    }

    static func rate(_ eventsPerSecond: Double) -> String { "\(grouped(Int(eventsPerSecond.rounded()))) ev/s" }

    static func micros(_ value: Double) -> String {
        value < 10 ? String(format: "%.1f µs", value) : "\(grouped(Int(value.rounded()))) µs"
    }

    static func kibibytes(_ bytes: Int) -> String { "\(grouped(bytes / 1024)) KiB" }

    static func fixed(_ value: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", value) }

    /// Pads to `width` characters (µ and × count as one).
    static func padded(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: Swift.max(1, width - text.count))
    }
}

/// Progress of long phases, on standard error so standard output stays the report.
enum Progress {
    static func say(_ line: String) {
        FileHandle.standardError.write(Data(("ledger-bench: " + line + "\n").utf8))
    }
}
