// server-bench: HTTP ingestion (`POST /v1/events`, 100-event batches) against the in-process
// append rate of the same events, in the same run.
//
//     swift build -c release --product server-bench
//     .build/release/server-bench [--invoices N] [--connections K] [--dir DIR]
//     .build/release/server-bench --sse-subscribers [N]   (SSESubscribers.swift)
//
// 1. Generates a realistic Beijing ledger's events (the `Generator` module: ~6 events an
//    invoice) and cuts them into batches of 100, as JSON arrays.
// 2. In-process ceiling: the same events, already parsed, appended with `Ledger.append` in
//    requests of 100 from K concurrent tasks, into a fresh ledger.
// 3. HTTP: a `FapiaoServer` on 127.0.0.1 (projection engine running, as in production) over
//    another fresh ledger; K keep-alive connections, each on its own thread, POST the batches
//    (the server validates every event with the domain parser, then appends). `--no-projections`
//    leaves the engine stopped, to show what following the log costs ingestion on two cores.
//
// It is a measurement: it prints figures and exits 0 whatever they are (1 on an error).
import FapiaoDomain
import Foundation
import Generator
import Ingestion
import Ledger
import Server
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

struct Arguments {
    var invoices = 35_000
    var connections = 8
    var dir: String?
    /// Leave the projection engine stopped: what ingestion alone costs.
    var projections = true
    /// Nonzero: the SSE fan-out measure instead of ingestion (`--sse-subscribers N`).
    var sseSubscribers = 0

    static let usage = "usage: server-bench [--invoices N (default 35000, ~6 events each)] [--connections K (default 8)] [--dir DIR] [--no-projections] [--sse-subscribers [N] (default 100: SSE delivery delay instead)]"

    init(_ arguments: [String]) {
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            switch argument {
            case "--invoices":
                guard let text = rest.popFirst(), let value = Int(text.replacingOccurrences(of: "_", with: "")), value > 0 else { Self.fail() }
                invoices = value
            case "--connections":
                guard let text = rest.popFirst(), let value = Int(text), value > 0 else { Self.fail() }
                connections = value
            case "--dir":
                guard let value = rest.popFirst() else { Self.fail() }
                dir = value
            case "--no-projections": projections = false
            case "--sse-subscribers":
                if let text = rest.first, let value = Int(text) {
                    guard value > 0 else { Self.fail() }
                    rest.removeFirst()
                    sseSubscribers = value
                } else {
                    sseSubscribers = 100
                }
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

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Format {
    static func grouped(_ value: Int) -> String {
        let digits = Array(String(value))
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out += "," }
            out.append(digit)
        }
        return out
    }

    static func rate(_ events: Int, _ seconds: Double) -> String { grouped(Int((Double(events) / seconds).rounded())) + " ev/s" }
    static func milliseconds(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }
}

func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

// MARK: Events

/// The generated events as JSON lines, and the same events parsed into what the ledger stores.
func generate(invoices: Int, ledgerForParsing importer: Importer) throws -> (lines: [[UInt8]], entries: [AppendEntry]) {
    var bytes: [UInt8] = []
    _ = try DataGenerator(options: GeneratorOptions(invoices: invoices)).generate(events: { bytes.append(contentsOf: $0) })
    var lines: [[UInt8]] = []
    var entries: [AppendEntry] = []
    for line in bytes.split(separator: 0x0A) where !line.isEmpty {
        guard case .success(let envelope) = CloudEventParser.parse(line: Array(line), lineNumber: lines.count + 1) else {
            throw BenchError("the generator made a line the parser refuses")
        }
        lines.append(Array(line))
        let event = importer.newEvent(from: envelope)
        entries.append(AppendEntry(event))
        if let flag = importer.flag(for: envelope, event: event) { entries.append(AppendEntry(flag.event)) }
    }
    return (lines, entries)
}

// MARK: In process

/// Hands out batch indexes to concurrent workers.
final class Ticket: Sendable {
    private let next = Atomic<Int>(0)
    func take() -> Int { next.add(1, ordering: .relaxed).oldValue }
}

final class Results: Sendable {
    let state = Mutex<(latencies: [Double], error: String?)>(([], nil))
}

func appendInProcess(_ entries: [AppendEntry], ledger: Ledger, concurrency: Int) async throws -> Double {
    let requests = stride(from: 0, to: entries.count, by: 100).map { Array(entries[$0..<min($0 + 100, entries.count)]) }
    let next = Ticket()
    let started = now()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<concurrency {
            group.addTask {
                while true {
                    let index = next.take()
                    guard index < requests.count else { return }
                    _ = try await ledger.append(requests[index])
                }
            }
        }
        try await group.waitForAll()
    }
    return now() - started
}

// MARK: HTTP

/// A keep-alive HTTP/1.1 connection doing one request at a time (blocking; run it on a thread).
final class Connection {
    let fd: Int32
    var buffer: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw BenchError("cannot connect to 127.0.0.1:\(port)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(fd) }

    /// POSTs `body`; the status.
    func post(_ path: String, body: [UInt8]) throws -> Int {
        let head = "POST \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/cloudevents-batch+json\r\nContent-Length: \(body.count)\r\n\r\n"
        try send(Array(head.utf8) + body)
        return try readResponse()
    }

    private func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw BenchError("send failed") }
            sent += n
        }
    }

    private func readResponse() throws -> Int {
        let separator = Array("\r\n\r\n".utf8)
        while true {
            if let end = find(separator) {
                let head = String(decoding: buffer[..<end], as: UTF8.self)
                let lines = head.split(separator: "\r\n")
                let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
                let length = lines.dropFirst().compactMap { line -> Int? in
                    let parts = line.split(separator: ":", maxSplits: 1)
                    guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                    return Int(parts[1].trimmingCharacters(in: .whitespaces))
                }.first ?? 0
                while buffer.count < end + 4 + length { try receive() }
                buffer.removeFirst(end + 4 + length)
                return status
            }
            try receive()
        }
    }

    private func receive() throws {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { throw BenchError("the server closed the connection") }
        buffer += chunk[..<n]
    }

    private func find(_ needle: [UInt8]) -> Int? {
        guard buffer.count >= needle.count else { return nil }
        for index in 0...(buffer.count - needle.count) where buffer[index] == needle[0] && Array(buffer[index..<(index + 4)]) == needle {
            return index
        }
        return nil
    }
}

