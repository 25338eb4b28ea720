// Reading typed fields out of an event's `data` object, collecting every problem instead of
// stopping at the first: a sender fixing a file wants all its mistakes in one answer.

/// One thing wrong with an event's `data`: the field path (`totalAmount`,
/// `lines[2].taxRate`, `seller.taxId`), what was expected, and what was there.
public struct DataProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var expected: String
    public var got: String

    public init(path: String, expected: String, got: String) {
        self.path = path
        self.expected = expected
        self.got = got
    }

    public var description: String { (path.isEmpty ? "" : path + ": ") + "expected \(expected), got \(got)" }
}

/// Every problem of one `data` object.
public struct DataProblems: Error, Sendable, Hashable, CustomStringConvertible {
    public var problems: [DataProblem]

    public init(_ problems: [DataProblem]) { self.problems = problems }

    public var description: String { problems.map(\.description).joined(separator: "; ") }
}

/// A field's value did not fit: what was expected and a description of what was found.
struct FieldMismatch: Error {
    var expected: String
    var got: String
}

/// The members of one JSON object and the path that names it in problems.
struct ObjectFields {
    let members: [JSONMember]
    let path: String

    func node(_ key: String) -> JSONNode? {
        members.first { $0.key == key }?.node
    }

    func path(_ key: String) -> String { path.isEmpty ? key : path + "." + key }
}

/// Collects problems while fields are read. Readers return nil for a missing or bad field
/// and record why; an event decoder reads every field, then builds its value only if none
/// was nil, so that one pass reports every problem.
struct DataReader {
    private(set) var problems: [DataProblem] = []

    static let missing = "nothing (the field is missing)"

    mutating func record(_ path: String, expected: String, got: String) {
        problems.append(DataProblem(path: path, expected: expected, got: got))
    }

    /// A required field: missing or null is a problem.
    /// `expected` is only evaluated for a problem: building it for every good field would
    /// cost more than reading the field.
    mutating func required<T>(_ fields: ObjectFields, _ key: String, _ convert: (JSONNode) -> Result<T, FieldMismatch>, expected: @autoclosure () -> String) -> T? {
        guard let node = fields.node(key), node.value != .null else {
            record(fields.path(key), expected: expected(), got: fields.node(key) == nil ? DataReader.missing : "null")
            return nil
        }
        return converted(node, in: fields, key, convert)
    }

    /// An optional field: missing and null both mean absent, and absence is not a problem.
    /// The outer optional is nil only when a present value is bad.
    mutating func optional<T>(_ fields: ObjectFields, _ key: String, _ convert: (JSONNode) -> Result<T, FieldMismatch>) -> T?? {
        guard let node = fields.node(key), node.value != .null else { return .some(nil) }
        return converted(node, in: fields, key, convert).map { .some($0) }
    }

    mutating func converted<T>(_ node: JSONNode, in fields: ObjectFields, _ key: String, _ convert: (JSONNode) -> Result<T, FieldMismatch>) -> T? {
        switch convert(node) {
        case .success(let value): return value
        case .failure(let mismatch):
            record(fields.path(key), expected: mismatch.expected, got: mismatch.got)
            return nil
        }
    }

    /// A required non-empty string (or, with `allowEmpty`, any string).
    mutating func text(_ fields: ObjectFields, _ key: String, allowEmpty: Bool = false) -> String? {
        if allowEmpty { return required(fields, key, Field.string, expected: "a string") }
        return required(fields, key, Field.nonEmptyString, expected: Field.nonEmptyStringExpected)
    }

    /// A system or user id: non-empty, without control characters. Ids are joined with NUL and
    /// `/` into index keys and stream names, where a control character would let one id pass for
    /// another (`a` ‖ NUL ‖ `b` would read as system `a`'s status `b`).
    mutating func identifier(_ fields: ObjectFields, _ key: String) -> String? {
        required(fields, key, Field.identifier, expected: Field.identifierExpected)
    }

    /// An optional string; nil outer when present but not a string.
    mutating func optionalText(_ fields: ObjectFields, _ key: String) -> String?? {
        optional(fields, key, Field.string)
    }

    /// An object field read by `decode`, which gets the nested path for its problems.
    mutating func object<T>(_ fields: ObjectFields, _ key: String, expected: @autoclosure () -> String, _ decode: (ObjectFields, inout DataReader) -> T?) -> T? {
        guard let members = required(fields, key, Field.object, expected: expected()) else { return nil }
        return decode(ObjectFields(members: members, path: fields.path(key)), &self)
    }

