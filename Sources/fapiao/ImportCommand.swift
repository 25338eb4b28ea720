import ArgumentParser
import FapiaoDomain
import Foundation
import Ingestion
import Ledger

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Append CloudEvents JSON Lines to the ledger: all or nothing, idempotent.",
        discussion: """
            Every line is validated first (JSON, the CloudEvents envelope, the event's data; see \
            docs/events.md). If any line is wrong, the whole file is refused: each offending line is \
            printed with the attribute and what was expected, nothing is recorded, and the exit code is 65.

            Importing the same file again records nothing new: (source, id) is the idempotency key. \
            The same (source, id) with different content is refused.

            An invoice that breaks a rule (a taxpayer ID failing its check digit, totals beyond the \
            tolerances) is a fact: it is recorded as sent, with a fapiao.ledger.flagged event beside it.

            Examples:
              fapiao import events.jsonl
              generate-events | fapiao import -
              fapiao import events.jsonl --format json
            """)

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption
    @Argument(help: ArgumentHelp("CloudEvents JSON Lines file, or - for standard input.", valueName: "FILE"))
    var file: String

    func run() async throws {
        let ledger = try ledgerOptions.open(readOnly: false)
        defer { ledger.close() }
        let bars = PhasedProgressBars()
        do {
            let summary = try await Importer(ledger: ledger).importFile(atPath: file) { progress in
                bars.show(progress.phase == .validating ? "validating (bytes)" : "appending (events)", done: progress.done, total: progress.total == 0 ? nil : progress.total)
            }
            bars.finish()
            // Then the projections catch up, in large chunks, before the command returns (the
            // writer serves one thing at a time: following the import would slow both).
            let engine = try await ProjectionAccess.writer(ledger)
            engine.stop()
            print(summary)
        } catch let error as ImportError {
            bars.finish()
            try report(error)
        }
    }

    private func print(_ summary: ImportSummary) {
        switch output.format {
        case .json:
            try? JSONOutput.print(summary)
        case .human:
            var text = "\(Terminal.green("imported")) \(summary.file): \(summary.events) events, \(summary.new) new, \(summary.alreadyPresent) already present"
            if let first = summary.firstPosition, let last = summary.lastPosition { text += " (positions \(first)–\(last))" }
            text += "\n"
            if summary.flagged > 0 {
                let rules = summary.flaggedByRule.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
                text += "\(summary.flagged) invoices recorded with rule findings, flagged (fapiao.ledger.flagged): \(rules)\n"
            }
            Terminal.write(text)
        }
    }

    private func report(_ error: ImportError) throws -> Never {
        switch error {
        case let .refused(refusal):
            switch output.format {
            case .json:
                let problems = refusal.problems.map {
                    ProblemJSON(line: $0.lineNumber, attribute: $0.attribute, expected: $0.expected, got: $0.got)
                }
                try? JSONOutput.print(RefusalJSON(refused: true, recorded: 0, problemCount: refusal.problemCount, offendingLines: refusal.offendingLines, problems: problems))
            case .human:
                var text = refusal.problems.map(\.description).joined(separator: "\n") + "\n"
                if refusal.problemCount > refusal.problems.count {
                    text += "… and \(refusal.problemCount - refusal.problems.count) more problems\n"
                }
                FileHandle.standardError.write(Data(text.utf8))
            }
            Terminal.error("\(file) refused: \(refusal.problemCount) problem(s) on \(refusal.offendingLines) of \(refusal.lines) line(s). Nothing was recorded; fix the lines above and import again.")
            throw ExitCode(ExitCodes.dataError)
        case let .appendFailed(ledgerError, _):
            Terminal.error(error.description)
            throw ExitCode(CLIError.exitCode(for: ledgerError))
        case .unreadable:
            Terminal.error(error.description)
            throw ExitCode(ExitCodes.noInput)
        }
    }

    struct ProblemJSON: Codable {
        var line: Int
        var attribute: String
        var expected: String
        var got: String?
    }

    struct RefusalJSON: Codable {
        var refused: Bool
        var recorded: Int
        var problemCount: Int
        var offendingLines: Int
        var problems: [ProblemJSON]
    }
}

