// fapiao-gen: realistic CloudEvents JSON Lines for the ledger, with a manifest of what `why`
// should answer for every invoice.
//
//     swift build -c release --product fapiao-gen
//     .build/release/fapiao-gen --invoices 3000 --seed 7 --out events.jsonl --manifest manifest.jsonl
//     .build/release/fapiao-gen --invoices 1000 | fapiao import -
import ArgumentParser
import FapiaoDomain
import Generator

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@main
struct FapiaoGen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fapiao-gen",
        abstract: "Generate realistic invoice events (CloudEvents JSON Lines, docs/events.md).",
        discussion: """
            Beijing sellers and a buyer group with three receiving systems (beijing-finance, \
            chaoyang-it-finance, shunyi-logistics-erp); digital and legacy invoices with exact half-up \
            tax; deliveries, receipts, reviews, verifications, voids, red letters, maintenance \
            windows, access grants and users' queries. About one invoice in five fails to appear, \
            each for one intended cause, which --manifest records for every invoice:
              {"key": ..., "system": ..., "user": ..., "intended": "<cause code>" | "visible", "variant": ...}

            The output depends only on the options: the same seed gives the same bytes.
            """)

    @Option(help: "How many invoices.") var invoices: Int
    @Option(help: "Seed of the pseudo-random choices.") var seed: UInt64 = 1
    @Option(help: "Events file, or - for standard output.") var out: String = "-"
    @Option(help: "Write the manifest (JSON Lines, one line per invoice) here.") var manifest: String?
    @Option(help: "First day of the period (CST).") var start: String = "2024-12-01"
    @Option(help: "Days the issue dates spread over (default: about 3,000 invoices a day, 7 to 365 days).") var days: Int?
    @Option(help: "Threads generating (the output is the same for any number).") var workers: Int = 2
    @Flag(help: "No progress bar and no summary on standard error.") var quiet = false
    @Flag(help: "In the summary, how each cause came about (variants).") var details = false

    func validate() throws {
        guard (1...GeneratorOptions.invoicesMax).contains(invoices) else {
            throw ValidationError("--invoices must be 1 to \(GeneratorOptions.invoicesMax)")
        }
        guard (try? CalendarDate.parse(start).get()) != nil else { throw ValidationError("--start must be a date like 2024-12-01, got \(start)") }
        if let days, !(1...3_660).contains(days) { throw ValidationError("--days must be 1 to 3660") }
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be 1 to 64") }
        if out == "-" && manifest == "-" { throw ValidationError("the manifest cannot go to standard output with the events") }
    }

    func run() throws {
        let options = GeneratorOptions(invoices: invoices, seed: seed, start: try CalendarDate.parse(start).get(), days: days, workers: workers)
        let bar = ProgressBar(enabled: !quiet && isatty(STDERR_FILENO) == 1)
        let started = Monotonic.seconds()
        let summary: GenerationSummary
        do {
            summary = try DataGenerator(options: options).write(eventsTo: out, manifestTo: manifest) { done, total in bar.show(done, of: total) }
        } catch let error as OutputFileError {
            bar.finish()
            printError("fapiao-gen: cannot write \(error)")
            throw ExitCode(74)
        }
        bar.finish()
        if !quiet { printError(Report.render(summary, seconds: Monotonic.seconds() - started, details: details)) }
    }
}

enum Monotonic {
    static func seconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}

func printError(_ text: String) {
    writeStandardError(text.hasSuffix("\n") ? text : text + "\n")
}

func writeStandardError(_ text: String) {
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

/// `[#####.....]  45%  450,000/1,000,000 invoices` on standard error, redrawn at most ten
/// times a second, only on a terminal.
final class ProgressBar {
    let enabled: Bool
    private var lastDrawn = 0.0
    private let started = Monotonic.seconds()
    private var drawn = false

    init(enabled: Bool) { self.enabled = enabled }

    func show(_ done: Int, of total: Int) {
        guard enabled else { return }
        let now = Monotonic.seconds()
        guard now - lastDrawn >= 0.1 || done == total else { return }
        lastDrawn = now
        let width = 30
        let filled = total == 0 ? width : done * width / total
        let rate = Double(done) / max(now - started, 0.001)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let text = "\r[\(bar)] \(Report.padded(String(done * 100 / max(total, 1)), 3))%  \(Report.grouped(done))/\(Report.grouped(total)) invoices  \(Report.grouped(Int(rate))) invoices/s"
        writeStandardError(text)
        drawn = true
    }

    func finish() {
        if drawn { writeStandardError("\n") }
        drawn = false
    }
}

enum Report {
    static func render(_ summary: GenerationSummary, seconds: Double, details: Bool) -> String {
        var text = "\(grouped(summary.invoices)) invoices, \(grouped(summary.events)) events, \(megabytes(summary.bytes)) in \(String(format2: seconds)) s"
        text += " (\(grouped(Int(Double(summary.events) / max(seconds, 0.001)))) events/s)\n"
        for (intended, count) in summary.intended.sorted(by: { $0.key < $1.key }) {
            text += "  \(padded(intended.rawValue, -26)) \(padded(grouped(count), 10))  \(percent(count, summary.invoices))\n"
            guard details else { continue }
            let prefix = intended.rawValue + "/"
            for (variant, count) in summary.variants.filter({ $0.key.hasPrefix(prefix) }).sorted(by: { $0.value > $1.value }) {
                text += "    \(padded(String(variant.dropFirst(prefix.count)), -34)) \(padded(grouped(count), 8))\n"
            }
        }
        return text
    }

    static func grouped(_ value: Int) -> String {
        let digits = String(value)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return out
    }

    static func megabytes(_ bytes: Int) -> String { String(format2: Double(bytes) / 1_048_576) + " MiB" }

    static func percent(_ part: Int, _ whole: Int) -> String { String(format2: Double(part) * 100 / Double(max(whole, 1))) + "%" }

    /// Right-aligned to `width`; negative: left-aligned.
    static func padded(_ text: String, _ width: Int) -> String {
        let fill = String(repeating: " ", count: max(0, abs(width) - text.count))
        return width < 0 ? text + fill : fill + text
    }
}

extension String {
    /// Two decimals, without Foundation.
    init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        let cents = hundredths % 100
        self = String(hundredths / 100) + "." + (cents < 10 ? "0" : "") + String(cents)
    }
}
