import Crypto
import FapiaoDomain
import Foundation
import Ledger

/// Imports CloudEvents JSON Lines (docs/events.md) into a ledger, all or nothing:
///
/// 1. **Validate** every line (JSON, envelope, typed `data`), check each `(source, id)` against
///    the file's earlier lines and against the ledger, and spool the validated events to a
///    temporary file. Any problem refuses the whole file: every offending line is reported
///    and nothing is recorded.
/// 2. **Append** the spooled events in requests of `requestEventsMax`, pipelined through the
///    group-commit writer. Events already in the ledger are idempotent no-ops.
///
/// Memory is bounded by a chunk of the file plus 48 bytes per distinct event id (the table
/// that catches an id reused with different content inside the file). An invoice that breaks
/// a rule (a tax ID failing its check, totals off beyond tolerance) is a fact: it is recorded
/// as sent, and a `fapiao.ledger.flagged` event is appended beside it in the same request.
public struct Importer: Sendable {
    public let ledger: Ledger
    public var rules: RuleBook
    public static let requestEventsMax = 1000
    public static let requestsInFlightMax = 4
    public static let problemsKeptMax = 1000
    static let presenceLookupEvents = 1000

    public init(ledger: Ledger, rules: RuleBook = .standard) {
        self.ledger = ledger
        self.rules = rules
    }

    /// Imports the file at `path`, or standard input when `path` is `-`.
    public func importFile(
        atPath path: String, progress: @Sendable (ImportProgress) -> Void = { _ in }
    ) async throws(ImportError) -> ImportSummary {
        let fd = path == "-" ? STDIN_FILENO : open(path, O_RDONLY)
        guard fd >= 0 else { throw .unreadable(reason: "\(path): \(String(cString: strerror(errno)))") }
        defer { if fd != STDIN_FILENO { close(fd) } }
        var info = stat()
        let size: UInt64 = fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG ? UInt64(info.st_size) : 0
        if size == 0 && fd != STDIN_FILENO && (info.st_mode & S_IFMT) == S_IFDIR {
            throw .unreadable(reason: "\(path) is a directory")
        }
        let validated: Validated
        do {
            validated = try await validate(fileDescriptor: fd, name: path == "-" ? "<stdin>" : path, size: size, progress: progress)
        } catch let error as ImportError {
            throw error
        } catch {
            throw .unreadable(reason: "\(error)")
        }
        return try await append(validated, progress: progress)
    }

    // MARK: Pass 1: validate and spool

    struct Validated {
        var summary: ImportSummary
        var spool: Spool
    }

    /// Lines parsed together: enough to keep two cores busy, few enough to stay small.
    static let blockLinesMax = 4_096
    static let blockBytesMax = 8 << 20

    private func validate(
        fileDescriptor fd: Int32, name: String, size: UInt64, progress: (ImportProgress) -> Void
    ) async throws -> Validated {
        var summary = ImportSummary(file: name)
        var problems = ProblemList()
        var ids = IdTable()
        var lookups = PresenceLookups()
        let spool = try Spool()
        var reader = LineReader(fileDescriptor: fd)
        var more = true
        while more {
            // Read a block of lines (copied out of the reader's buffer), parse it on two cores,
            // then do what must be sequential: ids, ledger look-ups, the spool, in line order.
            var block = LineBlock()
            more = try reader.forEachLine { line, _ in
                block.add(line)
                return block.count < Self.blockLinesMax && block.bytes.count < Self.blockBytesMax
            }
            for parsed in await parse(block) {
                try accept(parsed, summary: &summary, problems: &problems, ids: &ids, lookups: &lookups, spool: spool)
            }
            progress(ImportProgress(phase: .validating, done: reader.bytesRead, total: size))
        }
        problems.add(try lookups.check(in: ledger))
        summary.lines = reader.lineNumber
        progress(ImportProgress(phase: .validating, done: reader.bytesRead, total: max(size, reader.bytesRead)))
        guard problems.isEmpty else {
            throw ImportError.refused(ImportRefusal(
                problems: problems.kept, problemCount: problems.count, offendingLines: problems.lines.count, lines: summary.lines))
        }
        return Validated(summary: summary, spool: spool)
    }

