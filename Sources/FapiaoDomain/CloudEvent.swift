// The CloudEvents 1.0 envelope (JSON structured mode) and its validator.
//
// Bad input is refused whole with a reason per offending line, so the validator never stops
// at the first problem of a line: it reports every attribute that is wrong, each naming the
// line, the attribute (`time`, `data.lines[2].amount`) and what was expected.

/// One validated event, as it arrived. `data` is the exact bytes of the `data` value in the
/// line, which is what the ledger stores and hashes; `event` is the same data, typed.
public struct CloudEventEnvelope: Sendable, Hashable {
    public var specversion: String
    public var id: String
    public var source: String
    public var type: EventType
    public var subject: String
    public var time: Timestamp
    public var datacontenttype: String?
    public var data: [UInt8]
    /// Extension attributes in input order (`ledgerposition`, `dataschema`, ...).
    public var extensions: [CloudEventExtension]
    public var event: DomainEvent

    public init(specversion: String = "1.0", id: String, source: String, type: EventType, subject: String, time: Timestamp,
                datacontenttype: String?, data: [UInt8], extensions: [CloudEventExtension], event: DomainEvent) {
        self.specversion = specversion
        self.id = id
        self.source = source
        self.type = type
        self.subject = subject
        self.time = time
        self.datacontenttype = datacontenttype
        self.data = data
        self.extensions = extensions
        self.event = event
    }

    /// A new event, with `data` encoded from the typed value (for generators and tests).
    public init(id: String, source: String, subject: String, time: Timestamp, event: DomainEvent,
                datacontenttype: String? = CloudEventParser.jsonContentType, extensions: [CloudEventExtension] = []) {
        self.init(id: id, source: source, type: event.type, subject: subject, time: time, datacontenttype: datacontenttype,
                  data: event.encodedData, extensions: extensions, event: event)
    }

    /// The stream this event belongs to.
    public var stream: StreamSubject? { StreamSubject(parsing: subject) }

    /// One compact JSON line (no newline): the required attributes, `datacontenttype`, the
    /// extensions, then `data` spliced byte-exact.
    public func encodedLine() -> [UInt8] {
        var members: [(String, JSONValue?)] = [
            ("specversion", .string(specversion)), ("id", .string(id)), ("source", .string(source)),
            ("type", .string(type.rawValue)), ("subject", .string(subject)), ("time", .string(time.text)),
            ("datacontenttype", datacontenttype.json),
        ]
        members += extensions.map { ($0.name, $0.value) }
        var writer = JSONWriter()
        var head = JSONWriter.encode(.makeObject(members))
        head.removeLast()
        writer.writeRaw(head)
        writer.writeRaw(Array(",\"data\":".utf8))
        writer.writeRaw(data)
        writer.writeRaw([UInt8(ascii: "}")])
        return writer.bytes
    }
}

/// An extension attribute: a lower-case alphanumeric name and a string, number or boolean.
public struct CloudEventExtension: Sendable, Hashable {
    public var name: String
    public var value: JSONValue

    public init(name: String, value: JSONValue) {
        self.name = name
        self.value = value
    }
}

/// Which kind of stream a subject names.
public enum StreamKind: String, Sendable, Hashable, CaseIterable {
    case invoice
    case system
    case user

    var subjectExpected: String {
        switch self {
        case .invoice: "a canonical invoice key (20 digits, or CODE-NUMBER like \"011001900111-12345678\")"
        case .system: "a system stream \"system/<system-id>\""
        case .user: "a user stream \"system/<system-id>/user/<user-id>\""
        }
    }
}

/// A parsed subject: an invoice key, `system/<id>`, or `system/<id>/user/<id>`.
public enum StreamSubject: Sendable, Hashable, CustomStringConvertible {
    case invoice(InvoiceKey)
    case system(String)
    case user(system: String, user: String)

