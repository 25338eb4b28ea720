import ArgumentParser
import Foundation
import LMDB
import Ledger

/// China Standard Time, the clock invoices are issued on.
let chinaStandardTimeOffsetSeconds = 8 * 3600

func cst(_ micros: Int64) -> String {
    CloudEventRendering.formatRFC3339(micros: micros, offsetSeconds: chinaStandardTimeOffsetSeconds)
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the ledger's head position, size and how full its map is.")

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption

    struct Status: Codable {
        var path: String
        var headPosition: UInt64
        var rejections: UInt64
        var mapSizeBytes: Int
        var usedBytes: Int
        var mapUsedPercent: Double
        var readersUsed: Int
        var lmdbVersion: String
    }

    func run() throws {
        let ledger = try ledgerOptions.open(readOnly: true)
        let status = try CLIError.wrap { () throws -> Status in
            let usage = ledger.storageUsage()
            let lastRejection = try ledger.rejectionCount()
            return Status(
                path: ledger.path, headPosition: try ledger.headPosition(), rejections: lastRejection,
                mapSizeBytes: usage.mapSizeBytes, usedBytes: usage.usedBytes,
                mapUsedPercent: (Double(usage.usedBytes) / Double(usage.mapSizeBytes) * 10_000).rounded() / 100,
                readersUsed: usage.readersUsed, lmdbVersion: Environment.libraryVersion)
        }
        switch output.format {
        case .json: try JSONOutput.print(status)
        case .human:
            Terminal.write("""
                ledger      \(status.path)
                events      \(status.headPosition) (head position)
                rejections  \(status.rejections) refused appends kept as facts (fapiao rejections)
                storage     \(ByteCount.human(status.usedBytes)) used of a \(ByteCount.human(status.mapSizeBytes)) map (\(status.mapUsedPercent)%)
                readers     \(status.readersUsed) reader slots in use
                lmdb        \(status.lmdbVersion)

                """)
        }
    }
}

struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Print the global log from a position.",
        discussion: "Human output is one line per event; --format json prints CloudEvents JSON Lines with the ledger's extension attributes (ledgerposition, ledgertime, ledgerhash, ledgerprevhash).")

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption
    @Option(help: "First position to print (1-based).") var from: UInt64 = 1
    @Option(help: "Most events to print.") var limit: Int = 100

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be at least 1, got \(limit)") }
    }

    func run() throws {
        let ledger = try ledgerOptions.open(readOnly: true)
        try RecordPrinter.print(format: output.format, limit: limit) { from, chunk in
            try CLIError.wrap { try ledger.recordsWithHashes(from: from, limit: chunk) }
        } start: { from }
    }
}

struct StreamCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Print the events of one stream (an invoice key, system/<id> or system/<id>/user/<id>).")

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption
    @Argument(help: "The stream (CloudEvents subject), exactly as stored.") var stream: String
    @Option(help: "First stream version to print (1-based).") var fromVersion: UInt64 = 1
    @Option(help: "Most events to print.") var limit: Int = 1000

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be at least 1, got \(limit)") }
        guard fromVersion > 0 else { throw ValidationError("--from-version starts at 1 (the stream's first event)") }
    }

    func run() throws {
        let ledger = try ledgerOptions.open(readOnly: true)
        let records = try CLIError.wrap { try ledger.stream(stream, fromVersion: fromVersion, limit: limit) }
        if records.isEmpty && output.format == .human {
            Terminal.note("no events in stream \(stream) from version \(fromVersion)")
            throw ExitCode(ExitCodes.problemFound)
        }
        let withHashes = try records.map { record -> (record: Record, hash: [UInt8]) in
            let own = try CLIError.wrap { try ledger.recordsWithHashes(from: record.position, limit: 1) }
            return (record, own.first?.hash ?? [])
        }
        RecordPrinter.write(withHashes, format: output.format, header: true)
    }
}