    /// A line after the pure, parallel part of validation.
    enum ParsedLine: Sendable {
        case blank
        case refused([EnvelopeProblem])
        case event(line: Int, event: NewEvent, fingerprint: IdTable.Fingerprint, flag: (event: NewEvent, findings: [RuleFinding])?)
    }

    private func parse(_ block: LineBlock) async -> [ParsedLine] {
        guard block.count > 64 else { return parse(block, range: 0..<block.count) }
        let middle = block.count / 2
        async let first = parse(block, range: 0..<middle)
        let second = parse(block, range: middle..<block.count)
        return await first + second
    }

    private func parse(_ block: LineBlock, range: Range<Int>) -> [ParsedLine] {
        block.bytes.withUnsafeBytes { bytes in
            range.map { index in
                let entry = block.lines[index]
                if let tooLong = entry.tooLongBytes {
                    return .refused([EnvelopeProblem(lineNumber: entry.number, attribute: "", expected: "a line of at most \(CloudEventParser.lineBytesMax) bytes", got: "\(tooLong) bytes")])
                }
                let line = UnsafeRawBufferPointer(rebasing: bytes[entry.range])
                if isBlank(line) { return .blank }
                switch CloudEventParser.parse(line: line, lineNumber: entry.number) {
                case let .failure(found):
                    return .refused(found.problems)
                case let .success(envelope):
                    let event = newEvent(from: envelope)
                    var problems: [EnvelopeProblem] = []
                    if let problem = oversize(event, line: entry.number, what: "the event") { problems.append(problem) }
                    let flag = flag(for: envelope, event: event)
                    if let flag, let problem = oversize(flag.event, line: entry.number, what: "the fapiao.ledger.flagged event beside it") {
                        problems.append(problem)
                    }
                    return problems.isEmpty
                        ? .event(line: entry.number, event: event, fingerprint: IdTable.fingerprint(event), flag: flag) : .refused(problems)
                }
            }
        }
    }

    /// The sequential part: the file's own idempotency, the ledger's, and the spool.
    private func accept(
        _ parsed: ParsedLine, summary: inout ImportSummary, problems: inout ProblemList, ids: inout IdTable,
        lookups: inout PresenceLookups, spool: Spool
    ) throws {
        switch parsed {
        case .blank:
            return
        case let .refused(found):
            summary.events += 1
            problems.add(found)
        case let .event(number, event, fingerprint, flag):
            summary.events += 1
            switch ids.record(fingerprint, line: number) {
            case let .conflict(clash):
                problems.add([EnvelopeProblem(lineNumber: number, attribute: "id", expected: "a new id: (source, id) is the idempotency key", got: "\(quoted(event.id)) from \(event.source), used on line \(clash) with different content")])
                return
            case .repeated:
                // The same event again in this file: one copy is enough (it counts as present).
                summary.repeatedInFile += 1
                return
            case .new:
                break
            }
            lookups.add(event, line: number)
            if lookups.isFull { problems.add(try lookups.check(in: ledger)) }
            guard problems.isEmpty else { return }
            var group = [event]
            if let flag {
                group.append(flag.event)
                summary.flagged += 1
                for finding in flag.findings { summary.flaggedByRule[finding.rule.rawValue, default: 0] += 1 }
            }
            try spool.append(group: group)
        }
    }

    private func number(of line: LineReader.Line) -> Int {
        switch line {
        case let .text(number, _), let .tooLong(number, _): number
        }
    }

    private func isBlank(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }

    private func quoted(_ text: String) -> String { "\"" + text + "\"" }

    /// A problem when `event` would be refused by the ledger for its size. Checked here, in
    /// validation: found only when appending, the requests before it would already be
    /// recorded and the file half-imported. (A 2,000-line invoice passes the line limit.)
    private func oversize(_ event: NewEvent, line: Int, what: String) -> EnvelopeProblem? {
        let bytes = Self.recordBytes(of: event)
        guard bytes > ledger.options.recordBytesMax else { return nil }
        return EnvelopeProblem(
            lineNumber: line, attribute: "data",
            expected: "an event the ledger can store: a record of at most \(ledger.options.recordBytesMax) bytes",
            got: "\(what) would take \(bytes) bytes (data is \(event.data.count) bytes)")
    }

