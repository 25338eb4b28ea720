// A strict RFC 8259 JSON parser and a compact writer.
//
// Why our own: the ledger must store each event's `data` byte-exact, so every parsed value
// keeps the byte range it came from; errors must say at which byte and what was expected;
// and ingest parses hundreds of thousands of lines a second, which rules out a
// Foundation round trip through `Any`.
//
// Strictness, beyond the RFC grammar: duplicate object keys are refused (RFC 8259 leaves
// their meaning undefined, and an idempotency check that compares bytes must not accept
// two readings of one line); invalid UTF-8 and lone surrogate escapes are refused (they
// cannot become a Swift `String` without silently changing the text); a byte-order mark
// is refused.

/// A parsed or built JSON value. Numbers keep their raw text so that no precision is lost:
/// callers decide whether `"520.75"`-like text is an integer, a decimal, or out of range.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONNode])
    case object([JSONMember])

    /// A number value for an integer, for writers.
    public static func integer(_ value: Int) -> JSONValue { .number(String(value)) }

    /// An object from ordered pairs; pairs whose value is nil are left out, which is how
    /// optional fields are written.
    public static func makeObject(_ pairs: [(String, JSONValue?)]) -> JSONValue {
        .object(pairs.compactMap { key, value in value.map { JSONMember(key: key, node: JSONNode($0)) } })
    }

    /// An array of built values.
    public static func makeArray(_ values: [JSONValue]) -> JSONValue {
        .array(values.map { JSONNode($0) })
    }

    /// How problems name the kind of value they found: "a JSON number", "null", ...
    public var kindDescription: String {
        switch self {
        case .null: "null"
        case .bool: "a JSON boolean"
        case .number: "a JSON number"
        case .string: "a JSON string"
        case .array: "a JSON array"
        case .object: "a JSON object"
        }
    }
}

/// A value with the byte range it occupies in the parsed input. Built values (from
/// `JSONNode(_:)`) have an empty range at 0: they came from no input.
public struct JSONNode: Sendable, Hashable {
    public var value: JSONValue
    public var range: Range<Int>

    public init(value: JSONValue, range: Range<Int>) {
        self.value = value
        self.range = range
    }

    public init(_ value: JSONValue) {
        self.init(value: value, range: 0..<0)
    }

    /// The member named `key` if this is an object that has it.
    public func member(_ key: String) -> JSONNode? {
        guard case .object(let members) = value else { return nil }
        return members.first { $0.key == key }?.node
    }
}

/// One `"key": value` pair of an object, in input order.
public struct JSONMember: Sendable, Hashable {
    public var key: String
    public var node: JSONNode

    public init(key: String, node: JSONNode) {
        self.key = key
        self.node = node
    }
}

/// Limits on what one parse may consume. Every input is untrusted, so each dimension that
/// costs memory or stack has a ceiling.
public struct JSONLimits: Sendable, Hashable {
    public var inputBytesMax: Int
    /// Nesting of arrays and objects; the parser recurses once per level.
    public var depthMax: Int
    public var stringBytesMax: Int
    public var numberBytesMax: Int
    /// Members of one object or elements of one array.
    public var containerElementsMax: Int

    public init(inputBytesMax: Int, depthMax: Int, stringBytesMax: Int, numberBytesMax: Int, containerElementsMax: Int) {
        self.inputBytesMax = inputBytesMax
        self.depthMax = depthMax
        self.stringBytesMax = stringBytesMax
        self.numberBytesMax = numberBytesMax
        self.containerElementsMax = containerElementsMax
    }

    /// Generous for one event line (a 2,000-line invoice fits), small enough to bound a batch.
    public static let standard = JSONLimits(
        inputBytesMax: 1 << 20,
        depthMax: 32,
        stringBytesMax: 1 << 16,
        numberBytesMax: 64,
        containerElementsMax: 10_000
    )
}

/// Why a JSON text was refused: the byte offset (0-based) where parsing stopped, what the
/// grammar expected there, and what was found instead.
public struct JSONError: Error, Sendable, Hashable, CustomStringConvertible {
    public var offset: Int
    public var expected: String
    public var found: String

    public init(offset: Int, expected: String, found: String) {
        self.offset = offset
        self.expected = expected
        self.found = found
    }

    public var description: String { "byte \(offset): expected \(expected), found \(found)" }
}

public enum JSONParser {
    /// Parses one complete JSON text (surrounding whitespace allowed).
    public static func parse(_ bytes: UnsafeRawBufferPointer, limits: JSONLimits = .standard) throws(JSONError) -> JSONNode {
        var reader = JSONReader(bytes: bytes, limits: limits)
        return try reader.parseDocument()
    }

