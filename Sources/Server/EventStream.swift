import FapiaoDomain
import Foundation
import Hummingbird
import Ledger
import Projections
import ServiceLifecycle
import Synchronization

// Server-Sent Events: the log (`GET /v1/events`) and projection changes
// (`GET /v1/projections/{name}/changes`).
//
// Each connection has two tasks and a bounded buffer between them. The producer reads the log
// at its own pace in chunks (MVCC snapshots: it never blocks the writer) and turns records into
// frames; the response task drains the buffer into the socket, everything pending in one write.
// When a client reads slowly the buffer fills and only that connection's producer waits: the
// writer and the other subscribers never notice. A heartbeat comment keeps idle connections
// alive, and carries the last position scanned as an `id:` so a client whose filter skipped
// many events resumes after them.

/// A connection's frames waiting for the socket, at most `bytesMax` of them (one frame may
/// exceed it when the buffer is empty: a frame is never split).
final class FrameBuffer: Sendable {
    private struct State {
        var pending: [UInt8] = []
        var finished = false
        var reader: CheckedContinuation<Void, Never>?
        var writer: CheckedContinuation<Void, Never>?
        /// The highest position whose frame is in `pending` or was sent.
        var announced: UInt64 = 0
        /// The highest position the producer has looked at (sent or filtered out).
        var scanned: UInt64 = 0
        var framesSinceTick = 0
    }

    let bytesMax: Int
    private let state = Mutex(State())

    init(bytesMax: Int) { self.bytesMax = bytesMax }

    /// Appends the frame for `position`, waiting while the buffer is full. False once the
    /// connection is finished: the producer should stop.
    func push(_ frame: [UInt8], position: UInt64) async -> Bool {
        while true {
            let (accepted, wake): (Bool?, CheckedContinuation<Void, Never>?) = state.withLock { state in
                if state.finished { return (false, nil) }
                guard state.pending.isEmpty || state.pending.count + frame.count <= bytesMax else { return (nil, nil) }
                state.pending.append(contentsOf: frame)
                state.announced = max(state.announced, position)
                state.scanned = max(state.scanned, position)
                state.framesSinceTick += 1
                defer { state.reader = nil }
                return (true, state.reader)
            }
            wake?.resume()
            if let accepted { return accepted }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state in
                    if state.finished || state.pending.isEmpty || state.pending.count + frame.count <= bytesMax { return true }
                    state.writer = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }

    /// The producer looked at `position` and left it out.
    func skipped(_ position: UInt64) {
        state.withLock { $0.scanned = max($0.scanned, position) }
    }

    /// Everything pending, waiting while there is nothing; nil once finished and drained.
    func take() async -> [UInt8]? {
        while true {
            let (chunk, done, wake): ([UInt8]?, Bool, CheckedContinuation<Void, Never>?) = state.withLock { state in
                if !state.pending.isEmpty {
                    let chunk = state.pending
                    state.pending = []
                    defer { state.writer = nil }
                    return (chunk, false, state.writer)
                }
                return (nil, state.finished, nil)
            }
            wake?.resume()
            if let chunk { return chunk }
            if done { return nil }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state in
                    if !state.pending.isEmpty || state.finished { return true }
                    state.reader = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }

    /// A heartbeat when no frame was queued since the last tick. False once finished.
    func tick() -> Bool {
        let (alive, wake): (Bool, CheckedContinuation<Void, Never>?) = state.withLock { state in
            if state.finished { return (false, nil) }
            defer { state.framesSinceTick = 0 }
            guard state.framesSinceTick == 0, state.pending.isEmpty else { return (true, nil) }
            var frame = ": heartbeat\n"
            if state.scanned > state.announced {
                // An event with an id and no data moves the client's Last-Event-ID without
                // dispatching anything (WHATWG HTML, "dispatch the event", steps 1-2).
                frame += "id: \(state.scanned)\n"
                state.announced = state.scanned
            }
            state.pending.append(contentsOf: Array((frame + "\n").utf8))
            defer { state.reader = nil }
            return (true, state.reader)
        }
        wake?.resume()
        return alive
    }

    /// Ends the connection: the producer's next push fails, the reader drains what is left.
    func finish() {
        let (reader, writer) = state.withLock { state in
            state.finished = true
            defer { state.reader = nil; state.writer = nil }
            return (state.reader, state.writer)
        }
        reader?.resume()
        writer?.resume()
    }
}

/// The text/event-stream encoding.
enum SSE {
    /// `id:`, `event:`, then `data:` lines: one per line of `data` (the ledger keeps `data`
    /// byte-exact, so an event sent pretty-printed spans lines; the client joins them with `\n`).
    static func frame(id: UInt64, event: String, data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + event.utf8.count + 40)
        out.append(contentsOf: "id: \(id)\nevent: ".utf8)
        out.append(contentsOf: event.utf8.map { $0 == 0x0A || $0 == 0x0D ? UInt8(ascii: "_") : $0 })
        out.append(0x0A)
        var lineStart = 0
        for index in 0...data.count where index == data.count || data[index] == 0x0A {
            var end = index
            if end > lineStart && data[end - 1] == 0x0D { end -= 1 }
            out.append(contentsOf: "data: ".utf8)
            out.append(contentsOf: data[lineStart..<end])
            out.append(0x0A)
            lineStart = index + 1
        }
        out.append(0x0A)
        return out
    }
}

extension FapiaoServer {
    // MARK: GET /v1/events

