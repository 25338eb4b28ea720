import FapiaoDomain
import Foundation
import CoreMetrics
import Hummingbird
import Ingestion
import Ledger

/// The answer to an accepted `POST /v1/events`.
public struct AppendAnswer: Codable, Sendable, Equatable {
    public struct Event: Codable, Sendable, Equatable {
        public var index: Int
        public var source: String
        public var id: String
        public var position: UInt64
        /// False when the ledger had it already (same `(source, id)` and content).
        public var new: Bool
        /// Rules the event breaks: it was recorded as sent, with a `fapiao.ledger.flagged` beside it.
        public var flagged: [String]?
    }

    /// One position per event sent, in order.
    public var positions: [UInt64]
    public var new: Int
    public var alreadyPresent: Int
    public var events: [Event]
}

/// A request body turned into ledger entries, or every reason it was refused.
struct IngestBatch {
    enum Shape { case batch, single, either }

    struct Sent {
        var source: String
        var id: String
        var stream: String
        /// Where the event is among the entries (its flag, if any, follows it).
        var entryIndex: Int
        var flagged: [String]?
        /// What a scoped writer's token is checked against.
        var system: String?
        var sellerTaxId: String?
    }

    var entries: [AppendEntry] = []
    var sent: [Sent] = []

    /// The most problems one refusal lists.
    static let problemsMax = 1_000

    static func shape(contentType: String?) -> Shape? {
        let mediaType = contentType?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        switch mediaType {
        case "application/cloudevents-batch+json": return .batch
        case "application/cloudevents+json": return .single
        case "application/json": return .either
        default: return nil
        }
    }

    /// Validates everything before anything is appended: JSON, each envelope and its typed
    /// `data` (the same parser as `fapiao import`), sizes, `(source, id)` reused inside the
    /// batch with other content, and the `expectedversion` extension.
    static func parse(_ body: [UInt8], shape: Shape, importer: Importer, eventsMax: Int) -> Result<IngestBatch, Problem> {
        let limits = JSONLimits(
            inputBytesMax: max(body.count, 1), depthMax: JSONLimits.standard.depthMax + 1, stringBytesMax: JSONLimits.standard.stringBytesMax,
            numberBytesMax: JSONLimits.standard.numberBytesMax, containerElementsMax: max(JSONLimits.standard.containerElementsMax, eventsMax + 1))
        return body.withUnsafeBytes { input in
            let root: JSONNode
            do throws(JSONError) {
                root = try JSONParser.parse(input, limits: limits)
            } catch {
                return .failure(.badRequest("the body is not JSON: \(error)", problems: [
                    Problem.Item(index: nil, attribute: "", expected: error.expected, got: "\(error.found) at byte \(error.offset)"),
                ]))
            }
            let nodes: [JSONNode]
            switch (root.value, shape) {
            case (.array(let elements), .batch), (.array(let elements), .either):
                nodes = elements
            case (.object, .single), (.object, .either):
                nodes = [root]
            case (_, .batch):
                return .failure(.badRequest("application/cloudevents-batch+json is a JSON array of events; got \(root.value.kindDescription)"))
            default:
                return .failure(.badRequest("a single structured event is a JSON object; got \(root.value.kindDescription) (send a batch as application/cloudevents-batch+json)"))
            }
            guard !nodes.isEmpty else { return .failure(.badRequest("the batch is empty; send at least one event")) }
            guard nodes.count <= eventsMax else {
                return .failure(.badRequest("the batch has \(nodes.count) events; at most \(eventsMax) per request"))
            }
            return build(nodes, input: input, importer: importer)
        }
    }

