// server-bench --sse-subscribers N: N Server-Sent Events clients on `GET /v1/events` while the
// ledger takes a steady 2,000 events/s for 10 s (in process, `Ledger.append` every 10 ms);
// prints the end-to-end delay from the append's acknowledgement to each client's receipt.
import Foundation
import Ingestion
import Ledger
import Server
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One SSE client on its own thread: reads the stream raw (each server write is whole frames,
/// so `id:` lines never straddle an HTTP chunk header) and notes when each position arrived.
final class SSEReader: @unchecked Sendable {
    let fd: Int32
    let first: UInt64
    let count: Int
    /// Receipt time of position `first + i`, 0 until received.
    var received: [Double]
    var receivedCount = 0
    var error: String?

    init(port: Int, first: UInt64, count: Int) throws {
        self.first = first
        self.count = count
        received = Array(repeating: 0, count: count)
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw BenchError("cannot connect to 127.0.0.1:\(port)") }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = "GET /v1/events?from=\(first) HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
        let sent = Array(request.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == request.utf8.count else { throw BenchError("cannot send the request") }
    }

    deinit { close(fd) }

    /// Reads until every position arrived, or `deadline` passes, or the stream ends. Only
    /// `id:` lines are looked at (memchr from line to line), so the clients cost the CPU the
    /// server shares with them as little as possible.
    func run(deadline: Double) {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        var pending: [UInt8] = []
        var inHead = true
        let headEnd = Array("\r\n\r\n".utf8)
        while receivedCount < count && now() < deadline {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { continue }
            guard n > 0 else { error = "the stream ended"; return }
            let at = now()
            pending.append(contentsOf: chunk[..<n])
            var from = 0
            if inHead {
                guard let end = (0...max(0, pending.count - 4)).first(where: { pending.count >= 4 && Array(pending[$0..<($0 + 4)]) == headEnd }) else { continue }
                let status = String(decoding: pending[..<end], as: UTF8.self).split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
                guard status == 200 else { error = "answered \(status)"; return }
                inHead = false
                from = end + 4
            }
            let consumed = pending.withUnsafeBufferPointer { buffer -> Int in
                let base = UnsafeRawPointer(buffer.baseAddress!)
                var lineStart = from
                while lineStart < buffer.count, let newline = memchr(base + lineStart, 0x0A, buffer.count - lineStart) {
                    let lineEnd = UnsafeRawPointer(newline) - base
                    if lineEnd - lineStart > 4, buffer[lineStart] == UInt8(ascii: "i"), buffer[lineStart + 1] == UInt8(ascii: "d"),
                       buffer[lineStart + 2] == UInt8(ascii: ":"), buffer[lineStart + 3] == UInt8(ascii: " ") {
                        var position: UInt64 = 0
                        var index = lineStart + 4
                        while index < lineEnd, buffer[index] >= 0x30, buffer[index] <= 0x39 {
                            position = position * 10 + UInt64(buffer[index] - 0x30)
                            index += 1
                        }
                        if position >= first, position < first + UInt64(count) {
                            let slot = Int(position - first)
                            if received[slot] == 0 {
                                received[slot] = at
                                receivedCount += 1
                            }
                        }
                    }
                    lineStart = lineEnd + 1
                }
                return lineStart
            }
            pending.removeFirst(min(consumed, pending.count))
        }
        if receivedCount < count { error = "received \(receivedCount) of \(count) events" }
    }
}

/// When each position's append was submitted and acknowledged; how many appends.
final class AppendTimes: Sendable {
    let state: Mutex<(acknowledged: [Double], submitted: [Double], appends: Int)>
    init(count: Int) { state = Mutex((Array(repeating: 0, count: count), Array(repeating: 0, count: count), 0)) }
}

func runSSESubscribers(_ arguments: Arguments, base: String) async throws {
    let subscribers = arguments.sseSubscribers
    let rate = 2_000
    let seconds = 10
    let total = rate * seconds
    let tick = 0.010
    print("server-bench --sse-subscribers: \(subscribers) clients on GET /v1/events, \(Format.grouped(rate)) events/s for \(seconds) s appended in process every \(Int(tick * 1000)) ms, in \(base)")

    let scratch = try Ledger.open(at: base + "/scratch")
    let (_, generated) = try generate(invoices: total / 5 + 100, ledgerForParsing: Importer(ledger: scratch))
    scratch.close()
    guard generated.count >= total else { throw BenchError("the generator made \(generated.count) events, fewer than \(total)") }
    let entries = Array(generated.prefix(total))

    let ledger = try Ledger.open(at: base + "/sse")
    let port = try freePort()
    let server = try FapiaoServer(ledger: ledger, configuration: ServerConfiguration(port: port, subscribersMax: max(256, subscribers + 16)))
    if arguments.projections { try await server.start() }
    let group = ServiceGroup(configuration: .init(services: [server.application()], logger: .init(label: "server-bench")))
    let serving = Task { try await group.run() }
    var up = false
    for _ in 0..<500 where !up {
        up = (try? Connection(port: port)) != nil
        if !up { try await Task.sleep(for: .milliseconds(10)) }
    }
    guard up else { throw BenchError("the server did not start") }

    let first = try ledger.headPosition() + 1
    let readers = try (0..<subscribers).map { _ in try SSEReader(port: port, first: first, count: total) }
    let done = DispatchGroup()
    let readDeadline = now() + Double(seconds) + 30
    for reader in readers {
        done.enter()
        Thread { reader.run(deadline: readDeadline); done.leave() }.start()
    }
    // Let every client connect and get its head before the first append.
    try await Task.sleep(for: .milliseconds(500))

    // Each tick's append runs on its own (commits take longer than a tick: they overlap and
    // the group-commit writer batches them), so the offered rate stays steady.
    let times = AppendTimes(count: total)
    let started = now()
    try await withThrowingTaskGroup(of: Void.self) { appends in
        var sent = 0
        while sent < total {
            let due = min(total, Int((now() - started) / tick + 1) * rate / Int(1 / tick))
            if due > sent {
                let batch = Array(entries[sent..<due])
                appends.addTask {
                    let submittedAt = now()
                    let result = try await ledger.append(batch)
                    let at = now()
                    times.state.withLock { times in
                        for position in result.positions where position >= first && position < first + UInt64(total) {
                            times.acknowledged[Int(position - first)] = at
                            times.submitted[Int(position - first)] = submittedAt
                        }
                        times.appends += 1
                    }
                }
                sent = due
            }
            let next = started + Double(Int((now() - started) / tick) + 1) * tick
            try await Task.sleep(for: .microseconds(max(0, Int((next - now()) * 1e6))))
        }
        try await appends.waitForAll()
    }
    let (acknowledged, submitted, batches) = times.state.withLock { ($0.acknowledged, $0.submitted, $0.appends) }
    let appendSeconds = now() - started
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        DispatchQueue.global().async { done.wait(); continuation.resume() }
    }
    await group.triggerGracefulShutdown()
    try await serving.value
    if arguments.projections {
        try await server.engine.catchUp()
        server.stop()
    }
    ledger.close()

    let failures = readers.compactMap(\.error)
    if let failure = failures.first { throw BenchError("\(failures.count) of \(subscribers) clients failed; the first: \(failure)") }
    var fromAck: [Double] = []
    var fromSubmit: [Double] = []
    fromAck.reserveCapacity(total * subscribers)
    fromSubmit.reserveCapacity(total * subscribers)
    var early = 0
    for reader in readers {
        for index in 0..<total {
            let delay = reader.received[index] - acknowledged[index]
            if delay < 0 { early += 1 }
            fromAck.append(max(0, delay))
            fromSubmit.append(reader.received[index] - submitted[index])
        }
    }
    fromAck.sort()
    fromSubmit.sort()
    func percentile(_ values: [Double], _ p: Double) -> Double { values[min(values.count - 1, Int(Double(values.count) * p))] }
    let engine = arguments.projections ? "projections following" : "projections stopped"
    print("  appended \(Format.grouped(total)) events in \(batches) appends over \(String(format: "%.2f", appendSeconds)) s (\(Format.rate(total, appendSeconds))), \(engine)")
    print("  \(subscribers) clients received every event: \(Format.grouped(total * subscribers)) deliveries")
    print("  delay, append acknowledged -> client receipt: p50 \(Format.milliseconds(percentile(fromAck, 0.5))), p99 \(Format.milliseconds(percentile(fromAck, 0.99))), max \(Format.milliseconds(fromAck.last ?? 0))"
          + "  (\(early) deliveries arrived before the acknowledgement; counted as 0)")
    print("  delay, append submitted    -> client receipt: p50 \(Format.milliseconds(percentile(fromSubmit, 0.5))), p99 \(Format.milliseconds(percentile(fromSubmit, 0.99))), max \(Format.milliseconds(fromSubmit.last ?? 0))")
    print("  (target: p99 under 100 ms)")
}
