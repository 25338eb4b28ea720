import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One Server-Sent Event as a client sees it.
struct SSEEvent: Equatable {
    var id: String?
    var event: String?
    var data: String
}

/// A small, real SSE client over a plain socket: sends the GET, reads the response head, undoes
/// chunked transfer encoding and parses `text/event-stream` as the WHATWG spec says (comments
/// ignored, `data:` lines joined with `\n`, an id-only event moves `lastEventID` without being
/// dispatched). Blocking reads run on threads of their own: on Linux, GCD's global queues are
/// the threads Swift concurrency runs on, and a blocked one is a thread the server lacks.
final class SSEClient: @unchecked Sendable {
    private let fd: Int32
    private var raw: [UInt8] = []
    private var body: [UInt8] = []
    private var chunked = false
    private var bodyEnded = false
    private(set) var status = 0
    private(set) var headers: [String: String] = [:]
    /// The last id seen, dispatched or not: what a reconnecting client sends as Last-Event-ID.
    private(set) var lastEventID: String?
    /// Every block received, for failure messages.
    private(set) var transcript: [String] = []
    private let lock = NSLock()

    private init(fd: Int32) { self.fd = fd }

    static func connect(port: Int, path: String, token: String?, lastEventID: UInt64? = nil) async throws -> SSEClient {
        let client = SSEClient(fd: try openSocket(port: port))
        var request = "GET \(path) HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
        if let token { request += "Authorization: Bearer \(token)\r\n" }
        if let lastEventID { request += "Last-Event-ID: \(lastEventID)\r\n" }
        request += "\r\n"
        try client.send(request)
        try await client.onQueue { try client.readHead(timeout: 10) }
        return client
    }

    /// The next dispatched event, or nil when none came within `timeout` seconds (or the stream ended).
    func next(timeout: Double = 10) async throws -> SSEEvent? {
        try await onQueue { try self.readEvent(deadline: Date().addingTimeInterval(timeout)) }
    }

    /// Events until `count` have come (or `timeout` passes).
    func events(_ count: Int, timeout: Double = 10) async throws -> [SSEEvent] {
        let deadline = Date().addingTimeInterval(timeout)
        var out: [SSEEvent] = []
        while out.count < count, let event = try await next(timeout: max(deadline.timeIntervalSinceNow, 0.01)) { out.append(event) }
        return out
    }

    private var isClosed = false

    /// Closes the socket once (a second close could close a descriptor reused by someone else).
    func close() {
        lock.lock()
        defer { lock.unlock() }
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }

    deinit { if !isClosed { Glibc.close(fd) } }

    // MARK: Socket

    fileprivate static func openSocket(port: Int) throws -> Int32 {
        for (family, address) in [(AF_INET, "127.0.0.1"), (AF_INET6, "::1")] {
            let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { continue }
            var connected: Int32 = -1
            if family == AF_INET {
                var sin = sockaddr_in()
                sin.sin_family = sa_family_t(AF_INET)
                sin.sin_port = in_port_t(UInt16(port).bigEndian)
                inet_pton(AF_INET, address, &sin.sin_addr)
                connected = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            } else {
                var sin6 = sockaddr_in6()
                sin6.sin6_family = sa_family_t(AF_INET6)
                sin6.sin6_port = in_port_t(UInt16(port).bigEndian)
                inet_pton(AF_INET6, address, &sin6.sin6_addr)
                connected = withUnsafePointer(to: &sin6) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
            }
            if connected == 0 { return fd }
            Glibc.close(fd)
        }
        throw SSEClientError("cannot connect to port \(port)")
    }