    /// An array of objects, each decoded with its index in the path (`lines[2].amount`).
    mutating func objects<T>(_ fields: ObjectFields, _ key: String, countMax: Int, expected: @autoclosure () -> String, _ decode: (ObjectFields, inout DataReader) -> T?) -> [T]? {
        guard let elements = required(fields, key, Field.array(countMax: countMax), expected: expected()) else { return nil }
        var values: [T] = []
        var allDecoded = true
        for (index, element) in elements.enumerated() {
            let path = fields.path(key) + "[\(index)]"
            guard case .object(let members) = element.value else {
                record(path, expected: "a JSON object", got: element.value.kindDescription)
                allDecoded = false
                continue
            }
            if let value = decode(ObjectFields(members: members, path: path), &self) { values.append(value) } else { allDecoded = false }
        }
        return allDecoded ? values : nil
    }
}

/// Converters from a JSON node to a field's type, each saying what it expected.
enum Field {
    static let nonEmptyStringExpected = "a non-empty string"
    static let amountExpected = "a decimal string like \"520.75\""
    static let rateExpected = "a rate string like \"0.06\" or \"6%\""
    static let timeExpected = "an RFC 3339 time like \"2024-12-31T17:20:02+08:00\""
    static let dateExpected = "a date like \"2024-12-31\""
    static let stringBytesMax = 4096

    static func string(_ node: JSONNode) -> Result<String, FieldMismatch> {
        guard case .string(let text) = node.value else { return .failure(FieldMismatch(expected: "a string", got: node.value.kindDescription)) }
        return .success(text)
    }

    static func nonEmptyString(_ node: JSONNode) -> Result<String, FieldMismatch> {
        guard case .string(let text) = node.value else {
            return .failure(FieldMismatch(expected: nonEmptyStringExpected, got: node.value.kindDescription))
        }
        guard !text.isEmpty else { return .failure(FieldMismatch(expected: nonEmptyStringExpected, got: "\"\"")) }
        guard text.utf8.count <= stringBytesMax else {
            return .failure(FieldMismatch(expected: "a string of at most \(stringBytesMax) bytes", got: "\(text.utf8.count) bytes"))
        }
        return .success(text)
    }

    static let identifierExpected = "a non-empty string without control characters"

