import ArgumentParser
import Audit
import FapiaoDomain
import Forensics
import Foundation
import LMDB
import Ledger
import Projections

/// Opening the projections of a ledger for the CLI.
enum ProjectionAccess {
    /// Read-only: the projections as the last writer left them. Says so when they lag.
    static func reader(_ ledger: Ledger) throws -> ProjectionEngine {
        do {
            let engine = try ProjectionEngine(ledger: ledger, projections: BuiltInProjections.all)
            let stale = try engine.staleProjections()
            if !stale.isEmpty {
                Terminal.error("projection\(stale.count == 1 ? "" : "s") \(stale.joined(separator: ", ")) in this ledger \(stale.count == 1 ? "was" : "were") built by another version of fapiao. Rebuild with `fapiao projections catch-up --ledger \(ledger.path)` (it rebuilds what changed) when no other process writes.")
                throw ExitCode(ExitCodes.ioError)
            }
            if let lagging = try engine.status().first(where: { $0.lagEvents > 0 }) {
                Terminal.note("note: projection \(lagging.name) is \(lagging.lagEvents) events behind the log (checkpoint \(lagging.checkpoint), head \(lagging.head)); run `fapiao projections catch-up` when no other process writes.")
            }
            return engine
        } catch LMDBError.notFound {
            Terminal.error("this ledger has no projections yet. Build them with `fapiao projections rebuild --ledger \(ledger.path)`.")
            throw ExitCode(ExitCodes.noInput)
        }
    }

    /// Writable: created if missing, caught up with the log before returning.
    static func writer(_ ledger: Ledger, mode: ProjectionEngine.Mode = .async, rebuildLimits: RebuildLimits = RebuildLimits()) async throws -> ProjectionEngine {
        let engine = try ProjectionEngine(ledger: ledger, projections: BuiltInProjections.all, mode: mode, rebuildLimits: rebuildLimits)
        try await engine.start()
        return engine
    }
}

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show an invoice's current state: issuer, verification and every receiving system.",
        discussion: """
            KEY is taken as people type it: spaces, full-width digits, hyphens, a legacy CODE-NUMBER \
            pair in either order. If the key is not in the ledger, near misses are suggested. With \
            --at, --known-at or --position, the state is folded from the log as of then; with \
            --known-at, the first signed tree head after that moment is named (JSON: {state, signedHead}).

            Examples:
              fapiao show 24112000000015301234
              fapiao show "2411 2000 0000 1530 1234" --format json
            """)

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption
    @OptionGroup var time: TimeFlags
    @Argument(help: "The invoice key, as typed.") var key: String

    func run() throws {
        let ledger = try ledgerOptions.open(readOnly: true)
        let cutoff = try time.cutoff()
        if !cutoff.isNow {
            // As of a moment: folded from the log itself, not the (current) projection.
            guard let (state, systems) = try CLIError.wrap({ try Forensics(ledger: ledger, projections: nil).state(typedKey: key, cutoff: cutoff) }) else {
                Terminal.error("invoice \(KeyInput.canonical(key)) has no event in the ledger as of the time asked.")
                throw ExitCode(ExitCodes.problemFound)
            }
            // What the ledger said then is provable with the first signed head at or after it.
            let head = cutoff.knownAt.flatMap { knownAt in try? AuditLog(ledger: ledger).firstHead(signedAtOrAfter: knownAt) }
            switch output.format {
            case .json:
                if cutoff.knownAt != nil { try JSONOutput.print(KnownAtAnswer(state: state, signedHead: head)) } else { try JSONOutput.print(state) }
            case .human:
                Terminal.write(InvoiceStateText.render(state, systems: systems))
                if cutoff.knownAt != nil {
                    if let head {
                        Terminal.write(Terminal.dim("  covered by signed tree head \(head.treeSize) (root \(head.rootHash.prefix(16))…, signed \(head.ledgerTime)); prove with `fapiao audit prove \(state.key)`") + "\n")
                    } else {
                        Terminal.write(Terminal.dim("  no signed tree head was made after that moment yet (fapiao audit checkpoint)") + "\n")
                    }
                }
            }
            return
        }
        let engine = try ProjectionAccess.reader(ledger)
        let canonical = KeyInput.canonical(key)
        let (state, systems, suggestions) = try engine.read { snapshot in
            let state = try InvoiceStateProjection.row(canonical, in: snapshot)
            let systems = try (state?.systems.keys.sorted() ?? []).compactMap { try SystemsProjection.row($0, in: snapshot) }
            let suggestions = state == nil ? try InvoiceQueries.nearMisses(of: key, in: snapshot) : []
            return (state, systems, suggestions)
        }
        guard let state else {
            Terminal.error("invoice \(canonical) is not in the ledger.")
            if !suggestions.isEmpty {
                Terminal.note("did you mean:\n" + suggestions.map { "  \($0.key)  (\($0.difference))" }.joined(separator: "\n"))
            }
            throw ExitCode(ExitCodes.problemFound)
        }
        switch output.format {
        case .json: try JSONOutput.print(state)
        case .human: Terminal.write(InvoiceStateText.render(state, systems: systems))
        }
    }
}

