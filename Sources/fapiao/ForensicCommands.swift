import ArgumentParser
import FapiaoDomain
import Forensics
import Foundation
import Ledger
import Projections

/// The two clocks of a bitemporal ledger, and its position, as flags.
struct TimeFlags: ParsableArguments {
    @Option(help: ArgumentHelp("A real-world moment: only events that happened by then (RFC 3339, '2024-12-31 18:00' as CST, or a date = end of that day CST).", valueName: "TIME"))
    var at: String?
    @Option(help: ArgumentHelp("Only what the ledger had recorded by then (same formats).", valueName: "TIME"))
    var knownAt: String?
    @Option(help: ArgumentHelp("The ledger as it stood after this position.", valueName: "N"))
    var position: UInt64?

    func cutoff() throws -> Cutoff {
        func parse(_ text: String?, _ flag: String) throws -> Int64? {
            guard let text else { return nil }
            guard let micros = TimeInput.parse(text) else {
                throw ValidationError("\(flag) must be a time like 2024-12-31T18:00:00+08:00, '2024-12-31 18:00' (CST) or 2024-12-31, got \(text)")
            }
            return micros
        }
        return Cutoff(at: try parse(at, "--at"), knownAt: try parse(knownAt, "--known-at"), position: position)
    }
}

struct WhyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "why",
        abstract: "Say whether an invoice is visible in a system, and if not, exactly why, with the events that prove it.",
        discussion: """
            Causes are checked in pipeline order (not in the ledger, issue failed, voided or red-lettered, \
            verification, wrong recipient, delivery, receipt, review, projection lag, access, maintenance, \
            the query's criteria); every cause that holds is reported, the decisive one first, each with \
            the ledger positions that prove it. See docs/events.md for the JSON form.

            With --user, that user's access and most recent recorded query before the time asked are \
            evaluated; criteria flags (--number, --issued-from, ...) are evaluated instead of a recorded query.

            Examples (KEY as typed, e.g. 24112000000015301234):
              fapiao why KEY --system beijing-finance
              fapiao why KEY --system beijing-finance --user zhang.wei --format json
              fapiao why KEY --system beijing-finance --at "2024-12-31 18:00"
              fapiao why --all-missing --system beijing-finance --since 2024-12-01

            Exit codes: 0 visible (or report printed), 1 not visible, 64 bad usage, 66 no ledger.
            """)

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption
    @OptionGroup var time: TimeFlags
    @Argument(help: "The invoice key, as typed (spaces, full-width digits and hyphens are fine).") var key: String?
    @Option(help: "The receiving system.") var system: String
    @Option(help: "The user who could not find it: evaluates their access and last recorded query.") var user: String?
    @Option(help: "Query criteria: the number searched for.") var number: String?
    @Option(help: "Query criteria: first issue date, YYYY-MM-DD.") var issuedFrom: String?
    @Option(help: "Query criteria: last issue date, YYYY-MM-DD, inclusive.") var issuedTo: String?
    @Option(help: "Query criteria: buyer name.") var buyerName: String?
    @Option(help: "Query criteria: seller name.") var sellerName: String?
    @Option(help: "Query criteria: statuses, comma-separated.") var status: String?
    @Flag(help: "The morning report: every invoice issued to the system's owner that it does not show, grouped by cause.")
    var allMissing = false
    @Option(help: "With --all-missing: only invoices issued on or after this date (CST).") var since: String?

    func validate() throws {
        if allMissing && key != nil { throw ValidationError("give either a KEY or --all-missing, not both") }
        if !allMissing && key == nil { throw ValidationError("give the invoice KEY, or --all-missing for every missing invoice") }
    }

    func run() throws {
        let ledger = try ledgerOptions.open(readOnly: true)
        let projections = try? ProjectionEngine(ledger: ledger, projections: BuiltInProjections.all)
        let forensics = Forensics(ledger: ledger, projections: projections)
        if allMissing { return try runReport(forensics) }
        let question = WhyQuestion(typedKey: key!, system: system, user: user, cutoff: try time.cutoff(), criteria: try criteria())
        let answer = try CLIError.wrap { try forensics.why(question) }
        switch output.format {
        case .json: try JSONOutput.print(answer, sortedKeys: false)
        case .human: Terminal.write(WhyText.render(answer))
        }
        if !answer.visible { throw ExitCode(ExitCodes.problemFound) }
    }

    private func runReport(_ forensics: Forensics) throws {
        let sinceDate = try since.map { text -> CalendarDate in
            guard let date = try? CalendarDate.parse(text).get() else { throw ValidationError("--since must be a date like 2024-12-01, got \(text)") }
            return date
        }
        let bar = ProgressBar("examining (invoices)", total: nil)
        let report: MissingReport
        do {
            report = try forensics.allMissing(system: system, since: sinceDate) { done, _ in bar.update(UInt64(done)) }
        } catch let error as ForensicsError {
            Terminal.error("\(error)")
            throw ExitCode(ExitCodes.noInput)
        }
        bar.finish(UInt64(report.examined))
        switch output.format {
        case .json: try JSONOutput.print(report, sortedKeys: false)
        case .human: Terminal.write(WhyText.render(report))
        }
    }

    private func criteria() throws -> QueryCriteria? {
        guard number != nil || issuedFrom != nil || issuedTo != nil || buyerName != nil || sellerName != nil || status != nil else { return nil }
        func date(_ text: String?, _ flag: String) throws -> CalendarDate? {
            guard let text else { return nil }
            guard let date = try? CalendarDate.parse(text).get() else { throw ValidationError("\(flag) must be a date like 2024-12-31, got \(text)") }
            return date
        }
        let statuses = try status.map { list in
            try list.split(separator: ",").map { text -> VisibleStatus in
                guard let status = VisibleStatus(rawValue: String(text)) else {
                    throw ValidationError("unknown status \(text); use \(VisibleStatus.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return status
            }
        }
        return QueryCriteria(number: number, issuedFrom: try date(issuedFrom, "--issued-from"), issuedTo: try date(issuedTo, "--issued-to"),
                             buyerName: buyerName, sellerName: sellerName, statuses: statuses)
    }
}

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay an invoice's history with what each observer saw after each event, or a slice of the global log.",
        discussion: """
            Both clocks are shown: when each event happened at its source, and when the ledger recorded \
            it. Late arrivals (recorded after something that happened later) are marked.

            Examples:
              fapiao replay 24112000000015301234
              fapiao replay 24112000000015301234 --at "2024-12-31 17:10"
              fapiao replay --from 1000 --to 1100 --type fapiao.delivery.
              fapiao replay --from 1000 --source urn:fapiao:sync:beijing-finance
            """)

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption
    @OptionGroup var time: TimeFlags
    @Argument(help: "The invoice key, as typed.") var key: String?
    @Option(help: "Slice of the log: first position.") var from: UInt64?
    @Option(help: "Slice of the log: last position.") var to: UInt64?
    @Option(help: "Slice: only types starting with this.") var type: String?
    @Option(help: "Slice: only this source.") var source: String?

    func validate() throws {
        if key == nil && from == nil { throw ValidationError("give an invoice KEY, or --from POSITION [--to POSITION] for a slice of the log") }
    }

    func run() throws {
        let ledger = try ledgerOptions.open(readOnly: true)
        let forensics = Forensics(ledger: ledger, projections: nil)
        if let key {
            let replay = try CLIError.wrap { try forensics.replay(typedKey: key, cutoff: try time.cutoff()) }
            if replay.steps.isEmpty {
                Terminal.error("no events for invoice \(replay.key) in the time asked. Try `fapiao why \(key) --system SYSTEM` for near misses.")
                throw ExitCode(ExitCodes.problemFound)
            }
            switch output.format {
            case .json: try JSONOutput.print(replay, sortedKeys: false)
            case .human: Terminal.write(WhyText.render(replay))
            }
            return
        }
        let head = try CLIError.wrap { try ledger.headPosition() }
        let slice = try CLIError.wrap { try forensics.slice(from: from ?? 1, to: min(to ?? head, head), typePrefix: type, source: source) }
        switch output.format {
        case .json: try JSONOutput.print(slice, sortedKeys: false)
        case .human: Terminal.write(WhyText.render(slice.entries))
        }
    }
}