    public init?(parsing subject: String) {
        if let key = InvoiceKey(canonical: subject) {
            self = .invoice(key)
            return
        }
        let parts = subject.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.first == "system", parts.dropFirst().allSatisfy({ !$0.isEmpty }) else { return nil }
        if parts.count == 2 {
            self = .system(String(parts[1]))
        } else if parts.count == 4 && parts[2] == "user" {
            self = .user(system: String(parts[1]), user: String(parts[3]))
        } else {
            return nil
        }
    }

    public var kind: StreamKind {
        switch self {
        case .invoice: .invoice
        case .system: .system
        case .user: .user
        }
    }

    public var description: String {
        switch self {
        case .invoice(let key): key.description
        case .system(let system): "system/" + system
        case .user(let system, let user): "system/\(system)/user/\(user)"
        }
    }
}

/// One thing wrong with one line of input.
public struct EnvelopeProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var lineNumber: Int
    /// `specversion`, `time`, `data.totalAmount`, ...; empty when the line as a whole is bad.
    public var attribute: String
    public var expected: String
    public var got: String?
    /// For JSON syntax errors: the byte offset in the line.
    public var byteOffset: Int?

    public init(lineNumber: Int, attribute: String, expected: String, got: String?, byteOffset: Int? = nil) {
        self.lineNumber = lineNumber
        self.attribute = attribute
        self.expected = expected
        self.got = got
        self.byteOffset = byteOffset
    }

    /// `line 17: data.totalAmount: expected a decimal string like "520.75", got a JSON number`
    public var description: String {
        var text = "line \(lineNumber)"
        if !attribute.isEmpty { text += ": " + attribute }
        if let byteOffset { text += ": byte \(byteOffset)" }
        text += ": expected " + expected
        if let got { text += ", got " + got }
        return text
    }
}

/// Every problem of one line (or batch element): a line is refused whole, with all its reasons.
public struct EnvelopeProblems: Error, Sendable, Hashable, CustomStringConvertible {
    public var problems: [EnvelopeProblem]

    public init(_ problems: [EnvelopeProblem]) { self.problems = problems }

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

public enum CloudEventParser {
    public static let jsonContentType = "application/json"
    public static let lineBytesMax = 1 << 20
    public static let idBytesMax = 255
    public static let sourceBytesMax = 255
    public static let subjectBytesMax = 256
    public static let specVersion = "1.0"

    /// Validates one JSON Lines line (a trailing `\r` is JSON whitespace and is fine).
    public static func parse(line: UnsafeRawBufferPointer, lineNumber: Int) -> Result<CloudEventEnvelope, EnvelopeProblems> {
        guard line.count <= lineBytesMax else {
            return .failure(EnvelopeProblems([EnvelopeProblem(lineNumber: lineNumber, attribute: "", expected: "a line of at most \(lineBytesMax) bytes", got: "\(line.count) bytes")]))
        }
        do throws(JSONError) {
            let root = try JSONParser.parse(line, limits: .standard)
            return parse(node: root, in: line, lineNumber: lineNumber)
        } catch {
            return .failure(EnvelopeProblems([EnvelopeProblem(lineNumber: lineNumber, attribute: "", expected: error.expected, got: error.found, byteOffset: error.offset)]))
        }
    }

    public static func parse(line: [UInt8], lineNumber: Int) -> Result<CloudEventEnvelope, EnvelopeProblems> {
        line.withUnsafeBytes { parse(line: $0, lineNumber: lineNumber) }
    }

    public static func parse(line: String, lineNumber: Int) -> Result<CloudEventEnvelope, EnvelopeProblems> {
        parse(line: Array(line.utf8), lineNumber: lineNumber)
    }