/// `show --known-at --format json`: the state then, and the signed head that covers it.
struct KnownAtAnswer: Encodable {
    var state: InvoiceState
    var signedHead: SignedTreeHead?
}

enum KeyInput {
    /// The canonical key for what was typed, or the text itself when it does not parse.
    static func canonical(_ typed: String) -> String {
        (try? InvoiceKey.parse(typed).get())?.description ?? typed
    }
}

enum InvoiceStateText {
    static func render(_ state: InvoiceState, systems: [SystemRow]) -> String {
        var lines: [String] = []
        lines.append(Terminal.bold("invoice \(state.key)"))
        if let invoice = state.invoice {
            lines.append("  issued      \(invoice.issuedAt)  (issue date \(invoice.issueDate) CST)  \(invoice.kind)")
            lines.append("  seller      \(invoice.seller.name)  \(invoice.seller.taxId ?? "-")")
            lines.append("  buyer       \(invoice.buyer.name)  \(invoice.buyer.taxId ?? "-")")
            lines.append("  amount      \(invoice.totalAmount) + tax \(invoice.totalTax) = \(invoice.totalWithTax)  (\(invoice.lineCount) line\(invoice.lineCount == 1 ? "" : "s"))")
        }
        var issuer = "  issuer      \(state.issuer.status)"
        if let since = state.issuer.since { issuer += " since \(cst(since))" }
        if let reason = state.issuer.issueFailedReason { issuer += ": \(reason)" }
        if let by = state.issuer.voidedBy { issuer += " by \(by): \(state.issuer.voidReason ?? "")" }
        lines.append(issuer)
        if let red = state.redLetter {
            lines.append("  red letter  forms \(red.forms.map { "\($0.id) (\($0.confirmedAt == nil ? "unconfirmed" : "confirmed"))" }.joined(separator: ", ")); reversed \(red.reversedAmount)")
        }
        if let verification = state.verification {
            lines.append("  verified    \(verification.result) by \(verification.provider) at \(cst(verification.at)) (position \(verification.position))")
        }
        for (name, view) in state.systems.sorted(by: { $0.key < $1.key }) {
            let row = systems.first { $0.system == name }
            let status = state.viewStatus(in: name, requiresReview: row?.requiresReview ?? false)?.rawValue ?? "not in the system"
            lines.append(Terminal.bold("  \(name)") + "  view status: \(status)")
            var delivery = "    delivery  \(view.delivery), \(view.deliveryAttempts) attempt\(view.deliveryAttempts == 1 ? "" : "s")"
            if let reason = view.lastFailureReason { delivery += "; last failure \(reason): \(view.lastFailureDetail ?? "")" }
            lines.append(delivery)
            lines.append("    receipt   \(view.receipt)" + (view.receiptRule.map { " (rule \($0): \(view.receiptDetail ?? ""))" } ?? ""))
            lines.append("    review    \(view.review)" + (view.reviewBy.map { " by \($0)" } ?? "") + (view.reviewReason.map { ": \($0)" } ?? ""))
            lines.append(Terminal.dim("    events    \(view.positions.map(String.init).joined(separator: ", "))"))
        }
        if !state.flags.isEmpty { lines.append(Terminal.red("  flags       \(state.flags.joined(separator: ", "))")) }
        lines.append(Terminal.dim("  lineage     positions \(state.lineage.map(String.init).joined(separator: ", "))"))
        return lines.joined(separator: "\n") + "\n"
    }
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List a receiving system's invoices by status, issue date and name, from the status views.",
        discussion: """
            Dates are issue dates in China Standard Time, inclusive. Names match after normalisation \
            (full-width/half-width brackets and letters, spaces, case).

            Examples:
              fapiao list --system beijing-finance --status pending_review
              fapiao list --system beijing-finance --issued-from 2024-12-01 \\
                --issued-to 2024-12-31 --buyer-name 北京某某科技有限公司
            """)

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption
    @Option(help: "The receiving system.") var system: String
    @Option(parsing: .upToNextOption, help: "Statuses: pending_review, approved, review_rejected, voided, red_lettered (default: all).")
    var status: [String] = []
    @Option(help: "Buyer name.") var buyerName: String?
    @Option(help: "Seller name.") var sellerName: String?
    @Option(help: "First issue date, YYYY-MM-DD (CST).") var issuedFrom: String?
    @Option(help: "Last issue date, YYYY-MM-DD (CST), inclusive.") var issuedTo: String?
    @Option(help: "Most invoices to list.") var limit: Int = 100
    @Option(help: "Continue after this cursor (printed at the end of a full page).") var after: String?

    func run() throws {
        let criteria = try makeCriteria()
        let ledger = try ledgerOptions.open(readOnly: true)
        let engine = try ProjectionAccess.reader(ledger)
        let page = try engine.read { snapshot in try InvoiceQueries.list(criteria, in: snapshot) }
        switch output.format {
        case .json: try JSONOutput.print(page)
        case .human:
            if page.items.isEmpty { Terminal.note("no invoices match in \(system)"); return }
            var text = Terminal.dim(RecordPrinter.pad("KEY", 24) + RecordPrinter.pad("STATUS", 16) + RecordPrinter.pad("ISSUED", 12) + RecordPrinter.pad("TOTAL", 12) + "SELLER → BUYER") + "\n"
            for item in page.items {
                text += RecordPrinter.pad(item.key, 24) + RecordPrinter.pad(item.status, 16) + RecordPrinter.pad(item.issueDate, 12)
                    + RecordPrinter.pad(item.totalWithTax ?? "", 12) + "\(item.sellerName ?? "?") → \(item.buyerName ?? "?")\n"
            }
            if let next = page.next { text += Terminal.dim("more: --after '\(next.replacingOccurrences(of: "\u{0}", with: "\\0"))'") + "\n" }
            Terminal.write(text)
        }
    }

    func makeCriteria() throws -> InvoiceListCriteria {
        let statuses = try status.flatMap { $0.split(separator: ",").map(String.init) }.map { text -> VisibleStatus in
            guard let status = VisibleStatus(rawValue: text) else {
                throw ValidationError("unknown status \(text); use one of \(VisibleStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return status
        }
        func date(_ text: String?, _ flag: String) throws -> CalendarDate? {
            guard let text else { return nil }
            guard let date = try? CalendarDate.parse(text).get() else { throw ValidationError("\(flag) must be a date like 2024-12-31, got \(text)") }
            return date
        }
        guard (1...InvoiceListCriteria.limitMax).contains(limit) else {
            throw ValidationError("--limit must be between 1 and \(InvoiceListCriteria.limitMax)")
        }
        return InvoiceListCriteria(
            system: system, statuses: statuses.isEmpty ? nil : statuses, buyerName: buyerName, sellerName: sellerName,
            issuedFrom: try date(issuedFrom, "--issued-from"), issuedTo: try date(issuedTo, "--issued-to"), limit: limit,
            after: after?.replacingOccurrences(of: "\\0", with: "\u{0}"))
    }
}

struct ProjectionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projections",
        abstract: "Projection status, catch-up, rebuild and verification.",
        subcommands: [ProjectionsStatus.self, ProjectionsCatchUp.self, ProjectionsRebuild.self, ProjectionsVerify.self])
}