    public static func parse(_ bytes: [UInt8], limits: JSONLimits = .standard) throws(JSONError) -> JSONNode {
        // `withUnsafeBytes` rethrows untyped errors, so the typed error travels in a Result.
        let result = bytes.withUnsafeBytes { raw in Result { () throws(JSONError) -> JSONNode in try parse(raw, limits: limits) } }
        return try result.get()
    }

    public static func parse(_ text: String, limits: JSONLimits = .standard) throws(JSONError) -> JSONNode {
        try parse(Array(text.utf8), limits: limits)
    }
}

// MARK: - Reader

private enum Byte {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let slash = UInt8(ascii: "/")
    static let colon = UInt8(ascii: ":")
    static let comma = UInt8(ascii: ",")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let dot = UInt8(ascii: ".")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")
}

/// Above this many members an object switches from a linear duplicate-key scan to a set,
/// so a hostile object with thousands of keys costs O(n), while the typical event (fewer
/// than a dozen keys) allocates nothing extra.
private let duplicateScanLinearMax = 16

private struct JSONReader {
    let bytes: UnsafeRawBufferPointer
    let limits: JSONLimits
    var index = 0
    var depth = 0

    init(bytes: UnsafeRawBufferPointer, limits: JSONLimits) {
        self.bytes = bytes
        self.limits = limits
    }

    var peek: UInt8 { index < bytes.count ? bytes[index] : 0 }

    mutating func parseDocument() throws(JSONError) -> JSONNode {
        guard bytes.count <= limits.inputBytesMax else {
            throw JSONError(offset: limits.inputBytesMax, expected: "at most \(limits.inputBytesMax) bytes", found: "\(bytes.count) bytes")
        }
        skipWhitespace()
        let node = try parseValue()
        skipWhitespace()
        guard index == bytes.count else { throw failure("end of input after the value") }
        return node
    }

    mutating func parseValue() throws(JSONError) -> JSONNode {
        let start = index
        let value: JSONValue
        switch peek {
        case Byte.openBrace: value = .object(try parseObject())
        case Byte.openBracket: value = .array(try parseArray())
        case Byte.quote: value = .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); value = .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); value = .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); value = .null
        case Byte.minus, Byte.zero...Byte.nine: value = .number(try parseNumber())
        default: throw failure("a JSON value")
        }
        return JSONNode(value: value, range: start..<index)
    }

    mutating func enterContainer() throws(JSONError) {
        depth += 1
        guard depth <= limits.depthMax else { throw failure("nesting at most \(limits.depthMax) deep") }
        index += 1
        skipWhitespace()
    }

    mutating func parseObject() throws(JSONError) -> [JSONMember] {
        try enterContainer()
        defer { depth -= 1 }
        var members: [JSONMember] = []
        if peek == Byte.closeBrace { index += 1; return members }
        var keySet: Set<String> = []
        while true {
            guard peek == Byte.quote else { throw failure("a member name in double quotes") }
            let keyStart = index
            let key = try parseString()
            try checkUnique(key, members: members, keySet: &keySet, at: keyStart)
            skipWhitespace()
            guard peek == Byte.colon else { throw failure("':' after the member name") }
            index += 1
            skipWhitespace()
            members.append(JSONMember(key: key, node: try parseValue()))
            try checkCount(members.count)
            skipWhitespace()
            if peek == Byte.closeBrace { index += 1; return members }
            guard peek == Byte.comma else { throw failure("',' or '}' after an object member") }
            index += 1
            skipWhitespace()
        }
    }

    func checkUnique(_ key: String, members: [JSONMember], keySet: inout Set<String>, at offset: Int) throws(JSONError) {
        let isDuplicate: Bool
        if members.count < duplicateScanLinearMax {
            isDuplicate = members.contains { $0.key == key }
        } else {
            if keySet.isEmpty { keySet = Set(members.map(\.key)) }
            isDuplicate = !keySet.insert(key).inserted
        }
        guard !isDuplicate else {
            throw JSONError(offset: offset, expected: "member names to be unique", found: "a second \(quoted(key))")
        }
    }

    func checkCount(_ count: Int) throws(JSONError) {
        guard count <= limits.containerElementsMax else {
            throw failure("at most \(limits.containerElementsMax) elements in one array or object")
        }
    }

    mutating func parseArray() throws(JSONError) -> [JSONNode] {
        try enterContainer()
        defer { depth -= 1 }
        var elements: [JSONNode] = []
        if peek == Byte.closeBracket { index += 1; return elements }
        while true {
            elements.append(try parseValue())
            try checkCount(elements.count)
            skipWhitespace()
            if peek == Byte.closeBracket { index += 1; return elements }
            guard peek == Byte.comma else { throw failure("',' or ']' after an array element") }
            index += 1
            skipWhitespace()
        }
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONError) {
        let count = literal.utf8CodeUnitCount
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: count)
        for offset in 0..<count where index + offset >= bytes.count || bytes[index + offset] != expected[offset] {
            index += offset
            throw failure("the literal '\(literal)'")
        }
        index += count
    }

    mutating func parseNumber() throws(JSONError) -> String {
        let start = index
        if peek == Byte.minus { index += 1 }
        if peek == Byte.zero {
            index += 1
            if isDigit(peek) { throw failure("'.', 'e' or the end of the number after a leading 0") }
        } else {
            try skipDigits(after: "'-'")
        }
        if peek == Byte.dot {
            index += 1
            try skipDigits(after: "'.'")
        }
        if peek | 0x20 == UInt8(ascii: "e") {
            index += 1
            if peek == Byte.plus || peek == Byte.minus { index += 1 }
            try skipDigits(after: "the exponent marker")
        }
        guard index - start <= limits.numberBytesMax else {
            throw JSONError(offset: start, expected: "a number of at most \(limits.numberBytesMax) characters", found: "\(index - start)")
        }
        return makeString(start..<index)
    }

    mutating func skipDigits(after what: String) throws(JSONError) {
        guard isDigit(peek) else { throw failure("a digit after \(what)") }
        repeat { index += 1 } while isDigit(peek)
    }

    func isDigit(_ byte: UInt8) -> Bool { byte &- Byte.zero < 10 }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    func makeString(_ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    func failure(_ expected: String) -> JSONError {
        JSONError(offset: index, expected: expected, found: describeByte(at: index))
    }

    func describeByte(at offset: Int) -> String {
        guard offset < bytes.count else { return "the end of input" }
        let byte = bytes[offset]
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x" + String(byte, radix: 16, uppercase: true)
    }
}

