// import-bench: how fast `fapiao import` turns a CloudEvents JSON Lines file into ledger
// records, and where the time goes.
//
//     swift build -c release --product import-bench --scratch-path .build-importbench
//     .build-importbench/release/import-bench [--events N] [--dir DIR] [--keep]
//
// 1. Generates a realistic file of N events (default 1,000,000): invoices issued with 1 to 3
//    lines, valid USCCs and half-up tax, then delivered (some attempts fail), received and
//    reviewed, interleaved across ~1,000 invoices in flight; a few system and user events.
// 2. The raw ceiling: `CloudEventParser.parse` over every line, nothing appended (and the JSON
//    syntax pass alone, beneath it).
// 3. Imports the file with `Importer` into a fresh ledger, in this process: the validation
//    pass (parse, idempotency checks, spool), the append pass (spool → group-commit writer) and
//    end to end, with the peak RSS of each phase (VmHWM, reset between phases).
// 4. Imports the same file again: every event already present.
//
// It is a measurement: it prints figures and exits 0 whatever they are (1 on an error).
import FapiaoDomain
import Foundation
import Ingestion
import Ledger
import Synchronization

// MARK: Arguments

struct Arguments {
    var events = 1_000_000
    var dir: String?
    var keep = false
    /// Only generate and import once: for profiling (`perf record -g import-bench --only-import`).
    var onlyImport = false

    static let usage = "usage: import-bench [--events N (default 1000000)] [--dir DIR] [--keep] [--only-import]"

    init(_ arguments: [String]) {
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            switch argument {
            case "--events":
                guard let text = rest.popFirst(), let value = Int(text.replacingOccurrences(of: "_", with: "")), value > 0 else { Self.fail() }
                events = value
            case "--dir":
                guard let value = rest.popFirst() else { Self.fail() }
                dir = value
            case "--keep": keep = true
            case "--only-import": onlyImport = true
            case "-h", "--help":
                print(Self.usage)
                exit(0)
            default: Self.fail()
            }
        }
    }

    static func fail() -> Never {
        FileHandle.standardError.write(Data((usage + "\n").utf8))
        exit(64)
    }
}

// MARK: Measuring

enum Monotonic {
    static func nanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    static func seconds(since started: UInt64) -> Double { Double(nanoseconds() - started) / 1e9 }
}

/// Resident memory from /proc/self/status. The peak (VmHWM) can be reset by writing 5 to
/// /proc/self/clear_refs, so each phase reports its own peak.
enum Memory {
    static func field(_ name: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            return (Int(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ")[0]) ?? 0) * 1024
        }
        return 0
    }

    static var peakBytes: Int { field("VmHWM") }
    static var anonymousBytes: Int { field("RssAnon") }

    static func resetPeak() {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return }
        _ = write(fd, "5", 1)
        close(fd)
    }
}

/// The kernel keeps no peak of anonymous memory alone (VmHWM also counts the pages of
/// LMDB's memory-mapped file that were touched, which are page cache, not heap), so a thread
/// samples RssAnon every 5 ms.
final class AnonymousPeak: @unchecked Sendable {
    private let lock = NSLock()
    private var peak = 0
    private var running = true

    init() {
        let thread = Thread { [self] in
            while true {
                let now = Memory.anonymousBytes
                lock.lock()
                peak = max(peak, now)
                let go = running
                lock.unlock()
                if !go { return }
                usleep(5_000)
            }
        }
        thread.start()
    }

    /// The peak since the last reset.
    func reset() -> Int {
        lock.lock()
        defer { lock.unlock() }
        let value = max(peak, Memory.anonymousBytes)
        peak = Memory.anonymousBytes
        return value
    }
}

enum Format {
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return (value < 0 ? "-" : "") + out
    }

    static func rate(_ events: Int, _ seconds: Double) -> String { grouped(Int((Double(events) / seconds).rounded())) + " ev/s" }
    static func mebibytes(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
    static func seconds(_ value: Double) -> String { String(format: "%.2f s", value) }
    static func padded(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(1, width - text.count)) }
}

// MARK: Generating events

/// A deterministic pseudo-random source (SplitMix64): the same N gives the same file.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
}

/// Bytes of JSON Lines, built by appending: no JSON encoder, no Foundation formatting.
struct LineBuffer {
    var bytes: [UInt8] = []