    /// Validates an already parsed event, such as one element of a JSON batch; `input` is
    /// the buffer the node's byte ranges refer to, and `lineNumber` names it in problems.
    public static func parse(node: JSONNode, in input: UnsafeRawBufferPointer, lineNumber: Int) -> Result<CloudEventEnvelope, EnvelopeProblems> {
        guard case .object(let members) = node.value else {
            return .failure(EnvelopeProblems([EnvelopeProblem(lineNumber: lineNumber, attribute: "", expected: "a JSON object (one CloudEvent)", got: node.value.kindDescription)]))
        }
        var validation = EnvelopeValidation(lineNumber: lineNumber)
        let envelope = validation.validate(members, input: input)
        guard let envelope, validation.problems.isEmpty else { return .failure(EnvelopeProblems(validation.problems)) }
        return .success(envelope)
    }
}

/// One line's validation in progress: attributes are checked independently and every
/// problem is kept.
private struct EnvelopeValidation {
    let lineNumber: Int
    var problems: [EnvelopeProblem] = []

    init(lineNumber: Int) { self.lineNumber = lineNumber }

    mutating func report(_ attribute: String, expected: String, got: String?) {
        problems.append(EnvelopeProblem(lineNumber: lineNumber, attribute: attribute, expected: expected, got: got))
    }

    mutating func validate(_ members: [JSONMember], input: UnsafeRawBufferPointer) -> CloudEventEnvelope? {
        let fields = ObjectFields(members: members, path: "")
        let specversion = text(fields, "specversion", bytesMax: 16).flatMap { checkSpecVersion($0) }
        let id = text(fields, "id", bytesMax: CloudEventParser.idBytesMax)
        let source = text(fields, "source", bytesMax: CloudEventParser.sourceBytesMax).flatMap { checkSource($0) }
        let type = text(fields, "type", bytesMax: 128).flatMap { checkType($0) }
        let subject = text(fields, "subject", bytesMax: CloudEventParser.subjectBytesMax).flatMap { checkSubject($0, type: type) }
        let time = text(fields, "time", bytesMax: RFC3339.textBytesMax + 1).flatMap { checkTime($0) }
        let contentType = checkContentType(fields.node("datacontenttype"))
        let extensions = checkExtensions(members)
        let data = checkData(fields, type: type, input: input)
        guard let specversion, let id, let source, let type, let subject, let time, let contentType, let data else { return nil }
        checkStreamConsistency(subject: subject, event: data.event)
        return CloudEventEnvelope(specversion: specversion, id: id, source: source, type: type, subject: subject, time: time,
                                  datacontenttype: contentType, data: data.bytes, extensions: extensions, event: data.event)
    }

    /// A required, non-empty string attribute within its byte limit.
    mutating func text(_ fields: ObjectFields, _ name: String, bytesMax: Int) -> String? {
        if case .string(let value)? = fields.node(name)?.value, !value.isEmpty, value.utf8.count <= bytesMax { return value }
        let expected = "a non-empty string of at most \(bytesMax) bytes"
        guard let node = fields.node(name) else {
            report(name, expected: expected, got: DataReader.missing)
            return nil
        }
        guard case .string(let value) = node.value else {
            report(name, expected: expected, got: node.value.kindDescription)
            return nil
        }
        guard !value.isEmpty, value.utf8.count <= bytesMax else {
            report(name, expected: expected, got: value.isEmpty ? "\"\"" : "\(value.utf8.count) bytes")
            return nil
        }
        return value
    }

    mutating func checkSpecVersion(_ value: String) -> String? {
        guard value == CloudEventParser.specVersion else {
            report("specversion", expected: "\"1.0\"", got: quote(value))
            return nil
        }
        return value
    }

    /// A URI-reference cannot contain spaces or control characters.
    mutating func checkSource(_ value: String) -> String? {
        guard let bad = value.unicodeScalars.first(where: { $0.value <= 0x20 || $0.value == 0x7F }) else { return value }
        report("source", expected: "a URI-reference such as \"urn:fapiao:issuer:beijing-etax\" (no spaces or control characters)",
               got: "character U+\(String(bad.value, radix: 16, uppercase: true)) in \(quote(value))")
        return nil
    }

    mutating func checkType(_ value: String) -> EventType? {
        guard let type = EventType(rawValue: value) else {
            report("type", expected: "a known event type such as \"fapiao.invoice.issued\"", got: quote(value))
            return nil
        }
        return type
    }