    private static func build(_ nodes: [JSONNode], input: UnsafeRawBufferPointer, importer: Importer) -> Result<IngestBatch, Problem> {
        var batch = IngestBatch()
        var problems: [Problem.Item] = []
        var problemCount = 0
        var offending = Set<Int>()
        func report(_ index: Int, _ attribute: String, expected: String, got: String?) {
            problemCount += 1
            offending.insert(index)
            if problems.count < problemsMax { problems.append(Problem.Item(index: index, attribute: attribute, expected: expected, got: got)) }
        }
        var seen: [String: (index: Int, event: NewEvent)] = [:]
        let recordBytesMax = importer.ledger.options.recordBytesMax
        for (index, node) in nodes.enumerated() {
            guard node.range.count <= CloudEventParser.lineBytesMax else {
                report(index, "", expected: "an event of at most \(CloudEventParser.lineBytesMax) bytes", got: "\(node.range.count) bytes")
                continue
            }
            let envelope: CloudEventEnvelope
            switch CloudEventParser.parse(node: node, in: input, lineNumber: index) {
            case .failure(let found):
                for problem in found.problems {
                    let got = problem.byteOffset.map { "\(problem.got ?? "") at byte \($0)" } ?? problem.got
                    report(index, problem.attribute, expected: problem.expected, got: got)
                }
                continue
            case .success(let parsed):
                envelope = parsed
            }
            let event = importer.newEvent(from: envelope)
            if Importer.recordBytes(of: event) > recordBytesMax {
                report(index, "data", expected: "an event the ledger can store: a record of at most \(recordBytesMax) bytes",
                       got: "\(Importer.recordBytes(of: event)) bytes (data is \(event.data.count) bytes)")
                continue
            }
            let flag = importer.flag(for: envelope, event: event)
            if let flag, Importer.recordBytes(of: flag.event) > recordBytesMax {
                report(index, "data", expected: "an event whose fapiao.ledger.flagged companion fits a record of \(recordBytesMax) bytes",
                       got: "\(Importer.recordBytes(of: flag.event)) bytes")
                continue
            }
            let expectation: StreamExpectation
            switch Self.expectation(envelope.extensions) {
            case .success(let found): expectation = found
            case .failure(let problem):
                report(index, problem.attribute, expected: problem.expected, got: problem.got)
                continue
            }
            let key = event.source + "\u{0}" + event.id
            if let earlier = seen[key] {
                if earlier.event != event {
                    report(index, "id", expected: "a new id: (source, id) is the idempotency key",
                           got: "\"\(event.id)\" from \(event.source), used by element \(earlier.index) with different content")
                    continue
                }
            } else {
                seen[key] = (index, event)
            }
            var sellerTaxId: String?
            if case let .invoiceIssued(issued) = envelope.event { sellerTaxId = issued.seller.taxId }
            batch.sent.append(Sent(source: event.source, id: event.id, stream: event.stream, entryIndex: batch.entries.count,
                                   flagged: flag.map { $0.findings.map(\.rule.rawValue) }, system: envelope.event.system, sellerTaxId: sellerTaxId))
            batch.entries.append(AppendEntry(event, expecting: expectation))
            if let flag { batch.entries.append(AppendEntry(flag.event, expecting: .any)) }
        }
        guard problemCount == 0 else {
            let detail = "\(problemCount) problem(s) in \(offending.count) of \(nodes.count) event(s); nothing was recorded"
            return .failure(.invalidEvents(detail, problems: problems))
        }
        return .success(batch)
    }

    /// The optional extension attribute `expectedversion`: the stream's version before this
    /// event (0: the stream must not exist yet). Absent: no expectation.
    static func expectation(_ extensions: [CloudEventExtension]) -> Result<StreamExpectation, Problem.Item> {
        guard let found = extensions.first(where: { $0.name == "expectedversion" }) else { return .success(.any) }
        let text: String?
        switch found.value {
        case .number(let number): text = number
        case .string(let string): text = string
        default: text = nil
        }
        guard let text, let version = UInt64(text) else {
            return .failure(Problem.Item(index: nil, attribute: "expectedversion",
                                         expected: "a non-negative integer: the stream's version before this event (0: a new stream)",
                                         got: "\(found.value)"))
        }
        return .success(version == 0 ? .noStream : .version(version))
    }