    mutating func add(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }
    mutating func add(_ text: String) { bytes.append(contentsOf: text.utf8) }
    mutating func add(_ text: [UInt8]) { bytes.append(contentsOf: text) }

    mutating func add(number value: Int) {
        if value >= 10 { add(number: value / 10) }
        bytes.append(UInt8(ascii: "0") + UInt8(value % 10))
    }

    /// `digits` decimal digits, zero-padded.
    mutating func add(number value: Int, digits: Int) {
        var divisor = 1
        for _ in 1..<digits { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
            rest %= divisor
            divisor /= 10
        }
    }

    /// Fen as a decimal string: 52075 -> "520.75".
    mutating func add(fen: Int) {
        add(number: fen / 100)
        bytes.append(UInt8(ascii: "."))
        add(number: fen % 100, digits: 2)
    }
}

/// RFC 3339 in China Standard Time, to the second, from seconds since the epoch.
struct CSTClock {
    var seconds: Int

    func write(to out: inout LineBuffer) {
        let local = seconds + 8 * 3600
        let (year, month, day) = Self.civil(days: local / 86_400)
        let second = local % 86_400
        out.add(number: year, digits: 4); out.add("-")
        out.add(number: month, digits: 2); out.add("-")
        out.add(number: day, digits: 2); out.add("T")
        out.add(number: second / 3600, digits: 2); out.add(":")
        out.add(number: second / 60 % 60, digits: 2); out.add(":")
        out.add(number: second % 60, digits: 2); out.add("+08:00")
    }

