// ledger-bench: the ledger's append and read figures, each beside the raw-LMDB ceiling
// measured in the same process on the same record bytes. docs/performance.md explains them.
//
// usage: ledger-bench [--dir DIR] [--events N] [--quick] [--check]
//   --dir DIR    keep the ledgers in DIR (the 1M-event read ledger is reused across runs);
//                without it a temporary folder is used and removed at the end
//   --events N   events of the batched-append workload (default 200,000)
//   --quick      smaller counts for a smoke run
//   --check      exit 1 when a target is missed (otherwise always 0: it is a measurement)
//   --only NAME  run one workload (batched, group or reads), for profiling; prints its details only
//   --rounds N   ledger and raw alternate in N rounds (default 5); 1 runs each in one go
import Foundation
import LMDB

struct CommandLineOptions {
    var directory: String?
    var configuration = BenchConfiguration()
    var check = false
    var only: String?

    static let usage = "usage: ledger-bench [--dir DIR] [--events N] [--rounds N] [--quick] [--check] [--only batched|group|reads]"

    static func parse(_ arguments: [String]) -> CommandLineOptions {
        var options = CommandLineOptions()
        var events: Int?
        var rounds: Int?
        var rest = arguments.dropFirst()[...]
        func fail(_ message: String) -> Never {
            FileHandle.standardError.write(Data("ledger-bench: \(message)\n\(usage)\n".utf8))
            exit(64)
        }
        while let argument = rest.popFirst() {
            switch argument {
            case "--dir":
                guard let value = rest.popFirst() else { fail("--dir needs a directory") }
                options.directory = value
            case "--events":
                guard let value = rest.popFirst(), let n = Int(value), n > 0 else { fail("--events needs a positive count") }
                events = n
            case "--rounds":
                guard let value = rest.popFirst(), let n = Int(value), n > 0 else { fail("--rounds needs a positive count") }
                rounds = n
            case "--quick": options.configuration = .quick
            case "--check": options.check = true
            case "--only":
                guard let value = rest.popFirst(), ["batched", "group", "reads"].contains(value) else {
                    fail("--only needs batched, group or reads")
                }
                options.only = value
            case "--help", "-h":
                print(usage)
                exit(0)
            default: fail("unknown argument \(argument)")
            }
        }
        if let events { options.configuration.batchedEvents = events }
        if let rounds { options.configuration.rounds = rounds }
        return options
    }
}

struct Row {
    var workload: String
    var ledger: String
    var raw: String
    var ratio: String
    var target: String
    var passed: Bool
}

// MARK: Machine

func firstLine(of path: String, matching prefix: String = "") -> String? {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
    return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.map(String.init)
}

