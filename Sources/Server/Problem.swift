import Foundation
import Hummingbird
import Ledger

/// An error answer in RFC 9457 form (`application/problem+json`): what was wrong, in words a
/// client can act on, and for refused events every offending attribute of every element.
///
/// `type` is a URN per kind of problem (`urn:fapiao:problem:invalid-events`), listed in
/// docs/http-api.md; `title` is the same for every occurrence of a type, `detail` is specific.
public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    /// The last part of the type URN: `invalid-events`, `not-found`, ...
    public var slug: String
    public var title: String
    public var detail: String
    /// For refused events: one entry per offending attribute.
    public var problems: [Item]?
    /// For an unknown invoice: keys one typo away that exist (and that the caller may see).
    public var didYouMean: [String]?
    /// Extra response headers (`WWW-Authenticate`, `Retry-After`).
    public var headers: [(name: String, value: String)]

    public struct Item: Codable, Sendable, Equatable, Error {
        /// The element of the batch (0-based); nil when the problem concerns the whole body.
        public var index: Int?
        /// `id`, `time`, `data.totalAmount`, ...; empty when the element as a whole is bad.
        public var attribute: String
        public var expected: String
        public var got: String?

        public init(index: Int?, attribute: String, expected: String, got: String?) {
            self.index = index
            self.attribute = attribute
            self.expected = expected
            self.got = got
        }
    }

    public init(
        _ status: HTTPResponse.Status, _ slug: String, title: String, detail: String, problems: [Item]? = nil,
        didYouMean: [String]? = nil, headers: [(name: String, value: String)] = []
    ) {
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.problems = problems
        self.didYouMean = didYouMean
        self.headers = headers
    }

    public static func == (a: Problem, b: Problem) -> Bool {
        a.status == b.status && a.slug == b.slug && a.detail == b.detail && a.problems == b.problems && a.didYouMean == b.didYouMean
    }

    public var type: String { "urn:fapiao:problem:" + slug }
    public var description: String { "\(status.code) \(slug): \(detail)" }

    /// The JSON body, members in RFC 9457 order.
    struct Body: Encodable {
        var type: String
        var title: String
        var status: Int
        var detail: String
        var problems: [Item]?
        var didYouMean: [String]?
    }

    public var response: Response {
        var fields = HTTPFields()
        fields[.contentType] = "application/problem+json"
        fields[.cacheControl] = "no-store"
        for (name, value) in headers {
            if let field = HeaderName(name) { fields[field] = value }
        }
        let body = Body(type: type, title: title, status: Int(status.code), detail: detail, problems: problems, didYouMean: didYouMean)
        let bytes = (try? ResponseJSON.encode(body)) ?? Array(#"{"title":"unencodable problem"}"#.utf8)
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

// MARK: The problems the server answers

extension Problem {
    static func badRequest(_ detail: String, problems: [Item]? = nil) -> Problem {
        Problem(.badRequest, "bad-request", title: "The request is malformed", detail: detail, problems: problems)
    }

    static func invalidEvents(_ detail: String, problems: [Item]) -> Problem {
        Problem(.badRequest, "invalid-events", title: "Events refused; nothing was recorded", detail: detail, problems: problems)
    }

    static func unauthenticated(_ detail: String, invalidToken: Bool) -> Problem {
        let challenge = invalidToken ? #"Bearer realm="fapiao", error="invalid_token""# : #"Bearer realm="fapiao""#
        return Problem(.unauthorized, "unauthenticated", title: "A bearer token is needed", detail: detail,
                       headers: [("WWW-Authenticate", challenge)])
    }

    static func forbidden(_ detail: String) -> Problem {
        Problem(.forbidden, "forbidden", title: "The token does not allow this", detail: detail)
    }

    static func notFound(_ detail: String, didYouMean: [String]? = nil) -> Problem {
        Problem(.notFound, "not-found", title: "Not found", detail: detail, didYouMean: didYouMean)
    }

    static func tooLarge(bytesMax: Int) -> Problem {
        Problem(.contentTooLarge, "too-large", title: "The request body is too large",
                detail: "the body exceeds \(bytesMax) bytes; send smaller batches")
    }

    static func tooManySubscribers(_ max: Int) -> Problem {
        Problem(.tooManyRequests, "too-many-subscribers", title: "Too many live subscriptions",
                detail: "the server already serves \(max) live subscriptions; retry later", headers: [("Retry-After", "5")])
    }

    static func unsupportedMediaType(_ got: String?) -> Problem {
        Problem(.unsupportedMediaType, "unsupported-media-type", title: "Unsupported content type",
                detail: "send application/cloudevents-batch+json (a JSON array), or one event as application/cloudevents+json or application/json; got \(got ?? "no Content-Type")")
    }

    static func internalError(_ detail: String) -> Problem {
        Problem(.internalServerError, "internal", title: "The server failed", detail: detail)
    }

    /// A refused or failed append. `entries` locate the offending event where the error names it.
    static func from(_ error: LedgerError, events: [(source: String, id: String, stream: String)] = []) -> Problem {
        switch error {
        case let .expectationFailed(stream, expected, actual):
            let index = events.firstIndex { $0.stream == stream }
            return Problem(.conflict, "expectation-failed", title: "A stream expectation did not hold; nothing was recorded",
                           detail: error.description,
                           problems: [Item(index: index, attribute: "expectedversion", expected: "\(expected)", got: "current version \(actual)")])
        case let .idempotencyConflict(source, id, position):
            let index = events.firstIndex { $0.source == source && $0.id == id }
            return Problem(.conflict, "idempotency-conflict", title: "An event id was already used with other content; nothing was recorded",
                           detail: error.description,
                           problems: [Item(index: index, attribute: "id", expected: "a new id: (source, id) is the idempotency key",
                                           got: "\"\(id)\" from \(source), recorded at position \(position) with different content")])
        case .invalid:
            return Problem(.badRequest, "invalid-events", title: "Events refused; nothing was recorded", detail: error.description, problems: [])
        case .overloaded:
            return Problem(.serviceUnavailable, "overloaded", title: "The ledger writer is overloaded; nothing was recorded",
                           detail: error.description, headers: [("Retry-After", "1")])
        case .mapFull, .diskFull:
            return Problem(insufficientStorage, "storage-full", title: "The ledger is full; nothing was recorded", detail: error.description)
        case .closed:
            return Problem(.serviceUnavailable, "shutting-down", title: "The server is shutting down", detail: error.description,
                           headers: [("Retry-After", "5")])
        case .readOnly:
            return Problem(.serviceUnavailable, "read-only", title: "The ledger is read-only", detail: error.description)
        case .notFound, .incompatible, .corruptRecord, .storage:
            return internalError(error.description)
        }
    }
}

/// 507: HTTPTypes names no constant for it.
let insufficientStorage = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")

/// JSON answers: the same Codable values the CLI prints with `--format json`, with sorted keys
/// (stable from run to run), slashes unescaped, pretty-printed; `compact` for SSE `data:` lines.
enum ResponseJSON {
    static func encode<T: Encodable>(_ value: T, compact: Bool = false) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = compact ? [.withoutEscapingSlashes, .sortedKeys] : [.withoutEscapingSlashes, .prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(value))
    }

    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        var bytes = try encode(value)
        bytes.append(0x0A)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// A header name (HTTPTypes' `HTTPField.Name`, reached through what Hummingbird exports).
typealias HeaderName = HTTPFields.Element.Name
