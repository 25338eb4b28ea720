// audit-bench: how fast `fapiao audit verify` re-reads and checks a ledger, beside the raw
// ceiling measured in the same run on the same bytes: one SHA-256 pass over every record.
//
// usage: audit-bench [--events N] [--dir DIR] [--heads N] [--runs N] [--check]
//   --events N   events in the ledger (default 1,000,000)
//   --dir DIR    keep the ledger in DIR and reuse it when it already holds N events;
//                without it a temporary folder is used and removed at the end
//   --heads N    signed heads spread over the log (default 10)
//   --runs N     timed verifications; the best and the first are printed (default 3)
//   --check      exit 1 when verification is slower than 500,000 events/s
import Audit
import Crypto
import Foundation
import LMDB
import Ledger

struct Options {
    var events = 1_000_000
    var directory: String?
    var heads = 10
    var runs = 3
    var check = false

    static let usage = "usage: audit-bench [--events N] [--dir DIR] [--heads N] [--runs N] [--check]"

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var rest = arguments.dropFirst()[...]
        func fail(_ message: String) -> Never {
            FileHandle.standardError.write(Data("audit-bench: \(message)\n\(usage)\n".utf8))
            exit(64)
        }
        func count(_ flag: String) -> Int {
            guard let value = rest.popFirst(), let n = Int(value), n > 0 else { fail("\(flag) needs a positive count") }
            return n
        }
        while let argument = rest.popFirst() {
            switch argument {
            case "--events": options.events = count(argument)
            case "--heads": options.heads = count(argument)
            case "--runs": options.runs = count(argument)
            case "--dir":
                guard let value = rest.popFirst() else { fail("--dir needs a directory") }
                options.directory = value
            case "--check": options.check = true
            case "--help", "-h":
                print(usage)
                exit(0)
            default: fail("unknown argument \(argument)")
            }
        }
        return options
    }
}