    /// Howard Hinnant's days-from-civil, inverted.
    static func civil(days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

/// The people and things of the generated world.
struct World {
    struct Company {
        var name: String
        var taxId: String
    }

    let sellers: [Company]
    let buyers: [Company]
    let systems = ["beijing-finance", "shanghai-erp", "shenzhen-ap", "hangzhou-books"]
    let users = ["zhang.wei", "li.na", "wang.fang", "liu.yang", "chen.jing", "zhao.lei"]
    static let items: [(name: String, unit: String?, rateTenths: Int)] = [
        ("*信息技术服务*软件维护费", nil, 60), ("*信息技术服务*技术服务费", "次", 60), ("*咨询服务*咨询费", "项", 60),
        ("*计算机外部设备*显示器", "台", 130), ("*纸制品*复印纸", "箱", 130), ("*电子元件*集成电路", "个", 130),
        ("*运输服务*国内运输费", nil, 90), ("*建筑服务*装修工程", "项", 90), ("*餐饮服务*餐费", nil, 60),
        ("*农产品*大米", "千克", 90), ("*生活服务*会议服务费", "次", 60), ("*小规模纳税人*办公用品", "批", 10),
    ]
    static let regions = ["110108", "310115", "440300", "330100", "320500", "510100", "420100", "370200"]
    static let companyWords = ["云栈", "青禾", "华信", "盛达", "恒通", "博远", "中科", "鑫源", "天成", "瑞丰", "宏图", "新锐"]
    static let companyKinds = ["科技有限公司", "贸易有限公司", "软件有限公司", "咨询有限公司", "实业有限公司"]

    init(random: inout SplitMix) {
        func company(_ index: Int, random: inout SplitMix) -> Company {
            let region = Self.regions[index % Self.regions.count]
            var first17 = "91" + region
            for _ in 0..<9 { first17.append(TaxpayerID.alphabet[random.below(TaxpayerID.alphabet.count)]) }
            let name = Self.companyWords[random.below(12)] + Self.companyWords[random.below(12)] + Self.companyKinds[index % 5]
            return Company(name: name, taxId: TaxpayerID.generate(first17: first17)!)
        }
        sellers = (0..<300).map { company($0, random: &random) }
        buyers = (0..<40).map { company($0 + 7, random: &random) }
    }
}

/// One invoice on its way: issued, delivered (perhaps after failures), received, reviewed.
struct InvoiceInFlight {
    enum Step { case issue, attempt, outcome, receive, review, done }
    var key: String
    var system: String
    var step = Step.issue
    var attempt = 1
}

/// Writes `count` events to `path`: interleaved invoice lifecycles, and now and then a
/// user's query, an access grant or a maintenance window.
struct Generator {
    var random = SplitMix(state: 0x5EED_F0A1)
    var world: World
    var clock = CSTClock(seconds: 1_733_014_800) // 2024-12-01T09:00:00+08:00
    var inFlight: [InvoiceInFlight] = []
    var nextSerial = 0
    var queries = 0
    var counts: [String: Int] = [:]
    static let inFlightMax = 1_000

    init() {
        var random = SplitMix(state: 0x5EED_F0A1)
        world = World(random: &random)
        self.random = random
    }

    mutating func write(count: Int, to path: String) throws -> Int {
        guard let file = FileHandle(forWritingAtPath: path) ?? { FileManager.default.createFile(atPath: path, contents: nil) ? FileHandle(forWritingAtPath: path) : nil }() else {
            throw BenchError("cannot create \(path)")
        }
        defer { try? file.close() }
        var out = LineBuffer()
        out.bytes.reserveCapacity(5 << 20)
        var total = 0
        var written = 0
        // The systems announce themselves first.
        for system in world.systems where written < count {
            systemRegistered(system, &out)
            written += 1
        }
        while written < count {
            clock.seconds += 1 + random.below(4)
            if random.below(1000) < 12 {
                userEvent(&out)
            } else {
                invoiceEvent(&out)
            }
            written += 1
            if out.bytes.count >= 4 << 20 {
                try file.write(contentsOf: out.bytes)
                total += out.bytes.count
                out.bytes.removeAll(keepingCapacity: true)
            }
        }
        try file.write(contentsOf: out.bytes)
        return total + out.bytes.count
    }

    mutating func invoiceEvent(_ out: inout LineBuffer) {
        if inFlight.count < Self.inFlightMax && (inFlight.isEmpty || random.chance(22)) {
            nextSerial += 1
            // 20 digits: year, region, a scattered serial (keys do not arrive in order).
            let serial = (nextSerial &* 7_919 &+ 104_729) % 1_000_000_000_000
            let key = "24" + World.regions[nextSerial % 8].prefix(2) + "2000" + String(repeating: "0", count: 12 - String(serial).count) + String(serial)
            inFlight.append(InvoiceInFlight(key: key, system: world.systems[random.below(world.systems.count)]))
        }
        let index = random.below(inFlight.count)
        var invoice = inFlight[index]
        switch invoice.step {
        case .issue:
            issued(invoice.key, &out)
            invoice.step = .attempt
        case .attempt:
            delivery(succeeded: false, invoice, &out)
            invoice.step = .outcome
        case .outcome:
            if random.chance(15) {
                deliveryFailed(invoice, &out)
                invoice.attempt += 1
                invoice.step = invoice.attempt > 3 ? .done : .attempt
            } else {
                delivery(succeeded: true, invoice, &out)
                invoice.step = .receive
            }
        case .receive:
            simple("fapiao.receipt.accepted", id: "rcp-", invoice, &out)
            invoice.step = random.chance(75) ? .review : .done
        case .review:
            reviewApproved(invoice, &out)
            invoice.step = .done
        case .done:
            break
        }
        if invoice.step == .done {
            inFlight.swapAt(index, inFlight.count - 1)
            inFlight.removeLast()
        } else {
            inFlight[index] = invoice
        }
    }

    /// The envelope up to `"data":`; `id` writes the id.
    func head(id: (inout LineBuffer) -> Void, source: String, type: StaticString, subject: String, _ out: inout LineBuffer) {
        out.add(#"{"specversion":"1.0","id":""#)
        id(&out)
        out.add(#"","source":""#); out.add(source)
        out.add(#"","type":""#); out.add(type)
        out.add(#"","subject":""#); out.add(subject)
        out.add(#"","time":""#); clock.write(to: &out)
        out.add(#"","datacontenttype":"application/json","data":"#)
    }

    mutating func issued(_ key: String, _ out: inout LineBuffer) {
        counts["fapiao.invoice.issued", default: 0] += 1
        out.add(#"{"specversion":"1.0","id":"iss-"#); out.add(key)
        out.add(#"","source":"urn:fapiao:issuer:etax","type":"fapiao.invoice.issued","subject":""#); out.add(key)
        out.add(#"","time":""#); clock.write(to: &out)
        out.add(#"","datacontenttype":"application/json","data":{"number":""#); out.add(key)
        out.add(#"","code":null,"kind":""#); out.add(random.chance(70) ? "digital_ordinary" : "digital_special")
        out.add(#"","issuedAt":""#); clock.write(to: &out)
        let seller = world.sellers[random.below(world.sellers.count)]
        let buyer = world.buyers[random.below(world.buyers.count)]
        out.add(#"","seller":{"name":""#); out.add(seller.name)
        out.add(#"","taxId":""#); out.add(seller.taxId)
        out.add(#""},"buyer":{"name":""#); out.add(buyer.name)
        out.add(#"","taxId":""#); out.add(buyer.taxId)
        out.add(#""},"lines":["#)
        var totalFen = 0, totalTaxFen = 0
        for line in 0..<(1 + random.below(3)) {
            let item = World.items[random.below(World.items.count)]
            let quantity = 1 + random.below(20)
            let unitFen = 100 + random.below(500_000)
            let amountFen = quantity * unitFen
            let taxFen = (amountFen * item.rateTenths + 500) / 1000 // half up: fen × rate, to the fen
            totalFen += amountFen
            totalTaxFen += taxFen
            if line > 0 { out.add(",") }
            out.add(#"{"name":""#); out.add(item.name)
            if let unit = item.unit { out.add(#"","unit":""#); out.add(unit) }
            out.add(#"","quantity":""#); out.add(number: quantity)
            out.add(#"","unitPrice":""#); out.add(fen: unitFen)
            out.add(#"","amount":""#); out.add(fen: amountFen)
            out.add(#"","taxRate":"0."#); out.add(number: item.rateTenths / 10, digits: 2)
            out.add(#"","tax":""#); out.add(fen: taxFen)
            out.add(#""}"#)
        }
        out.add(#"],"totalAmount":""#); out.add(fen: totalFen)
        out.add(#"","totalTax":""#); out.add(fen: totalTaxFen)
        out.add(#"","totalWithTax":""#); out.add(fen: totalFen + totalTaxFen)
        out.add(#""}}"#)
        out.add("\n")
    }

    mutating func delivery(succeeded: Bool, _ invoice: InvoiceInFlight, _ out: inout LineBuffer) {
        let type: StaticString = succeeded ? "fapiao.delivery.succeeded" : "fapiao.delivery.attempted"
        counts[type.description, default: 0] += 1
        head(id: { $0.add("dlv-"); $0.add(invoice.key); $0.add("-"); $0.add(number: invoice.attempt); $0.add(succeeded ? "s" : "a") },
             source: "urn:fapiao:sync:erp-connector", type: type, subject: invoice.key, &out)
        out.add(#"{"system":""#); out.add(invoice.system)
        out.add(#"","attempt":"#); out.add(number: invoice.attempt)
        out.add("}}\n")
    }

    mutating func deliveryFailed(_ invoice: InvoiceInFlight, _ out: inout LineBuffer) {
        counts["fapiao.delivery.failed", default: 0] += 1
        let failures: [(StaticString, StaticString)] = [
            ("network_timeout", "POST /api/invoices timed out after 30 s"), ("auth_expired", "tax-bureau login expired; re-authenticate"),
            ("http_error", "HTTP 502 Bad Gateway from the receiving system"), ("connection_refused", "connect ECONNREFUSED 10.2.3.4:443"),
        ]
        let (reason, detail) = failures[random.below(failures.count)]
        head(id: { $0.add("dlv-"); $0.add(invoice.key); $0.add("-"); $0.add(number: invoice.attempt); $0.add("f") },
             source: "urn:fapiao:sync:erp-connector", type: "fapiao.delivery.failed", subject: invoice.key, &out)
        out.add(#"{"system":""#); out.add(invoice.system)
        out.add(#"","attempt":"#); out.add(number: invoice.attempt)
        out.add(#","reason":""#); out.add(reason)
        out.add(#"","detail":""#); out.add(detail)
        out.add("\"}}\n")
    }

    mutating func simple(_ type: StaticString, id prefix: StaticString, _ invoice: InvoiceInFlight, _ out: inout LineBuffer) {
        counts[type.description, default: 0] += 1
        head(id: { $0.add(prefix); $0.add(invoice.key) }, source: "urn:fapiao:receipt:erp-connector", type: type, subject: invoice.key, &out)
        out.add(#"{"system":""#); out.add(invoice.system)
        out.add("\"}}\n")
    }

    mutating func reviewApproved(_ invoice: InvoiceInFlight, _ out: inout LineBuffer) {
        counts["fapiao.review.approved", default: 0] += 1
        let user = world.users[random.below(world.users.count)]
        head(id: { $0.add("rev-"); $0.add(invoice.key) }, source: "urn:fapiao:review:erp-connector", type: "fapiao.review.approved", subject: invoice.key, &out)
        out.add(#"{"system":""#); out.add(invoice.system)
        out.add(#"","by":""#); out.add(user)
        out.add("\"}}\n")
    }

    mutating func systemRegistered(_ system: String, _ out: inout LineBuffer) {
        counts["fapiao.system.registered", default: 0] += 1
        head(id: { $0.add("reg-"); $0.add(system) }, source: "urn:fapiao:access:admin", type: "fapiao.system.registered", subject: "system/" + system, &out)
        out.add(#"{"system":""#); out.add(system)
        out.add(#"","name":"财务系统 "#); out.add(system)
        out.add(#"","ownerTaxId":""#); out.add(world.buyers[0].taxId)
        out.add(#"","requiresReview":true,"visibleStatuses":["approved"]}}"#)
        out.add("\n")
    }

    /// A query (most often), an access grant, or a maintenance window opening or closing.
    mutating func userEvent(_ out: inout LineBuffer) {
        queries += 1
        let n = queries
        let system = world.systems[random.below(world.systems.count)]
        let user = world.users[random.below(world.users.count)]
        switch random.below(10) {
        case 0:
            counts["fapiao.access.granted", default: 0] += 1
            head(id: { $0.add("grant-"); $0.add(number: n) }, source: "urn:fapiao:access:admin", type: "fapiao.access.granted",
                 subject: "system/" + system + "/user/" + user, &out)
            out.add(#"{"system":""#); out.add(system)
            out.add(#"","user":""#); out.add(user)
            out.add(#"","scope":{"all":true}}}"#)
        case 1:
            let started = n % 2 == 0
            let type: StaticString = started ? "fapiao.system.maintenance_started" : "fapiao.system.maintenance_ended"
            counts[type.description, default: 0] += 1
            head(id: { $0.add("mnt-"); $0.add(number: n) }, source: "urn:fapiao:ops", type: type, subject: "system/" + system, &out)
            out.add(#"{"system":""#); out.add(system)
            out.add(started ? #"","reason":"nightly upgrade"}}"# : #""}}"#)
        default:
            counts["fapiao.query.executed", default: 0] += 1
            head(id: { $0.add("q-"); $0.add(number: n) }, source: "urn:fapiao:query-log:" + system, type: "fapiao.query.executed",
                 subject: "system/" + system + "/user/" + user, &out)
            out.add(#"{"system":""#); out.add(system)
            out.add(#"","user":""#); out.add(user)
            out.add(#"","criteria":{"issuedFrom":"2024-12-01","issuedTo":"2024-12-31","statuses":["approved"]},"resultCount":"#)
            out.add(number: random.below(200))
            out.add("}}")
        }
        out.add("\n")
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: The parse-only ceiling

/// Calls `body` with every non-blank line of the file, read in 4 MiB chunks like the importer.
func forEachLine(ofFile path: String, _ body: (UnsafeRawBufferPointer, Int) -> Void) throws {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw BenchError("cannot open \(path)") }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4 << 20)
    var filled = 0
    var lineNumber = 0
    try buffer.withUnsafeMutableBytes { raw in
        while true {
            let count = read(fd, raw.baseAddress! + filled, raw.count - filled)
            guard count >= 0 else { throw BenchError("read failed") }
            let end = filled + count
            var start = 0
            while start < end, let found = memchr(raw.baseAddress! + start, 0x0A, end - start) {
                let stop = UnsafeRawPointer(found) - UnsafeRawPointer(raw.baseAddress!)
                lineNumber += 1
                if stop > start { body(UnsafeRawBufferPointer(rebasing: raw[start..<stop]), lineNumber) }
                start = stop + 1
            }
            if count == 0 {
                if end > start { lineNumber += 1; body(UnsafeRawBufferPointer(rebasing: raw[start..<end]), lineNumber) }
                return
            }
            guard start > 0 else { throw BenchError("a line longer than 4 MiB") }
            memmove(raw.baseAddress!, raw.baseAddress! + start, end - start)
            filled = end - start
        }
    }
}

// MARK: Main

let arguments = Arguments(Array(CommandLine.arguments.dropFirst()))
let directory = arguments.dir ?? NSTemporaryDirectory() + "import-bench-\(UUID().uuidString)"
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
let filePath = directory + "/events-\(arguments.events).jsonl"
let ledgerPath = directory + "/import-\(arguments.events).ledger"
try? FileManager.default.removeItem(atPath: ledgerPath)
let anonymousPeak = AnonymousPeak()

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

print("fapiao import-bench")
print("date:    \(ISO8601DateFormatter().string(from: Date()))")
print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, load \(loadAverage()) at start")
print("dir:     \(directory)")
print("")

// 1. Generate.
var started = Monotonic.nanoseconds()
var generator = Generator()
let fileBytes = try generator.write(count: arguments.events, to: filePath)
let generateSeconds = Monotonic.seconds(since: started)
print("1. generate  \(Format.grouped(arguments.events)) events, \(Format.mebibytes(fileBytes)), mean \(fileBytes / arguments.events) bytes/line, in \(Format.seconds(generateSeconds))")
let mix = generator.counts.sorted { $0.value > $1.value }.map { "\($0.key.replacingOccurrences(of: "fapiao.", with: "")) \(String(format: "%.1f%%", Double($0.value) * 100 / Double(arguments.events)))" }
print("   mix:     \(mix.joined(separator: ", "))")
print("")

// 2. The parse-only ceiling.
/// Parses every line without appending: the JSON syntax pass alone, then the whole
/// envelope and typed-data validation. Returns how many lines failed (0 for a good file).
func measureCeiling() throws -> Int {
    Memory.resetPeak()
    _ = anonymousPeak.reset()
    var started = Monotonic.nanoseconds()
    var syntaxOK = 0
    try forEachLine(ofFile: filePath) { line, _ in
        if (try? JSONParser.parse(line, limits: .standard)) != nil { syntaxOK += 1 }
    }
    let syntaxSeconds = Monotonic.seconds(since: started)
    started = Monotonic.nanoseconds()
    var parsedOK = 0
    var parseProblems = 0
    try forEachLine(ofFile: filePath) { line, number in
        switch CloudEventParser.parse(line: line, lineNumber: number) {
        case .success: parsedOK += 1
        case .failure(let problems):
            if parseProblems < 3 { print("   problem: \(problems)") }
            parseProblems += 1
        }
    }
    let parseSeconds = Monotonic.seconds(since: started)
    let peak = Memory.peakBytes, anonymous = anonymousPeak.reset()
    let workers = ProcessInfo.processInfo.activeProcessorCount
    started = Monotonic.nanoseconds()
    let parallelOK = try parseInParallel(filePath, workers: workers)
    let parallelSeconds = Monotonic.seconds(since: started)
    print("2. ceiling   JSON syntax only (JSONParser.parse)            \(Format.padded(Format.rate(syntaxOK, syntaxSeconds), 16)) \(Format.seconds(syntaxSeconds))")
    print("             CloudEventParser.parse (envelope + typed data)  \(Format.padded(Format.rate(parsedOK, parseSeconds), 16)) \(Format.seconds(parseSeconds))   peak RSS \(Format.mebibytes(peak)), anonymous \(Format.mebibytes(anonymous))")
    print("             the same on \(workers) threads (file mapped, split)     \(Format.padded(Format.rate(parallelOK, parallelSeconds), 16)) \(Format.seconds(parallelSeconds))")
    print("")
    return parseProblems + (parsedOK - parallelOK)
}

/// `CloudEventParser.parse` over the file's lines on `workers` threads, each taking a
/// contiguous part of the memory-mapped file: what validation could reach if it parsed in
/// parallel (the parser is pure). Returns the lines that parsed.
func parseInParallel(_ path: String, workers: Int) throws -> Int {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw BenchError("cannot open \(path)") }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, info.st_size > 0 else { return 0 }
    let size = Int(info.st_size)
    guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else { throw BenchError("mmap failed") }
    defer { munmap(mapped, size) }
    let base = UnsafeRawPointer(mapped)
    // Part boundaries just after a newline.
    var cuts = [0]
    for part in 1..<workers {
        var cut = size * part / workers
        while cut < size && base.load(fromByteOffset: cut - 1, as: UInt8.self) != 0x0A { cut += 1 }
        cuts.append(cut)
    }
    cuts.append(size)
    let bounds = cuts
    let address = Int(bitPattern: base)  // the mapping outlives the workers
    let counts = Mutex<[Int]>([])
    DispatchQueue.concurrentPerform(iterations: workers) { part in
        let base = UnsafeRawPointer(bitPattern: address)!
        var start = bounds[part]
        let end = bounds[part + 1]
        var parsed = 0
        while start < end {
            let found = memchr(base + start, 0x0A, end - start)
            let stop = found.map { UnsafeRawPointer($0) - base } ?? end
            if stop > start, case .success = CloudEventParser.parse(line: UnsafeRawBufferPointer(start: base + start, count: stop - start), lineNumber: 0) {
                parsed += 1
            }
            start = stop + 1
        }
        counts.withLock { $0.append(parsed) }
    }
    return counts.withLock { $0.reduce(0, +) }
}

let parseProblems = arguments.onlyImport ? 0 : try measureCeiling()

// 3. Import into a fresh ledger.
final class PhaseClock: @unchecked Sendable {
    private let lock = NSLock()
    private var validatedAt: UInt64?

    func see(_ progress: ImportProgress) {
        lock.lock()
        defer { lock.unlock() }
        // The validation pass reports done == total once, as its last word.
        if progress.phase == .validating && progress.done == progress.total { validatedAt = Monotonic.nanoseconds() }
        if progress.phase == .appending && validatedAt == nil { validatedAt = Monotonic.nanoseconds() }
    }

    var validated: UInt64? {
        lock.lock()
        defer { lock.unlock() }
        return validatedAt
    }
}

func runImport(_ label: String, ledger: Ledger) async throws -> ImportSummary {
    Memory.resetPeak()
    _ = anonymousPeak.reset()
    let phases = PhaseClock()
    let begun = Monotonic.nanoseconds()
    let summary: ImportSummary
    do {
        summary = try await Importer(ledger: ledger).importFile(atPath: filePath) { phases.see($0) }
    } catch {
        throw BenchError("import failed: \(error)")
    }
    let ended = Monotonic.nanoseconds()
    let validated = phases.validated ?? ended
    let validateSeconds = Double(validated - begun) / 1e9
    let appendSeconds = Double(ended - validated) / 1e9
    let totalSeconds = Double(ended - begun) / 1e9
    let events = summary.events
    print("\(label) validate (parse, id checks, spool)     \(Format.padded(Format.rate(events, validateSeconds), 16)) \(Format.seconds(validateSeconds))")
    print("             append (spool → group-commit writer)   \(Format.padded(Format.rate(events, appendSeconds), 16)) \(Format.seconds(appendSeconds))")
    print("             end to end                             \(Format.padded(Format.rate(events, totalSeconds), 16)) \(Format.seconds(totalSeconds))   peak RSS \(Format.mebibytes(Memory.peakBytes)), anonymous \(Format.mebibytes(anonymousPeak.reset()))")
    print("             summary: \(Format.grouped(summary.events)) events, \(Format.grouped(summary.new)) new, \(Format.grouped(summary.alreadyPresent)) already present, \(summary.flagged) flagged")
    return summary
}

let ledger = try Ledger.open(at: ledgerPath)
let first = try await runImport("3. import  ", ledger: ledger)
let head = try ledger.headPosition()
let usage = ledger.storageUsage()
print("             ledger: head \(Format.grouped(Int(head))), \(Format.mebibytes(usage.usedBytes)) used")
print("")
let second = arguments.onlyImport ? nil : try await runImport("4. re-import", ledger: ledger)
ledger.close()
print("")

print("peak RSS counts the pages of the ledger's memory-mapped file that were touched (page cache);")
print("anonymous is the process's own memory: the id table (~140 bytes per distinct id), the file's chunk, buffers.")
let ok = parseProblems == 0 && first.new == arguments.events && first.flagged == 0 && (second?.alreadyPresent ?? arguments.events) == arguments.events
    && head == UInt64(arguments.events)
print("load:    \(loadAverage()) at end")
if !ok { print("CHECK FAILED: the import did not record every generated event exactly once, unflagged") }
if !arguments.keep && arguments.dir == nil { try? FileManager.default.removeItem(atPath: directory) }
exit(ok ? 0 : 1)