    private func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw SSEClientError("send failed") }
            sent += n
        }
    }

    /// Reads what is there, waiting until `deadline`. False on timeout or end of stream.
    private func receive(deadline: Date) throws -> Bool {
        while true {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
            let ready = poll(&poller, 1, milliseconds)
            // A signal (another test's child process exiting) interrupts poll: wait on.
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return false }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            raw.append(contentsOf: chunk[..<n])
            return true
        }
    }

    private func onQueue<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await onThread(body)
    }

    // MARK: HTTP

    private func readHead(timeout: Double) throws {
        let deadline = Date().addingTimeInterval(timeout)
        let separator = Array("\r\n\r\n".utf8)
        while true {
            if let end = find(separator, in: raw) {
                let head = String(decoding: raw[..<end], as: UTF8.self).components(separatedBy: "\r\n")
                status = Int(head[0].split(separator: " ")[1]) ?? 0
                for line in head.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                chunked = headers["transfer-encoding"]?.lowercased() == "chunked"
                raw.removeFirst(end + separator.count)
                return
            }
            guard try receive(deadline: deadline) else { throw SSEClientError("no response head") }
        }
    }

    /// Moves complete chunks from `raw` to `body`.
    private func dechunk() {
        guard chunked else {
            body += raw
            raw = []
            return
        }
        let crlf = Array("\r\n".utf8)
        while let lineEnd = find(crlf, in: raw) {
            let sizeText = String(decoding: raw[..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return }
            if size == 0 {
                bodyEnded = true
                return
            }
            let start = lineEnd + 2
            guard raw.count >= start + size + 2 else { return }
            body += raw[start..<(start + size)]
            raw.removeFirst(start + size + 2)
        }
    }

    // MARK: text/event-stream

    private func readEvent(deadline: Date) throws -> SSEEvent? {
        while true {
            dechunk()
            while let event = takeBlock() {
                if let event { return event }
            }
            if bodyEnded { return nil }
            guard try receive(deadline: deadline) else { return nil }
        }
    }

    /// The next complete block: `.some(event)` when it dispatches one, `.some(nil)` when it
    /// does not (comments, id only), nil when no complete block is buffered.
    private func takeBlock() -> SSEEvent?? {
        guard let end = find(Array("\n\n".utf8), in: body) else { return nil }
        let block = String(decoding: body[..<end], as: UTF8.self)
        body.removeFirst(end + 2)
        transcript.append(block.count > 80 ? String(block.prefix(80)) + "…" : block)
        var event = SSEEvent(id: nil, event: nil, data: "")
        var dataLines: [String] = []
        for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix(":") { continue }
            let (field, value): (Substring, Substring)
            if let colon = line.firstIndex(of: ":") {
                field = line[..<colon]
                var rest = line[line.index(after: colon)...]
                if rest.hasPrefix(" ") { rest = rest.dropFirst() }
                value = rest
            } else {
                (field, value) = (line, "")
            }
            switch field {
            case "id": event.id = String(value); lastEventID = String(value)
            case "event": event.event = String(value)
            case "data": dataLines.append(String(value))
            default: break
            }
        }
        guard !dataLines.isEmpty else { return .some(nil) }
        event.data = dataLines.joined(separator: "\n")
        if event.id == nil { event.id = lastEventID }
        return .some(event)
    }

    private func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for index in 0...(haystack.count - needle.count) where haystack[index] == needle[0] {
            if Array(haystack[index..<(index + needle.count)]) == needle { return index }
        }
        return nil
    }
}

struct SSEClientError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`), read to the end.
enum OneShotHTTP {
    struct Answer {
        var status: Int
        var body: [UInt8]
    }

    static func request(port: Int, method: String, path: String, headers: [String: String] = [:], body: [UInt8] = []) async throws -> Answer {
        try await onThread { try blockingRequest(port: port, method: method, path: path, headers: headers, body: body) }
    }

    private static func blockingRequest(port: Int, method: String, path: String, headers: [String: String], body: [UInt8]) throws -> Answer {
        let client = try SSEClient.rawConnection(port: port)
        defer { Glibc.close(client) }
        // Never wait forever for an answer.
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        let request = Array((head + "\r\n").utf8) + body
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { Glibc.send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw SSEClientError("send failed") }
            sent += n
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            received += chunk[..<n]
        }
        let separator = Array("\r\n\r\n".utf8)
        guard let end = (0...max(0, received.count - 4)).first(where: { received.count >= $0 + 4 && Array(received[$0..<($0 + 4)]) == separator }) else {
            throw SSEClientError("no response")
        }
        let statusLine = String(decoding: received[..<end], as: UTF8.self).split(separator: "\r\n").first ?? ""
        let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
        return Answer(status: status, body: Array(received[(end + 4)...]))
    }
}

extension SSEClient {
    static func rawConnection(port: Int) throws -> Int32 { try openSocket(port: port) }

    /// A port nobody listens on now (bound and released; good enough for a test).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(fd) }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = 0
        inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &sin) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(fd, address, length) == 0 && getsockname(fd, address, &length) == 0
            }
        }
        guard bound else { throw SSEClientError("cannot find a free port") }
        return Int(UInt16(bigEndian: sin.sin_port))
    }
}

/// Runs blocking `body` on a thread of its own (not GCD's, not the cooperative pool's).
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