/// Human renderings: aligned, coloured on a terminal, plain when piped.
enum WhyText {
    static func render(_ answer: WhyAnswer) -> String {
        var out = ""
        let who = answer.user.map { " for \($0)" } ?? ""
        if answer.visible {
            out += Terminal.green("VISIBLE") + ": invoice \(answer.key) is visible in \(answer.system)\(who) as of \(answer.asOf ?? "now")\n"
        } else {
            out += Terminal.red("NOT VISIBLE") + ": invoice \(answer.key) in \(answer.system)\(who) as of \(answer.asOf ?? "now")\n"
        }
        if let query = answer.query { out += Terminal.dim("query: \(query.criteria)\(query.position.map { " (position \($0), \(query.time ?? ""))" } ?? " (from flags)")") + "\n" }
        for (index, cause) in answer.causes.enumerated() {
            let label = index == 0 ? Terminal.bold("decisive") : "also    "
            out += "\n\(label) \(Terminal.bold(cause.code.rawValue))  \(cause.summary)\n"
            if let since = cause.since { out += "         since \(since)\n" }
            if !cause.evidence.isEmpty { out += "         evidence: positions \(cause.evidence.map(String.init).joined(separator: ", "))\n" }
        }
        if !answer.timeline.isEmpty {
            out += "\n" + Terminal.bold("timeline") + "\n" + render(answer.timeline)
        }
        if !answer.suggestions.isEmpty {
            out += "\n" + Terminal.bold("what to do") + "\n" + answer.suggestions.map { "  • \($0)" }.joined(separator: "\n") + "\n"
        }
        return out
    }

