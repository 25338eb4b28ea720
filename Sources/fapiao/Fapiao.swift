import ArgumentParser
import Foundation
import Ledger
import Logging

/// The entry point: logging set up, then the command line parsed and run.
@main
enum Main {
    static func main() async {
        CommandLog.bootstrap()
        await Fapiao.main()
    }
}

struct Fapiao: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fapiao",
        abstract: "An event-sourced ledger for Chinese VAT invoices (发票): find out when and why an invoice is missing.",
        discussion: """
            Every action on an invoice, from every system that touches it, is an immutable event in an \
            embedded LMDB ledger (a directory). No server is needed for any command.

            The ledger is --ledger PATH, or $FAPIAO_LEDGER, or ./fapiao.ledger.

            Start here:
              fapiao import events.jsonl          CloudEvents JSON Lines (docs/events.md)
              fapiao why KEY --system SYSTEM      visible there? if not, why, with proof
              fapiao why --all-missing --system beijing-finance
                                                  the morning report, grouped by cause
              fapiao replay KEY                   history, what each system saw
              fapiao show KEY                     state in every system
              fapiao list --system S --status pending_review

            The ledger itself:
              fapiao status                       head, rejections, map usage
              fapiao log --from 1 --limit 20      the global log (--format json)
              fapiao stream KEY                   one stream's events
              fapiao rejections                   appends refused, and why
              fapiao check                        verify positions and hash chain
              fapiao projections status           checkpoints and lag
              fapiao audit verify                 Merkle roots, signed heads

            Exit codes: 0 ok; 1 a check found a problem; 64 bad usage; 65 bad input (nothing recorded); \
            66 no ledger at the path; 73 map or disk full (nothing of the batch written); \
            74 storage error; 75 writer overloaded (retry).
            """,
        version: "0.1.0",
        subcommands: [
            ImportCommand.self, WhyCommand.self, ReplayCommand.self, ShowCommand.self, ListCommand.self, StatusCommand.self, LogCommand.self, StreamCommand.self,
            RejectionsCommand.self, CheckCommand.self, ProjectionsCommand.self, AuditCommand.self, ExportCommand.self, ServeCommand.self,
        ]
    )
}

/// Options every command takes.
struct LedgerOptionsGroup: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The ledger directory.", valueName: "PATH"))
    var ledger: String = ProcessInfo.processInfo.environment["FAPIAO_LEDGER"] ?? "./fapiao.ledger"

    @Option(name: .long, help: ArgumentHelp(
        "Memory map size in GiB: the most the ledger can hold until reopened with more ($FAPIAO_MAP_SIZE_GIB).",
        valueName: "GiB"))
    var mapSizeGib: Int = Int(ProcessInfo.processInfo.environment["FAPIAO_MAP_SIZE_GIB"] ?? "") ?? 64

    func ledgerOptions(readOnly: Bool) throws -> LedgerOptions {
        guard mapSizeGib > 0, mapSizeGib <= 1 << 16 else {
            throw ValidationError("--map-size-gib must be between 1 and 65536, got \(mapSizeGib)")
        }
        return LedgerOptions(mapSizeBytes: mapSizeGib << 30, readOnly: readOnly)
    }

    /// Opens the ledger, turning failures into messages that say how to fix them.
    func open(readOnly: Bool) throws -> Ledger {
        try CLIError.wrap { try Ledger.open(at: ledger, options: ledgerOptions(readOnly: readOnly)) }
    }
}

struct FormatOption: ParsableArguments {
    @Option(name: .long, help: "Output format: human or json.")
    var format: OutputFormat = .human
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case human, json
}

/// Where the ledger's, the projections' and the server's logs go: standard error, so that
/// standard output carries only results (`--format json` among them), at the level
/// `$FAPIAO_LOG_LEVEL` names (default info).
enum CommandLog {
    static let variable = "FAPIAO_LOG_LEVEL"

    static func bootstrap(environment: [String: String] = ProcessInfo.processInfo.environment) {
        var level = Logger.Level.info
        if let name = environment[variable] {
            if let named = Logger.Level(rawValue: name.lowercased()) {
                level = named
            } else {
                let levels = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
                FileHandle.standardError.write(Data("fapiao: \(variable)=\(name) is not a log level (\(levels)); logging at info\n".utf8))
            }
        }
        let chosen = level
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = chosen
            return handler
        }
    }
}