/// Invoice-like events of about 500 stored bytes: a 20-digit key, a UUID-shaped id, ~300 bytes of JSON.
enum BenchEvents {
    static func event(_ n: Int) -> NewEvent {
        let key = "24" + String(format: "%018llu", UInt64(n) &* 2_654_435_761 % 1_000_000_000_000_000_000)
        let id = String(format: "%08x-%04x-4%03x-8%03x-%012llx", n, n & 0xffff, n & 0xfff, (n >> 12) & 0xfff, UInt64(n) &* 0x9E37_79B9)
        var json = #"{"number":"\#(key)","date":"2024-12-31","seller":{"taxId":"91310000MA1FL8XQ3B","name":"上海星河科技有限公司"},"buyer":{"taxId":"91440300MA5DC1234X","name":"深圳云帆贸易有限公司"},"amount":"\#(n % 100_000).00","tax":"\#(n % 13_000).00","rate":"0.13","remark":""#
        while json.utf8.count < 298 { json += "x" }
        json += #""}"#
        return NewEvent(
            stream: key, type: "fapiao.invoice.issued", source: "urn:fapiao:bench", id: id, time: "2024-12-31T16:59:26+08:00",
            occurredMicros: 1_735_635_566_000_000, dataContentType: "application/json", data: Array(json.utf8))
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func rate(_ events: Int, _ seconds: Double) -> String {
    let perSecond = Int(Double(events) / max(seconds, 1e-9))
    return perSecond.formatted(.number.grouping(.automatic)) + " events/s"
}

func note(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Builds (or reuses) the ledger with `events` events and `heads` signed heads.
func prepare(_ path: String, options: Options, key: AuditSigningKey) async throws {
    let ledger = try Ledger.open(at: path)
    defer { ledger.close() }
    let audit = try AuditLog(ledger: ledger)
    var head = Int(try ledger.headPosition())
    if head >= options.events, try audit.latestHead()?.treeSize == UInt64(head) {
        note("reusing \(path): \(head) events, \(try audit.signedHeads().count) signed heads")
        return
    }
    let clock = ContinuousClock()
    let started = clock.now
    let every = max(options.events / options.heads, 1)
    var treeSeconds = 0.0
    while head < options.events {
        let batch = (head + 1...min(head + 10_000, options.events)).map { AppendEntry(BenchEvents.event($0)) }
        _ = try await ledger.append(batch)
        head += batch.count
        if head % every == 0 || head == options.events {
            let signing = clock.now
            _ = try await audit.checkpoint(key: key)
            treeSeconds += seconds(clock.now - signing)
            note("  \(head) events appended, head signed")
        }
    }
    let total = seconds(clock.now - started)
    note("built \(options.events) events in \(String(format: "%.1f", total)) s; tree building and signing took \(String(format: "%.2f", treeSeconds)) s (\(rate(options.events, treeSeconds)))")
}

/// The ceiling: one SHA-256 over every record's stored bytes, one thread, the same snapshot reads.
func rawSHA256(_ ledger: Ledger) throws -> (seconds: Double, bytes: Int, records: Int) {
    let log = try ledger.table(named: "log", create: false)
    let clock = ContinuousClock()
    let started = clock.now
    var bytes = 0
    var records = 0
    var last: [UInt8] = withUnsafeBytes(of: UInt64(0).bigEndian) { Array($0) }
    var sink: UInt8 = 0
    while true {
        let chunk = try ledger.read { txn in
            try txn.withCursor(log) { cursor -> Int in
                var count = 0
                var entry = try cursor.seek(atLeast: last)
                if entry != nil && records > 0 { entry = try cursor.next() }  // `last` was hashed already
                while let current = entry, count < 50_000 {
                    var hasher = SHA256()
                    hasher.update(bufferPointer: current.value)
                    sink ^= hasher.finalize().withUnsafeBytes { $0[0] }
                    bytes += current.value.count
                    count += 1
                    last = Array(current.key)
                    entry = try cursor.next()
                }
                return count
            }
        }
        records += chunk
        if chunk == 0 { break }
    }
    if sink == 0x5A { note("") }  // keep the hashes from being optimised away
    return (seconds(clock.now - started), bytes, records)
}

let options = Options.parse(CommandLine.arguments)
let root = options.directory ?? NSTemporaryDirectory() + "audit-bench-\(UUID().uuidString)"
try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
defer { if options.directory == nil { try? FileManager.default.removeItem(atPath: root) } }
let path = root + "/ledger"
let key = AuditSigningKey.generate()

let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n")
    .first { $0.hasPrefix("model name") }?.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
note("audit-bench: \(options.events) events, \(ProcessInfo.processInfo.activeProcessorCount) cores (\(cpu)), \(Environment.libraryVersion); load \(load) at start")
try await prepare(path, options: options, key: key)

let ledger = try Ledger.open(at: path, options: LedgerOptions(readOnly: true))
let audit = try AuditLog(ledger: ledger)
var timings: [Double] = []
var report: AuditReport?
for _ in 0..<options.runs {
    let clock = ContinuousClock()
    let started = clock.now
    report = try AuditVerifier(audit: audit).verify()
    timings.append(seconds(clock.now - started))
}
let raw = try rawSHA256(ledger)
let chainClock = ContinuousClock()
let chainStarted = chainClock.now
_ = try ledger.verifyChain()
let chainSeconds = seconds(chainClock.now - chainStarted)
guard let report, report.intact else {
    print("audit verify found problems: \(report?.problems.prefix(3).map(\.message) ?? [])")
    exit(1)
}
let events = Int(report.recordsChecked)
let best = timings.min()!
let verifyRate = Double(events) / best
print("")
print("records:        \(raw.records), \(raw.bytes / max(raw.records, 1)) bytes each on average, \(raw.bytes >> 20) MiB")
print("signed heads:   \(report.headsChecked), every root recomputed and every signature checked")
print("audit verify:   \(rate(events, best)) best of \(options.runs) (\(String(format: "%.3f", best)) s); first run \(rate(events, timings[0]))")
print("                per record: record hash + leaf hash + chain link + stored-leaf compare + frontier; chain and Merkle passes on two threads")
print("chain alone:    \(rate(Int(report.recordsChecked), chainSeconds)) (Ledger.verifyChain, the pass that runs beside the Merkle pass)")
print("raw SHA-256:    \(rate(raw.records, raw.seconds)) (\(String(format: "%.3f", raw.seconds)) s, \(Int(Double(raw.bytes) / raw.seconds / 1_048_576)) MiB/s): one pass, one thread, the same bytes read the same way")
print("ratio:          audit verify runs at \(String(format: "%.0f", verifyRate / (Double(raw.records) / raw.seconds) * 100))% of one raw SHA-256 pass (it hashes every record twice)")
print("target:         ≥ 500,000 events/s: \(verifyRate >= 500_000 ? "met" : "MISSED")")
ledger.close()
if options.check && verifyRate < 500_000 { exit(1) }