    /// The size of `event`'s stored record. Mirrors `RecordCodec.encodedSize(of:)` (internal
    /// to Ledger): 82 bytes of header and length prefixes, then the fields and `data`.
    public static func recordBytes(of event: NewEvent) -> Int {
        82 + event.stream.utf8.count + event.type.utf8.count + event.source.utf8.count + event.id.utf8.count
            + event.time.utf8.count + (event.dataContentType?.utf8.count ?? 0) + event.data.count
    }

    public func newEvent(from envelope: CloudEventEnvelope) -> NewEvent {
        NewEvent(
            stream: envelope.subject, type: envelope.type.rawValue, source: envelope.source, id: envelope.id,
            time: envelope.time.text, occurredMicros: envelope.time.micros, dataContentType: envelope.datacontenttype,
            data: envelope.data)
    }

    /// The flag the ledger appends beside an issued invoice that breaks a rule.
    public func flag(for envelope: CloudEventEnvelope, event: NewEvent) -> (event: NewEvent, findings: [RuleFinding])? {
        guard case let .invoiceIssued(issued) = envelope.event else { return nil }
        let table = rules.table(atMicros: issued.issuedAt.micros)
        let findings = InvoiceChecks.check(issued, rules: table, subject: InvoiceKey(canonical: envelope.subject))
        guard !findings.isEmpty else { return nil }
        let flagged = LedgerFlagged(
            event: .init(source: event.source, id: event.id, type: event.type), rulesVersion: table.version, findings: findings)
        let flag = NewEvent(
            stream: event.stream, type: EventType.ledgerFlagged.rawValue, source: LedgerFlagged.source,
            id: Self.flagID(source: event.source, id: event.id), time: event.time, occurredMicros: event.occurredMicros,
            dataContentType: CloudEventParser.jsonContentType, data: DomainEvent.ledgerFlagged(flagged).encodedData)
        return (flag, findings)
    }

    /// Deterministic, so importing the same event again flags nothing twice.
    static func flagID(source: String, id: String) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(source.utf8) + [0] + Array(id.utf8))
        return "flag-" + hasher.finalize().prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    // MARK: Pass 2: append

    private func append(_ validated: Validated, progress: @Sendable (ImportProgress) -> Void) async throws(ImportError) -> ImportSummary {
        var summary = validated.summary
        summary.alreadyPresent = summary.repeatedInFile
        let total = UInt64(validated.spool.count)
        var appended: UInt64 = 0
        var inFlight: [(pending: PendingAppend, entries: [AppendEntry], counts: [Bool])] = []
        func settle(_ oldest: (pending: PendingAppend, entries: [AppendEntry], counts: [Bool])) async throws(LedgerError) {
            var result: AppendResult
            do {
                result = try await oldest.pending.result()
            } catch .overloaded {
                result = try await retryOverloaded(oldest.entries)
            }
            for (index, counts) in oldest.counts.enumerated() where counts {
                if result.isNew[index] {
                    summary.new += 1
                    summary.firstPosition = min(summary.firstPosition ?? .max, result.positions[index])
                    summary.lastPosition = max(summary.lastPosition ?? 0, result.positions[index])
                } else {
                    summary.alreadyPresent += 1
                }
            }
            appended += UInt64(oldest.entries.count)
            progress(ImportProgress(phase: .appending, done: appended, total: total))
        }
        do {
            try await validated.spool.readBack(batchMax: Self.requestEventsMax) { events, isFirstOfGroup in
                let entries = events.map { AppendEntry($0, expecting: .any) }
                inFlight.append((try ledger.enqueue(entries), entries, isFirstOfGroup))
                if inFlight.count >= Self.requestsInFlightMax { try await settle(inFlight.removeFirst()) }
            }
            while !inFlight.isEmpty { try await settle(inFlight.removeFirst()) }
        } catch let error as LedgerError {
            // Let what is already queued finish, so the summary says exactly what is recorded.
            while !inFlight.isEmpty { try? await settle(inFlight.removeFirst()) }
            throw .appendFailed(error, imported: summary)
        } catch {
            throw .unreadable(reason: "\(error)")
        }
        return summary
    }

    private func retryOverloaded(_ entries: [AppendEntry]) async throws(LedgerError) -> AppendResult {
        var delayMilliseconds: UInt64 = 10
        while true {
            try? await Task.sleep(nanoseconds: delayMilliseconds * 1_000_000)
            do {
                return try await ledger.append(entries)
            } catch .overloaded {
                delayMilliseconds = min(delayMilliseconds * 2, 1000)
            }
        }
    }
}