func loadAverage() -> String {
    firstLine(of: "/proc/loadavg")?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

/// Taken at the start: the load average then says whether other work shared the machine.
func machineDescription() -> [String] {
    let cpu = firstLine(of: "/proc/cpuinfo", matching: "model name")?.split(separator: ":").last?
        .trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
    let kernel = firstLine(of: "/proc/sys/kernel/osrelease") ?? "?"
    let date = ISO8601DateFormatter().string(from: Date())
    return [
        "date:    \(date)",
        "machine: \(ProcessInfo.processInfo.activeProcessorCount) cores (\(cpu)), Linux \(kernel)",
        "LMDB:    \(Environment.libraryVersion)",
        "load:    \(loadAverage()) at start (1, 5, 15 min averages; this run adds about 1)",
    ]
}

// MARK: Report

func report(_ batched: BatchedAppendResult, configuration: BenchConfiguration, rows: inout [Row], details: inout [String]) {
    let ratio = batched.ledgerRate / batched.rawRate
    rows.append(Row(
        workload: "batched append, \(Format.grouped(configuration.batchEvents))/txn",
        ledger: Format.rate(batched.ledgerRate), raw: Format.rate(batched.rawRate),
        ratio: Format.fixed(ratio * 100, 1) + "% of raw", target: "≥ 40% of raw", passed: ratio >= 0.40))
    details.append(
        "batched append: \(Format.grouped(batched.events)) events in \(Format.grouped(batched.transactions)) transactions;"
            + " ledger \(Format.fixed(batched.ledgerSeconds, 2)) s, raw \(Format.fixed(batched.rawSeconds, 2)) s")
    let withMerges = Double(batched.events) / (batched.ledgerSeconds + batched.mergeWaitSeconds)
    details.append(
        "                index merges still running after the ledger's rounds: \(Format.fixed(batched.mergeWaitSeconds, 2)) s in all;"
            + " counting them, \(Format.rate(withMerges)) = \(Format.fixed(withMerges / batched.rawRate * 100, 1))% of raw")
    details.append(
        "                written per transaction: ledger \(Format.kibibytes(batched.ledgerWrittenBytes / batched.transactions)),"
            + " raw \(Format.kibibytes(batched.rawWrittenBytes / batched.transactions))")
    details.append(
        "                raw with the ledger's 3 puts per event (log + stream and idempotency index keys):"
            + " \(Format.rate(batched.schemaRate)), \(Format.kibibytes(batched.schemaWrittenBytes / batched.transactions)) written per transaction;"
            + " the ledger reaches \(Format.fixed(batched.ledgerRate / batched.schemaRate * 100, 0))% of it")
}

func report(_ group: GroupCommitResult, rows: inout [Row], details: inout [String]) {
    let ratio = group.ledgerRate / group.rawRate
    rows.append(Row(
        workload: "group commit, \(group.appenders) appenders",
        ledger: Format.rate(group.ledgerRate), raw: Format.rate(group.rawRate) + " (1/txn)",
        ratio: Format.fixed(ratio, 1) + "× raw", target: "≥ 10× raw", passed: ratio >= 10))
    details.append(
        "group commit:   \(Format.grouped(group.events)) events from \(group.appenders) tasks in \(Format.fixed(group.ledgerSeconds, 2)) s,"
            + " \(Format.grouped(group.commits)) transactions (mean \(Format.fixed(Double(group.events) / Double(group.commits), 1)) events each);"
            + " append latency \(group.appendLatency.summary)")
    details.append(
        "                raw: \(Format.grouped(group.rawEvents)) one-event durable transactions in \(Format.fixed(group.rawSeconds, 2)) s"
            + " (\(Format.micros(group.rawSeconds / Double(group.rawEvents) * 1e6)) per commit)")
    details.append(
        "                written per transaction: ledger \(Format.kibibytes(group.ledgerWrittenBytes / max(1, group.commits))),"
            + " raw \(Format.kibibytes(group.rawWrittenBytes / max(1, group.rawEvents)))")
}

func report(_ reads: StreamReadResult, configuration: BenchConfiguration, rows: inout [Row], details: inout [String]) {
    let targetMicros = 200.0
    rows.append(Row(
        workload: "stream read p99, \(configuration.readVersions) events",
        ledger: Format.micros(reads.ledger.p99), raw: Format.micros(reads.raw.p99),
        ratio: Format.fixed(reads.ledger.p99 / reads.raw.p99, 1) + "× raw", target: "p99 < \(Int(targetMicros)) µs",
        passed: reads.ledger.p99 < targetMicros))
    let built = reads.buildSeconds.map {
        "built in \(Format.fixed($0, 1)) s = \(Format.rate(Double(reads.events) / $0)) at \(Format.grouped(configuration.batchEvents))/txn"
    } ?? "reused"
    details.append(
        "stream reads:   \(Format.grouped(reads.events)) events in \(Format.grouped(reads.streams)) streams (\(built));"
            + " \(Format.grouped(reads.queries)) random streams after \(Format.grouped(configuration.readWarmupQueries)) warm-up reads")
    details.append("                ledger.stream():      \(reads.ledger.summary)")
    details.append("                raw seek + \(configuration.readVersions) gets:   \(reads.raw.summary)")
}

// MARK: Run

func makeTemporaryDirectory() throws -> String {
    var template = Array(((NSTemporaryDirectory() as NSString).appendingPathComponent("ledger-bench.XXXXXX")).utf8CString)
    guard let made = mkdtemp(&template) else { throw BenchFailure(description: "mkdtemp failed: errno \(errno)") }
    return String(cString: made)
}

func run(_ options: CommandLineOptions) async throws -> Bool {
    let configuration = options.configuration
    let directory: String
    if let given = options.directory {
        try FileManager.default.createDirectory(atPath: given, withIntermediateDirectories: true)
        directory = given
    } else {
        directory = try makeTemporaryDirectory()
    }
    defer {
        if options.directory == nil { try? FileManager.default.removeItem(atPath: directory) }
    }

    let machine = machineDescription()
    let runs = { (name: String) in options.only == nil || options.only == name }
    var rows: [Row] = []
    var details: [String] = []
    var meanRecordBytes: Double?
    var records = RecordBytes()
    if runs("batched") || runs("group") {
        // Alone, the group workload needs only the records of its ceiling from this one.
        var batchedConfiguration = configuration
        if !runs("batched") { batchedConfiguration.batchedEvents = max(configuration.rawSingleEvents, configuration.batchEvents) }
        let (batched, bytes) = try await runBatchedAppend(
            in: directory, configuration: batchedConfiguration, onlyRecords: !runs("batched"))
        records = bytes
        meanRecordBytes = bytes.meanBytes
        if runs("batched") { report(batched, configuration: configuration, rows: &rows, details: &details) }
    }
    if runs("group") {
        let group = try await runGroupCommit(in: directory, configuration: configuration, records: records)
        report(group, rows: &rows, details: &details)
    }
    if runs("reads") {
        let reads = try await runStreamReads(in: directory, configuration: configuration)
        report(reads, configuration: configuration, rows: &rows, details: &details)
    }

    print("fapiao ledger-bench")
    for line in machine { print(line) }
    print("         \(loadAverage()) at end")
    print("dir:     \(directory)\(options.directory == nil ? " (temporary, removed at exit)" : "")")
    if let meanRecordBytes {
        print("records: mean \(Format.fixed(meanRecordBytes, 0)) bytes stored (\(BenchEvents.dataBytes)-byte JSON data), full sync, no MDB_NOSYNC")
    }
    print("")
    let widths = [34, 20, 26, 15, 16]
    let header = ["workload", "ledger", "raw LMDB ceiling", "ratio", "target"]
    print(zip(header, widths).map { Format.padded($0, $1) }.joined() + "result")
    print(String(repeating: "-", count: widths.reduce(0, +) + 6))
    for row in rows {
        let cells = [row.workload, row.ledger, row.raw, row.ratio, row.target]
        print(zip(cells, widths).map { Format.padded($0, $1) }.joined() + (row.passed ? "PASS" : "MISS"))
    }
    print("")
    for line in details { print(line) }
    return rows.allSatisfy(\.passed)
}

let options = CommandLineOptions.parse(CommandLine.arguments)
do {
    let passed = try await run(options)
    exit(options.check && !passed ? 1 : 0)
} catch {
    FileHandle.standardError.write(Data("ledger-bench: \(error)\n".utf8))
    exit(2)
}