    func events(_ request: Request) async throws(Problem) -> Response {
        let principal = try access.authorize(request, roles: Roles.stream)
        let query = request.uri.queryParameters
        let head: UInt64
        do { head = try ledger.headPosition() } catch { throw internalProblem(error) }
        let start = try Self.startPosition(request, default: head + 1)
        let filter = RecordFilter(typePrefix: query.get("type").flatMap { $0.isEmpty ? nil : $0 },
                                  stream: query.get("subject").flatMap { $0.isEmpty ? nil : $0 })
        return try logStream(from: start, filter: filter, principal: principal, comment: "the log from position \(start)")
    }

    /// The log from `start` as Server-Sent Events, the records `filter` matches and `principal`
    /// may see (`GET /v1/events`, `GET /v1/subscriptions/{name}/events`).
    func logStream(from start: UInt64, filter: RecordFilter, principal: Principal, comment: String) throws(Problem) -> Response {
        try stream(comment: comment) { [self] buffer in
            var scope = LogScope(server: self, principal: principal)
            var feed = LogFeed(ledger: ledger, next: start, chunkRecords: configuration.streamChunkRecords)
            while let chunk = try await feed.next() {
                for (record, hash) in chunk {
                    guard filter.matches(record), try scope.admits(record) else {
                        buffer.skipped(record.position)
                        continue
                    }
                    let frame = SSE.frame(id: record.position, event: record.type, data: CloudEventRendering.jsonLine(record, hash: hash))
                    guard await buffer.push(frame, position: record.position) else { return }
                }
            }
        }
    }

    // MARK: GET /v1/projections/{name}/changes

    func changes(_ request: Request, _ context: some RequestContext) async throws(Problem) -> Response {
        let principal = try access.authorize(request, roles: Roles.stream)
        let name = try pathParameter("name", context)
        guard engine.projection(named: name) != nil else {
            throw .notFound("no projection named \(name); known: \(engine.projections.map(\.name).joined(separator: ", "))")
        }
        let checkpoint: UInt64
        do { checkpoint = try engine.checkpoint(of: name) } catch { throw internalProblem(error) }
        let start = try Self.startPosition(request, default: checkpoint + 1)
        let changes: ProjectionChanges
        do { changes = try engine.changes(of: name, from: start) } catch { throw internalProblem(error) }
        return try stream(comment: "changes of \(name) from position \(start)") { [self] buffer in
            for try await change in changes {
                var visible = change
                visible.keys = try change.keys.filter { key in try self.admits(key: key, principal) }
                guard !visible.keys.isEmpty else {
                    buffer.skipped(change.position)
                    continue
                }
                let frame = SSE.frame(id: change.position, event: "change", data: try ResponseJSON.encode(visible, compact: true))
                guard await buffer.push(frame, position: change.position) else { return }
            }
        }
    }

    /// A projection row key (an invoice key, a system, `system/user`) the principal may see.
    func admits(key: String, _ principal: Principal) throws -> Bool {
        if principal.scope.isUnlimited { return true }
        if InvoiceKey(canonical: key) != nil {
            guard let state = try engine.read({ snapshot in try InvoiceStateProjection.row(key, in: snapshot) }) else { return false }
            return admits(state, principal, owners: try owners(of: principal.scope))
        }
        let system = key.split(separator: "/", omittingEmptySubsequences: false).first.map(String.init) ?? key
        return principal.scope.admits(system: system)
    }