struct ProjectionsStatus: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Each projection's checkpoint and lag, in events and in time.")
    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption

    func run() throws {
        let ledger = try ledgerOptions.open(readOnly: true)
        let statuses: [ProjectionEngine.Status]
        do {
            statuses = try ProjectionEngine(ledger: ledger, projections: BuiltInProjections.all).status()
        } catch LMDBError.notFound {
            Terminal.error("this ledger has no projections yet. Build them with `fapiao projections rebuild`.")
            throw ExitCode(ExitCodes.noInput)
        }
        switch output.format {
        case .json: try JSONOutput.print(statuses)
        case .human:
            var text = Terminal.dim(RecordPrinter.pad("PROJECTION", 16) + RecordPrinter.pad("CHECKPOINT", 12) + RecordPrinter.pad("HEAD", 12) + RecordPrinter.pad("LAG", 10) + RecordPrinter.pad("LAG TIME", 12) + "GENERATION") + "\n"
            for status in statuses {
                text += RecordPrinter.pad(status.name, 16) + RecordPrinter.pad(String(status.checkpoint), 12) + RecordPrinter.pad(String(status.head), 12)
                    + RecordPrinter.pad(String(status.lagEvents), 10) + RecordPrinter.pad(status.lagEvents == 0 ? "0" : "\(status.lagMilliseconds) ms", 12)
                    + "\(status.generation) v\(status.version)" + (status.rebuilding ? " (rebuild in progress)" : "") + "\n"
            }
            Terminal.write(text)
        }
    }
}