func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw BenchError("no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// POSTs every batch over `connections` keep-alive connections, one thread each. Returns the
/// elapsed seconds and each request's latency.
func postAll(_ batches: [[UInt8]], port: Int, connections: Int) throws -> (seconds: Double, latencies: [Double]) {
    let next = Ticket()
    let results = Results()
    let done = DispatchGroup()
    let started = now()
    for _ in 0..<connections {
        done.enter()
        Thread {
            defer { done.leave() }
            do {
                let connection = try Connection(port: port)
                var latencies: [Double] = []
                while true {
                    let index = next.take()
                    guard index < batches.count else { break }
                    let sent = now()
                    let status = try connection.post("/v1/events", body: batches[index])
                    latencies.append(now() - sent)
                    guard status == 200 else { throw BenchError("batch \(index) answered \(status)") }
                }
                results.state.withLock { $0.latencies += latencies }
            } catch {
                results.state.withLock { $0.error = "\(error)" }
            }
        }.start()
    }
    done.wait()
    let elapsed = now() - started
    let (latencies, error) = results.state.withLock { ($0.latencies, $0.error) }
    if let error { throw BenchError(error) }
    return (elapsed, latencies.sorted())
}

// MARK: Main

func run() async throws {
    let arguments = Arguments(Array(CommandLine.arguments.dropFirst()))
    let base = arguments.dir ?? NSTemporaryDirectory() + "server-bench-\(getpid())"
    try? FileManager.default.removeItem(atPath: base)
    try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: base) }
    if arguments.sseSubscribers > 0 {
        try await runSSESubscribers(arguments, base: base)
        return
    }
    print("server-bench: \(arguments.invoices) invoices, \(arguments.connections) connections, in \(base)")

    // Parsing needs an importer (for flags); any ledger will do, it is not appended to.
    let scratch = try Ledger.open(at: base + "/scratch")
    let (lines, entries) = try generate(invoices: arguments.invoices, ledgerForParsing: Importer(ledger: scratch))
    scratch.close()
    let batches = stride(from: 0, to: lines.count, by: 100).map { start in
        Array("[".utf8) + lines[start..<min(start + 100, lines.count)].joined(separator: Array(",".utf8)) + Array("]".utf8)
    }
    let bytes = batches.reduce(0) { $0 + $1.count }
    print("  \(Format.grouped(lines.count)) events (\(Format.grouped(entries.count - lines.count)) flags beside them), \(batches.count) batches of 100, \(bytes / lines.count) bytes an event")

    let inProcess = try Ledger.open(at: base + "/in-process")
    let appendSeconds = try await appendInProcess(entries, ledger: inProcess, concurrency: arguments.connections)
    inProcess.close()
    print("  in process   Ledger.append, requests of 100, \(arguments.connections) tasks     \(Format.rate(lines.count, appendSeconds))  (\(String(format: "%.2f", appendSeconds)) s)")

    let ledger = try Ledger.open(at: base + "/http")
    let port = try freePort()
    let server = try FapiaoServer(ledger: ledger, configuration: ServerConfiguration(port: port))
    if arguments.projections { try await server.start() }
    let group = ServiceGroup(configuration: .init(services: [server.application()], logger: .init(label: "server-bench")))
    let serving = Task { try await group.run() }
    var up = false
    for _ in 0..<500 where !up {
        up = (try? Connection(port: port)) != nil
        if !up { try await Task.sleep(for: .milliseconds(10)) }
    }
    guard up else { throw BenchError("the server did not start") }
    let connections = arguments.connections
    let (httpSeconds, latencies) = try await Task.detached { try postAll(batches, port: port, connections: connections) }.value
    let head = try ledger.headPosition()
    await group.triggerGracefulShutdown()
    try await serving.value
    if arguments.projections {
        try await server.engine.catchUp()
        server.stop()
    }
    ledger.close()
    guard head == UInt64(entries.count) else { throw BenchError("the ledger holds \(head) records, expected \(entries.count)") }
    func percentile(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
    let engine = arguments.projections ? "projections following" : "projections stopped"
    print("  HTTP         POST /v1/events, batches of 100, \(connections) connections, \(engine)     \(Format.rate(lines.count, httpSeconds))  (\(String(format: "%.2f", httpSeconds)) s)")
    print("               request latency p50 \(Format.milliseconds(percentile(0.5))), p99 \(Format.milliseconds(percentile(0.99))), max \(Format.milliseconds(latencies.last ?? 0))")
    print(String(format: "  HTTP / in process: %.0f%%   (target: at least 20,000 ev/s over HTTP)", 100 * appendSeconds / httpSeconds))
}

do {
    try await run()
} catch {
    FileHandle.standardError.write(Data("server-bench: \(error)\n".utf8))
    exit(1)
}