    static func identifier(_ node: JSONNode) -> Result<String, FieldMismatch> {
        let text: String
        switch nonEmptyString(node) {
        case let .failure(mismatch): return .failure(FieldMismatch(expected: identifierExpected, got: mismatch.got))
        case let .success(value): text = value
        }
        // Control characters are ASCII: a byte of a longer UTF-8 sequence is never one.
        if text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }),
           let control = text.unicodeScalars.first(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            let hex = String(control.value, radix: 16, uppercase: true)
            return .failure(FieldMismatch(expected: identifierExpected, got: "control character U+" + String(repeating: "0", count: 4 - hex.count) + hex))
        }
        return .success(text)
    }

    static func bool(_ node: JSONNode) -> Result<Bool, FieldMismatch> {
        guard case .bool(let flag) = node.value else { return .failure(FieldMismatch(expected: "true or false", got: node.value.kindDescription)) }
        return .success(flag)
    }

    static func object(_ node: JSONNode) -> Result<[JSONMember], FieldMismatch> {
        guard case .object(let members) = node.value else { return .failure(FieldMismatch(expected: "a JSON object", got: node.value.kindDescription)) }
        return .success(members)
    }

    static func array(countMax: Int) -> (JSONNode) -> Result<[JSONNode], FieldMismatch> {
        { node in
            guard case .array(let elements) = node.value else { return .failure(FieldMismatch(expected: "a JSON array", got: node.value.kindDescription)) }
            guard elements.count <= countMax else { return .failure(FieldMismatch(expected: "at most \(countMax) elements", got: "\(elements.count)")) }
            return .success(elements)
        }
    }

    /// An integer JSON number no smaller than `minimum` (no fraction, no exponent).
    static func integer(minimum: Int) -> (JSONNode) -> Result<Int, FieldMismatch> {
        { node in
            if case .number(let text) = node.value, let value = Int(text), value >= minimum { return .success(value) }
            let expected = minimum == 1 ? "a positive integer" : "an integer ≥ \(minimum)"
            guard case .number(let text) = node.value else { return .failure(FieldMismatch(expected: expected, got: node.value.kindDescription)) }
            return .failure(FieldMismatch(expected: expected, got: text))
        }
    }

    static func money(_ node: JSONNode) -> Result<Money, FieldMismatch> {
        decimalString(node, expected: amountExpected, Money.parse)
    }

    static func rate(_ node: JSONNode) -> Result<TaxRate, FieldMismatch> {
        decimalString(node, expected: rateExpected, TaxRate.parse)
    }

    /// Quantities and unit prices: a decimal string, or a plain JSON number (the contract
    /// requires strings only for amounts), up to 13 decimal places either way.
    static func quantity(_ node: JSONNode) -> Result<ExactDecimal, FieldMismatch> {
        let expected = "a decimal string like \"1.5\" (at most 13 decimal places)"
        if case .number(let text) = node.value {
            return ExactDecimal.parse(text).mapError { FieldMismatch(expected: expected, got: "\(text): \($0)") }
        }
        return decimalString(node, expected: expected) { ExactDecimal.parse($0) }
    }

    static func decimalString<T>(_ node: JSONNode, expected: String, _ parse: (String) -> Result<T, AmountProblem>) -> Result<T, FieldMismatch> {
        guard case .string(let text) = node.value else { return .failure(FieldMismatch(expected: expected, got: node.value.kindDescription)) }
        return parse(text).mapError { FieldMismatch(expected: expected, got: "\(quote(text)): \($0)") }
    }

    static func timestamp(_ node: JSONNode) -> Result<Timestamp, FieldMismatch> {
        guard case .string(let text) = node.value else { return .failure(FieldMismatch(expected: timeExpected, got: node.value.kindDescription)) }
        return RFC3339.parse(text).mapError { FieldMismatch(expected: timeExpected, got: "\(quote(text)): \($0)") }
    }

    static func date(_ node: JSONNode) -> Result<CalendarDate, FieldMismatch> {
        guard case .string(let text) = node.value else { return .failure(FieldMismatch(expected: dateExpected, got: node.value.kindDescription)) }
        return CalendarDate.parse(text).mapError { FieldMismatch(expected: dateExpected, got: "\(quote(text)): \($0)") }
    }

    /// One of a closed set of string values.
    static func choice<T: RawRepresentable & CaseIterable>(_ type: T.Type) -> (JSONNode) -> Result<T, FieldMismatch> where T.RawValue == String {
        { node in
            if case .string(let text) = node.value, let value = T(rawValue: text) { return .success(value) }
            let expected = choiceExpected(type)
            guard case .string(let text) = node.value else { return .failure(FieldMismatch(expected: expected, got: node.value.kindDescription)) }
            return .failure(FieldMismatch(expected: expected, got: quote(text)))
        }
    }

    static func choiceExpected<T: RawRepresentable & CaseIterable>(_ type: T.Type) -> String where T.RawValue == String {
        "one of " + type.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
    }

    static func choices<T: RawRepresentable & CaseIterable>(_ type: T.Type, countMax: Int) -> (JSONNode) -> Result<[T], FieldMismatch> where T.RawValue == String {
        { node in
            array(countMax: countMax)(node).flatMap { elements in
                var values: [T] = []
                for element in elements {
                    switch choice(type)(element) {
                    case .success(let value): values.append(value)
                    case .failure(let mismatch): return .failure(FieldMismatch(expected: "an array of " + mismatch.expected, got: mismatch.got))
                    }
                }
                return .success(values)
            }
        }
    }

    static func strings(countMax: Int) -> (JSONNode) -> Result<[String], FieldMismatch> {
        { node in
            array(countMax: countMax)(node).flatMap { elements in
                var values: [String] = []
                for element in elements {
                    switch nonEmptyString(element) {
                    case .success(let text): values.append(text)
                    case .failure(let mismatch): return .failure(FieldMismatch(expected: "an array of non-empty strings", got: "an element that is " + mismatch.got))
                    }
                }
                return .success(values)
            }
        }
    }
}

/// Quotes and shortens a value for a problem message, so a 60 KB string does not become a
/// 60 KB error line.
func quote(_ text: String, charactersMax: Int = 40) -> String {
    let shortened = text.count > charactersMax ? String(text.prefix(charactersMax)) + "…" : text
    return String(decoding: JSONWriter.encode(.string(shortened)), as: UTF8.self)
}