// MARK: - Strings

extension JSONReader {
    /// The fast path: most strings have no escapes, so they are validated in place and
    /// copied once into a `String`.
    mutating func parseString() throws(JSONError) -> String {
        index += 1
        let start = index
        while index < bytes.count {
            let byte = bytes[index]
            if byte == Byte.quote {
                let text = makeString(start..<index)
                index += 1
                return text
            }
            if byte == Byte.backslash { return try parseEscapedString(from: start) }
            try advanceStringByte(byte, start: start)
        }
        throw failure("'\"' to close the string")
    }

    /// Steps over one unescaped character, validating control bytes, UTF-8 and the length limit.
    mutating func advanceStringByte(_ byte: UInt8, start: Int) throws(JSONError) {
        if byte < 0x20 { throw failure("a control character to be escaped (\\n, \\t, \\u00XX)") }
        if byte < 0x80 { index += 1 } else { try skipUTF8Sequence() }
        guard index - start <= limits.stringBytesMax else {
            throw JSONError(offset: start, expected: "a string of at most \(limits.stringBytesMax) bytes", found: "a longer string")
        }
    }

    mutating func parseEscapedString(from start: Int) throws(JSONError) -> String {
        var buffer: [UInt8] = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            if byte == Byte.quote {
                index += 1
                return String(decoding: buffer, as: UTF8.self)
            }
            let before = index
            if byte == Byte.backslash {
                try appendEscape(to: &buffer)
                guard buffer.count <= limits.stringBytesMax else {
                    throw JSONError(offset: start, expected: "a string of at most \(limits.stringBytesMax) bytes", found: "a longer string")
                }
            } else {
                try advanceStringByte(byte, start: start)
                buffer.append(contentsOf: bytes[before..<index])
            }
        }
        throw failure("'\"' to close the string")
    }

    mutating func appendEscape(to buffer: inout [UInt8]) throws(JSONError) {
        index += 1
        let simple: UInt8?
        switch peek {
        case Byte.quote: simple = Byte.quote
        case Byte.backslash: simple = Byte.backslash
        case Byte.slash: simple = Byte.slash
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"): simple = nil
        default: throw failure("an escape: one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX")
        }
        if let simple {
            buffer.append(simple)
            index += 1
            return
        }
        let scalar = try parseUnicodeEscape()
        var utf8 = Array<UInt8>()
        utf8.reserveCapacity(4)
        UTF8.encode(scalar) { utf8.append($0) }
        buffer.append(contentsOf: utf8)
    }

    /// `\uXXXX`, pairing a high surrogate with the low surrogate that must follow it.
    mutating func parseUnicodeEscape() throws(JSONError) -> Unicode.Scalar {
        index += 1
        let first = try parseHex4()
        if (0xDC00...0xDFFF).contains(first) { throw JSONError(offset: index - 6, expected: "a high surrogate before a low surrogate", found: "a lone low surrogate") }
        guard (0xD800...0xDBFF).contains(first) else { return Unicode.Scalar(first)! }
        guard peek == Byte.backslash, index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
            throw failure("a low surrogate \\uDC00-\\uDFFF after a high surrogate")
        }
        index += 2
        let second = try parseHex4()
        guard (0xDC00...0xDFFF).contains(second) else {
            throw JSONError(offset: index - 6, expected: "a low surrogate \\uDC00-\\uDFFF after a high surrogate", found: "\\u" + String(second, radix: 16))
        }
        return Unicode.Scalar(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))!
    }

    mutating func parseHex4() throws(JSONError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            let digit: UInt32
            switch peek {
            case Byte.zero...Byte.nine: digit = UInt32(peek - Byte.zero)
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(peek - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(peek - UInt8(ascii: "A") + 10)
            default: throw failure("four hex digits after \\u")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    /// Validates one multi-byte UTF-8 sequence per RFC 3629 (no overlongs, no surrogates,
    /// nothing above U+10FFFF) and steps over it.
    mutating func skipUTF8Sequence() throws(JSONError) {
        let lead = bytes[index]
        let length: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; secondRange = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; secondRange = 0x80...0x9F
        case 0xF0: length = 4; secondRange = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; secondRange = 0x80...0x8F
        default: throw failure("valid UTF-8")
        }
        guard index + length <= bytes.count, secondRange.contains(bytes[index + 1]) else {
            index += 1
            throw failure("a UTF-8 continuation byte")
        }
        for offset in 2..<max(length, 2) where bytes[index + offset] & 0xC0 != 0x80 {
            index += offset
            throw failure("a UTF-8 continuation byte")
        }
        index += length
    }
}

private func quoted(_ text: String) -> String {
    String(decoding: JSONWriter.encode(.string(text)), as: UTF8.self)
}

// MARK: - Writer

/// Writes compact JSON (no insignificant whitespace), members in the order given.
/// Strings are escaped minimally: `"`, `\` and control characters; everything else is
/// written as UTF-8, which keeps Chinese names readable in exported files.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public static func encode(_ value: JSONValue) -> [UInt8] {
        var writer = JSONWriter()
        writer.write(value)
        return writer.bytes
    }

    public mutating func write(_ value: JSONValue) {
        switch value {
        case .null: append("null")
        case .bool(let flag): append(flag ? "true" : "false")
        case .number(let text): append(text)
        case .string(let text): writeString(text)
        case .array(let elements): writeArray(elements)
        case .object(let members): writeObject(members)
        }
    }

    /// Splices bytes that are already a JSON value, such as a stored `data` object.
    public mutating func writeRaw(_ json: [UInt8]) {
        bytes.append(contentsOf: json)
    }

    public mutating func writeString(_ text: String) {
        bytes.append(Byte.quote)
        for byte in text.utf8 {
            switch byte {
            case Byte.quote: append("\\\"")
            case Byte.backslash: append("\\\\")
            case 0x0A: append("\\n")
            case 0x0D: append("\\r")
            case 0x09: append("\\t")
            case 0x08: append("\\b")
            case 0x0C: append("\\f")
            case 0..<0x20: append("\\u00" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16))
            default: bytes.append(byte)
            }
        }
        bytes.append(Byte.quote)
    }

    mutating func writeArray(_ elements: [JSONNode]) {
        bytes.append(Byte.openBracket)
        for (offset, element) in elements.enumerated() {
            if offset > 0 { bytes.append(Byte.comma) }
            write(element.value)
        }
        bytes.append(Byte.closeBracket)
    }

    mutating func writeObject(_ members: [JSONMember]) {
        bytes.append(Byte.openBrace)
        for (offset, member) in members.enumerated() {
            if offset > 0 { bytes.append(Byte.comma) }
            writeString(member.key)
            bytes.append(Byte.colon)
            write(member.node.value)
        }
        bytes.append(Byte.closeBrace)
    }

    mutating func append(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }
}