    func answer(_ result: AppendResult) -> AppendAnswer {
        var events: [AppendAnswer.Event] = []
        events.reserveCapacity(sent.count)
        for (index, sent) in sent.enumerated() {
            events.append(AppendAnswer.Event(
                index: index, source: sent.source, id: sent.id, position: result.positions[sent.entryIndex],
                new: result.isNew[sent.entryIndex], flagged: sent.flagged))
        }
        let new = events.lazy.filter(\.new).count
        return AppendAnswer(positions: events.map(\.position), new: new, alreadyPresent: events.count - new, events: events)
    }
}

extension FapiaoServer {
    /// `POST /v1/events`.
    func appendEvents(_ request: Request) async throws(Problem) -> Response {
        let principal = try access.authorize(request, roles: Roles.append)
        guard let shape = IngestBatch.shape(contentType: request.headers[.contentType]) else {
            throw .unsupportedMediaType(request.headers[.contentType])
        }
        let body = try await collectBody(request)
        let batch: IngestBatch
        switch IngestBatch.parse(body, shape: shape, importer: importer, eventsMax: configuration.batchEventsMax) {
        case .success(let parsed): batch = parsed
        case .failure(let problem):
            metrics.refusedRequests.increment()
            throw problem
        }
        // A scoped writer writes only inside its scope: events naming another system, or an
        // issue by another seller, refuse the whole batch.
        let outside = batch.sent.enumerated().compactMap { index, sent -> Problem.Item? in
            if let system = sent.system, !principal.scope.admits(system: system), principal.scope.systems != nil {
                return Problem.Item(index: index, attribute: "data.system", expected: "a system of the token's scope", got: system)
            }
            if let sellers = principal.scope.sellerTaxIds, let seller = sent.sellerTaxId, !sellers.contains(seller) {
                return Problem.Item(index: index, attribute: "data.seller.taxId", expected: "a seller of the token's scope", got: seller)
            }
            return nil
        }
        guard outside.isEmpty else {
            metrics.refusedRequests.increment()
            var problem = Problem.forbidden("the token \(principal.name) may not write \(outside.count) of these events; nothing was written")
            problem.problems = outside
            throw problem
        }
        let started = ContinuousClock.now
        let result: AppendResult
        do {
            result = try await ledger.append(batch.entries)
        } catch {
            metrics.refusedRequests.increment()
            throw Problem.from(error, events: batch.sent.map { ($0.source, $0.id, $0.stream) })
        }
        metrics.commitLatency.recordInterval(since: started)
        metrics.appendRequests.increment()
        metrics.batchEvents.record(batch.sent.count)
        let answer = batch.answer(result)
        metrics.appendedEvents.increment(by: answer.new)
        metrics.presentEvents.increment(by: answer.alreadyPresent)
        do {
            return try ResponseJSON.response(answer)
        } catch {
            throw .internalError("cannot encode the answer: \(error)")
        }
    }

    /// The body, refused with 413 as soon as it passes `requestBytesMax` (or says it will).
    func collectBody(_ request: Request) async throws(Problem) -> [UInt8] {
        let bytesMax = configuration.requestBytesMax
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > bytesMax {
            throw .tooLarge(bytesMax: bytesMax)
        }
        var bytes: [UInt8] = []
        do {
            for try await chunk in request.body {
                guard bytes.count + chunk.readableBytes <= bytesMax else { throw Problem.tooLarge(bytesMax: bytesMax) }
                bytes.append(contentsOf: chunk.readableBytesView)
            }
        } catch let problem as Problem {
            throw problem
        } catch {
            throw .badRequest("the body could not be read: \(error)")
        }
        return bytes
    }
}

extension CoreMetrics.Timer {
    func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let (seconds, attoseconds) = elapsed.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