struct ProjectionsCatchUp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "catch-up", abstract: "Apply every record after each projection's checkpoint.")
    @OptionGroup var ledgerOptions: LedgerOptionsGroup

    func run() async throws {
        let ledger = try ledgerOptions.open(readOnly: false)
        defer { ledger.close() }
        let engine = try await ProjectionAccess.writer(ledger)
        engine.stop()
        Terminal.write("projections caught up with position \(try ledger.headPosition())\n")
    }
}

struct ProjectionsRebuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Rebuild projections from the log into fresh tables and swap them in atomically.",
        discussion: "Readers keep reading the old tables until the swap. Without NAME, every projection is rebuilt.")
    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var memory: RebuildMemoryOption
    @Argument(help: "Projections to rebuild (default: all).") var names: [String] = []

    func run() async throws {
        let ledger = try ledgerOptions.open(readOnly: false)
        defer { ledger.close() }
        let engine = try await ProjectionAccess.writer(ledger, rebuildLimits: memory.limits)
        let bars = PhasedProgressBars()
        let started = Date()
        do {
            defer { bars.finish() }
            try await engine.rebuild(names) { bars.show(rebuild: $0, label: "rebuilding (events)") }
        } catch let error as ProjectionError {
            Terminal.error("\(error)")
            throw ExitCode.validationFailure
        }
        engine.stop()
        let head = try ledger.headPosition()
        let seconds = Date().timeIntervalSince(started)
        Terminal.write("rebuilt \(names.isEmpty ? "all projections" : names.joined(separator: ", ")) through position \(head) in \(String(format: "%.2f", seconds)) s (\(Int(Double(head) / max(seconds, 0.001))) events/s)\n")
    }
}

struct ProjectionsVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Rebuild projections into scratch tables and compare them byte for byte with the maintained ones.",
        discussion: "Exits 1 when any projection differs from a rebuild: a bug in a fold, or tampering with the tables.")
    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var memory: RebuildMemoryOption
    @OptionGroup var output: FormatOption
    @Argument(help: "Projections to verify (default: all).") var names: [String] = []

    func run() async throws {
        let ledger = try ledgerOptions.open(readOnly: false)
        defer { ledger.close() }
        let engine = try await ProjectionAccess.writer(ledger, rebuildLimits: memory.limits)
        let bars = PhasedProgressBars()
        let results: [VerifyResult]
        do {
            defer { bars.finish() }
            results = try await engine.verify(names) { bars.show(rebuild: $0, label: "rebuilding to compare (events)") }
        }
        engine.stop()
        switch output.format {
        case .json: try JSONOutput.print(results)
        case .human:
            for result in results {
                if result.identical {
                    Terminal.write("\(Terminal.green("identical")) \(result.name): \(result.rows) rows at checkpoint \(result.checkpoint)\n")
                } else {
                    Terminal.write("\(Terminal.red("DIFFERS")) \(result.name) at checkpoint \(result.checkpoint): \(result.firstDifference ?? "")\n")
                }
            }
        }
        if results.contains(where: { !$0.identical }) { throw ExitCode(ExitCodes.problemFound) }
    }
}

/// How much memory a rebuild's rows may fill before they are written out.
struct RebuildMemoryOption: ParsableArguments {
    @Option(
        name: .customLong("memory-gib"),
        help: ArgumentHelp(
            "Memory in GiB the rebuilt rows may fill before they are written out (default: a quarter of this machine's, 1 to 8).",
            discussion: "Rows that fit are written once, sorted, into empty tables; past it they are written out as the rebuild goes, which is slower.",
            valueName: "GiB"))
    var gib: Double?

    mutating func validate() throws {
        if let gib, !(gib >= 0.125 && gib <= 1024) {
            throw ValidationError("--memory-gib must be between 0.125 and 1024 (got \(gib))")
        }
    }

    var limits: RebuildLimits {
        guard let gib else { return RebuildLimits() }
        return RebuildLimits(bufferBytes: Int(gib * Double(1 << 30)))
    }
}

extension PhasedProgressBars {
    /// A rebuild's records folded, then its rows written.
    func show(rebuild progress: RebuildProgress, label: String) {
        switch progress.phase {
        case .folding: show(label, done: progress.applied, total: progress.total)
        case .writing: show("writing (rows)", done: UInt64(progress.rowsWritten), total: UInt64(progress.rowsTotal))
        }
    }
}