/// Problems found so far: all counted, the first `problemsKeptMax` kept.
struct ProblemList {
    var kept: [EnvelopeProblem] = []
    var count = 0
    var lines = Set<Int>()

    var isEmpty: Bool { count == 0 }

    mutating func add(_ problems: [EnvelopeProblem]) {
        for problem in problems {
            count += 1
            lines.insert(problem.lineNumber)
            if kept.count < Importer.problemsKeptMax { kept.append(problem) }
        }
    }
}

/// `(source, id)` → content digest and line, in 128-bit digests: the file's own idempotency
/// table, so an id reused with different content inside one file is caught before anything
/// is written.
struct IdTable {
    struct Digest: Hashable, Sendable {
        var high: UInt64
        var low: UInt64
    }

    /// An event's identity and content, hashed (pure: computed in the parallel stage).
    struct Fingerprint: Sendable {
        var key: Digest
        var content: Digest
    }

    private var seen: [Digest: (content: Digest, line: Int)] = [:]

    enum Outcome {
        case new
        /// The same id with the same content earlier in the file.
        case repeated
        /// The same id with different content, on this earlier line.
        case conflict(line: Int)
    }

    mutating func record(_ fingerprint: Fingerprint, line: Int) -> Outcome {
        if let earlier = seen[fingerprint.key] {
            return earlier.content == fingerprint.content ? .repeated : .conflict(line: earlier.line)
        }
        seen[fingerprint.key] = (fingerprint.content, line)
        return .new
    }

    static func fingerprint(_ event: NewEvent) -> Fingerprint {
        var keyHasher = SHA256()
        keyHasher.update(data: Array(event.source.utf8))
        keyHasher.update(data: [0])
        keyHasher.update(data: Array(event.id.utf8))
        let key = Self.digest(keyHasher.finalize())
        var contentHasher = SHA256()
        for field in [event.stream, event.type, event.time, event.dataContentType ?? "\u{1}"] {
            contentHasher.update(data: Array(field.utf8))
            contentHasher.update(data: [0])
        }
        withUnsafeBytes(of: event.occurredMicros.bigEndian) { contentHasher.update(bufferPointer: $0) }
        contentHasher.update(data: event.data)
        return Fingerprint(key: key, content: Self.digest(contentHasher.finalize()))
    }

    private static func digest(_ hash: SHA256.Digest) -> Digest {
        hash.withUnsafeBytes { bytes in
            Digest(high: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                   low: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
    }
}

/// Events waiting to be looked up in the ledger by `(source, id)`, a batch per snapshot.
struct PresenceLookups {
    private var events: [NewEvent] = []
    private var lines: [Int] = []

    var isFull: Bool { events.count >= Importer.presenceLookupEvents }

    mutating func add(_ event: NewEvent, line: Int) {
        events.append(event)
        lines.append(line)
    }

    /// A problem for each event whose `(source, id)` the ledger holds with other content.
    mutating func check(in ledger: Ledger) throws -> [EnvelopeProblem] {
        defer { events.removeAll(keepingCapacity: true); lines.removeAll(keepingCapacity: true) }
        guard !events.isEmpty else { return [] }
        return try zip(ledger.presence(of: events), zip(events, lines)).compactMap { presence, pair in
            guard case let .conflicting(position) = presence else { return nil }
            return EnvelopeProblem(
                lineNumber: pair.1, attribute: "id",
                expected: "a new id: (source, id) is the idempotency key",
                got: "\"\(pair.0.id)\" from \(pair.0.source), recorded at position \(position) with different content")
        }
    }
}