    mutating func checkSubject(_ value: String, type: EventType?) -> String? {
        guard !value.unicodeScalars.contains("\u{0}") else {
            report("subject", expected: "no NUL characters", got: quote(value))
            return nil
        }
        guard let type else { return value }
        guard let stream = StreamSubject(parsing: value), stream.kind == type.streamKind else {
            report("subject", expected: type.streamKind.subjectExpected + " for \(type.rawValue)", got: quote(value))
            return nil
        }
        return value
    }

    mutating func checkTime(_ value: String) -> Timestamp? {
        switch RFC3339.parse(value) {
        case .success(let time): return time
        case .failure(let problem):
            report("time", expected: "an RFC 3339 time with offset like \"2024-12-31T17:20:02+08:00\"", got: quote(value) + " (\(problem))")
            return nil
        }
    }

    /// Optional; `nil` (outer) when bad, `.some(nil)` when absent or null.
    mutating func checkContentType(_ node: JSONNode?) -> String?? {
        guard let node, node.value != .null else { return .some(nil) }
        guard case .string(let value) = node.value, value == CloudEventParser.jsonContentType else {
            report("datacontenttype", expected: "\"application/json\" or no datacontenttype", got: node.value == .null ? "null" : describe(node.value))
            return nil
        }
        return .some(value)
    }

    mutating func checkExtensions(_ members: [JSONMember]) -> [CloudEventExtension] {
        var extensions: [CloudEventExtension] = []
        for member in members where !contextAttributes.contains(member.key) {
            if member.key == "data_base64" {
                report("data_base64", expected: "data as a JSON object (binary data is not accepted)", got: "data_base64")
                continue
            }
            guard member.key.utf8.allSatisfy({ isASCIIDigit($0) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) }) else {
                report(member.key, expected: "an extension attribute name of lower-case letters and digits", got: quote(member.key))
                continue
            }
            switch member.node.value {
            case .null: continue
            case .string, .number, .bool: extensions.append(CloudEventExtension(name: member.key, value: member.node.value))
            case .array, .object: report(member.key, expected: "a string, number or boolean extension value", got: member.node.value.kindDescription)
            }
        }
        return extensions
    }

    mutating func checkData(_ fields: ObjectFields, type: EventType?, input: UnsafeRawBufferPointer) -> (bytes: [UInt8], event: DomainEvent)? {
        guard let node = fields.node("data") else {
            report("data", expected: "a JSON object", got: DataReader.missing)
            return nil
        }
        guard case .object = node.value else {
            report("data", expected: "a JSON object", got: node.value.kindDescription)
            return nil
        }
        guard let type else { return nil }
        switch DomainEvent.decode(type: type, data: node) {
        case .success(let event):
            return (Array(input[node.range]), event)
        case .failure(let dataProblems):
            for problem in dataProblems.problems {
                report(problem.path.isEmpty ? "data" : "data." + problem.path, expected: problem.expected, got: problem.got)
            }
            return nil
        }
    }

    /// A system or user stream's events must name the stream's own system and user.
    mutating func checkStreamConsistency(subject: String, event: DomainEvent) {
        switch StreamSubject(parsing: subject) {
        case .system(let system)?:
            if let named = event.system, named != system { report("data.system", expected: quote(system) + " (the subject's system)", got: quote(named)) }
        case .user(let system, let user)?:
            if let named = event.system, named != system { report("data.system", expected: quote(system) + " (the subject's system)", got: quote(named)) }
            if let named = event.user, named != user { report("data.user", expected: quote(user) + " (the subject's user)", got: quote(named)) }
        default:
            break
        }
    }

    func describe(_ value: JSONValue) -> String {
        if case .string(let text) = value { return quote(text) }
        return value.kindDescription
    }
}

/// The attributes the validator reads itself; any other member is an extension.
private let contextAttributes: Set<String> = ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"]