    /// `Last-Event-ID` (resume after it), else `from`, else `fallback`.
    static func startPosition(_ request: Request, default fallback: UInt64) throws(Problem) -> UInt64 {
        if let header = HeaderName("Last-Event-ID"), let text = request.headers[header]?.trimmingCharacters(in: .whitespaces), !text.isEmpty {
            guard let last = UInt64(text) else {
                throw .badRequest("Last-Event-ID must be a ledger position", problems: [Problem.Item(index: nil, attribute: "Last-Event-ID", expected: "a non-negative integer", got: text)])
            }
            return last + 1
        }
        if let text = request.uri.queryParameters.get("from"), !text.isEmpty {
            guard let from = UInt64(text) else {
                throw .badRequest("from must be a ledger position", problems: [Problem.Item(index: nil, attribute: "from", expected: "a position (1 = the beginning)", got: text)])
            }
            return max(from, 1)
        }
        return fallback
    }

    /// A text/event-stream response fed by `produce`, holding one subscriber slot until it ends.
    func stream(comment: String, _ produce: @escaping @Sendable (FrameBuffer) async throws -> Void) throws(Problem) -> Response {
        guard subscribers.acquire() else { throw .tooManySubscribers(subscribers.max) }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-store"
        if let accel = HeaderName("X-Accel-Buffering") { headers[accel] = "no" }
        let bufferBytesMax = configuration.streamBufferBytesMax
        let heartbeatSeconds = configuration.heartbeatSeconds
        let logger = self.logger
        let slots = subscribers
        let body = ResponseBody { writer in
            defer { slots.release() }
            let buffer = FrameBuffer(bytesMax: bufferBytesMax)
            let producer = Task {
                do { try await produce(buffer) } catch is CancellationError {} catch {
                    logger.warning("event stream ended", metadata: ["error": "\(error)"])
                }
                buffer.finish()
            }
            let heartbeat = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(Int(heartbeatSeconds * 1000)))
                    guard buffer.tick() else { return }
                }
            }
            defer {
                producer.cancel()
                heartbeat.cancel()
                buffer.finish()
            }
            try await writer.write(ByteBuffer(string: ": fapiao: \(comment)\nretry: 2000\n\n"))
            try await withGracefulShutdownHandler {
                try await withTaskCancellationHandler {
                    while let chunk = await buffer.take() {
                        try await writer.write(ByteBuffer(bytes: chunk))
                    }
                } onCancel: {
                    buffer.finish()
                }
            } onGracefulShutdown: {
                buffer.finish()
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}

/// The log from a position, chunk by chunk, then live as commits land; ends when the ledger
/// closes. Like `LogSubscription`, but with each record's own hash (the `ledgerhash` of the
/// CloudEvent), which only `recordsWithHashes` reads.
struct LogFeed {
    let ledger: Ledger
    var next: UInt64
    let chunkRecords: Int
    /// Subscribed before the first read, so no commit between a read and the wait is missed.
    var updates: AsyncStream<UInt64>.Iterator

    init(ledger: Ledger, next: UInt64, chunkRecords: Int) {
        self.ledger = ledger
        self.next = max(next, 1)
        self.chunkRecords = chunkRecords
        updates = ledger.headUpdates().makeAsyncIterator()
    }

    mutating func next() async throws -> [(record: Record, hash: [UInt8])]? {
        while true {
            try Task.checkCancellation()
            let chunk = try ledger.recordsWithHashes(from: next, limit: chunkRecords)
            if let last = chunk.last {
                next = last.record.position + 1
                return chunk
            }
            guard await updates.next() != nil else { return nil }
        }
    }
}

/// Which log records a principal may see: its systems' and users' streams, and the events of
/// invoices in its scope (decided from the invoice's stream in the log, as it stands when the
/// event is sent). Invoices found in scope are remembered: scope only grows as events arrive.
struct LogScope {
    let server: FapiaoServer
    let principal: Principal
    private var admitted: Set<String> = []
    /// The scope's systems' owners, read again after an event on one of their streams.
    private var owners: Set<String>?
    static let rememberedMax = 100_000

    init(server: FapiaoServer, principal: Principal) {
        self.server = server
        self.principal = principal
    }

    mutating func admits(_ record: Record) throws -> Bool {
        let scope = principal.scope
        if scope.isUnlimited { return true }
        switch StreamSubject(parsing: record.stream) {
        case .system(let system)?:
            if scope.systems?.contains(system) == true { owners = nil }
            return scope.admits(system: system)
        case .user(let system, _)?:
            return scope.admits(system: system)
        case .invoice?:
            if admitted.contains(record.stream) { return true }
            guard let state = try server.logState(record.stream) else { return false }
            if owners == nil { owners = try server.owners(of: scope) }
            let found = server.admits(state, principal, owners: owners ?? [])
            if found {
                if admitted.count >= Self.rememberedMax { admitted.removeAll() }
                admitted.insert(record.stream)
            }
            return found
        case nil:
            return false
        }
    }
}