    static func render(_ entries: [TimelineEntry]) -> String {
        var out = Terminal.dim("  " + RecordPrinter.pad("POS", 8) + RecordPrinter.pad("HAPPENED (CST)", 27) + RecordPrinter.pad("TYPE", 32) + "SUMMARY") + "\n"
        for entry in entries {
            out += "  " + RecordPrinter.pad(String(entry.position), 8) + RecordPrinter.pad(entry.time, 27) + RecordPrinter.pad(entry.type, 32) + entry.summary + "\n"
        }
        return out
    }

    static func render(_ replay: Replay) -> String {
        var out = Terminal.bold("invoice \(replay.key)") + "\n"
        for step in replay.steps {
            let late = step.late ? Terminal.red(" LATE") : ""
            out += "\n" + Terminal.bold("#\(step.position)") + "  happened \(step.time)  recorded \(step.recorded)\(late)\n"
            out += "  \(step.type)  " + Terminal.dim(step.source) + "\n"
            out += "  \(step.summary)\n"
            var seen = "  issuer: \(step.issuer)"
            if let verification = step.verification { seen += "; verification: \(verification)" }
            out += Terminal.dim(seen) + "\n"
            for (system, view) in step.systems.sorted(by: { $0.key < $1.key }) { out += Terminal.dim("  \(system): \(view)") + "\n" }
        }
        return out
    }

    static func render(_ report: MissingReport) -> String {
        var out = Terminal.bold("Missing in \(report.system)") + " (invoices issued to \(report.owner)\(report.since.map { " since \($0)" } ?? ""))\n"
        out += "  \(report.examined) issued, \(report.visible) visible, " + Terminal.red("\(report.missing) not visible") + "\n"
        for group in report.causes {
            out += "\n  " + Terminal.bold(RecordPrinter.pad(group.code.rawValue, 28)) + "\(group.count)\n"
            for example in group.examples.prefix(3) {
                out += Terminal.dim("    \(example.key)  \(example.issueDate)  \(example.summary)") + "\n"
            }
        }
        if report.missing > 0 { out += "\nAsk why for one: fapiao why KEY --system \(report.system)\n" }
        return out
    }
}