struct RejectionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rejections",
        abstract: "Print appends the ledger refused (failed expectations, idempotency conflicts, invalid events).")

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption
    @Option(help: "Only rejections of requests that named this stream.") var stream: String?
    @Option(help: "Most rejections to print.") var limit: Int = 100

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be at least 1, got \(limit)") }
    }

    func run() throws {
        let ledger = try ledgerOptions.open(readOnly: true)
        let rejections = try CLIError.wrap {
            if let stream { return try ledger.rejections(forStream: stream, limit: limit) }
            return try ledger.rejections(from: 1, limit: limit)
        }
        switch output.format {
        case .json:
            for rejection in rejections { try JSONOutput.print(rejection, pretty: false) }
        case .human:
            if rejections.isEmpty { Terminal.note("no rejections"); return }
            var text = ""
            for r in rejections {
                text += "\(Terminal.bold("#\(r.sequence)")) \(cst(r.recordedMicros)) \(r.reason.rawValue)  \(r.stream)  \(r.source) \(r.id)\n    \(r.message)\n"
            }
            Terminal.write(text)
        }
    }
}

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Re-read every record and verify positions and the hash chain.",
        discussion: "Exits 1 and names the first bad position when a record was altered, removed or reordered.")

    @OptionGroup var ledgerOptions: LedgerOptionsGroup
    @OptionGroup var output: FormatOption
    @Option(help: "First position to check.") var from: UInt64 = 1

    struct Answer: Codable {
        var intact: Bool
        var checked: UInt64
        var lastPosition: UInt64
        var headHash: String
        var problemPosition: UInt64?
        var problem: String?
    }

    func run() throws {
        let ledger = try ledgerOptions.open(readOnly: true)
        let head = try CLIError.wrap { try ledger.headPosition() }
        let bar = ProgressBar("checking", total: head >= from ? head - from + 1 : 0)
        let report = try CLIError.wrap { try ledger.verifyChain(from: max(from, 1)) { bar.update($0 - from + 1) } }
        bar.finish(report.checked)
        let answer = Answer(
            intact: report.isIntact, checked: report.checked, lastPosition: report.lastPosition,
            headHash: report.lastHash.map { String(format: "%02x", $0) }.joined(),
            problemPosition: report.problem?.position, problem: report.problem?.description)
        switch output.format {
        case .json: try JSONOutput.print(answer)
        case .human:
            if let problem = report.problem {
                Terminal.write("\(Terminal.red("TAMPERED or CORRUPT")) at position \(problem.position): \(problem)\n")
            } else {
                Terminal.write("\(Terminal.green("intact")): \(report.checked) records, positions gapless, hash chain verified; head \(report.lastPosition) hash \(answer.headHash)\n")
            }
        }
        if !report.isIntact { throw ExitCode(ExitCodes.problemFound) }
    }
}

/// Prints records as aligned human lines or CloudEvents JSON Lines.
enum RecordPrinter {
    static let chunkRecords = 1000

    static func print(
        format: OutputFormat, limit: Int, read: (UInt64, Int) throws -> [(record: Record, hash: [UInt8])],
        start: () -> UInt64
    ) throws {
        var next = start()
        var remaining = limit
        var first = true
        while remaining > 0 {
            let chunk = try read(next, min(remaining, chunkRecords))
            if chunk.isEmpty { break }
            write(chunk, format: format, header: first)
            first = false
            remaining -= chunk.count
            next = chunk.last!.record.position + 1
        }
    }

    static func write(_ records: [(record: Record, hash: [UInt8])], format: OutputFormat, header: Bool) {
        switch format {
        case .json:
            var out = [UInt8]()
            for (record, hash) in records {
                out.append(contentsOf: CloudEventRendering.jsonLine(record, hash: hash))
                out.append(0x0A)
            }
            Terminal.write(bytes: out)
        case .human:
            var text = header ? Terminal.dim(pad("POSITION", 9) + pad("OCCURRED (CST)", 26) + pad("TYPE", 34) + pad("SUBJECT", 24) + "SOURCE / ID") + "\n" : ""
            for (record, _) in records {
                text += pad(String(record.position), 9) + pad(cst(record.occurredMicros), 26) + pad(record.type, 34)
                    + pad(record.stream, 24) + record.source + " " + record.id + "\n"
            }
            Terminal.write(text)
        }
    }

    static func pad(_ text: String, _ width: Int) -> String {
        let count = text.count
        return count >= width ? text + " " : text + String(repeating: " ", count: width - count)
    }
}

enum JSONOutput {
    /// `sortedKeys: false` keeps the order the type encodes (the documented field order).
    static func print<T: Encodable>(_ value: T, pretty: Bool = true, sortedKeys: Bool = true) throws {
        let encoder = JSONEncoder()
        var formatting: JSONEncoder.OutputFormatting = [.withoutEscapingSlashes]
        if pretty { formatting.insert(.prettyPrinted) }
        if sortedKeys { formatting.insert(.sortedKeys) }
        encoder.outputFormatting = formatting
        var data = try encoder.encode(value)
        data.append(0x0A)
        FileHandle.standardOutput.write(data)
    }
}

enum ByteCount {
    static func human(_ bytes: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f ", value) + units[unit]
    }
}
