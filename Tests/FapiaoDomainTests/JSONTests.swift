import Testing
@testable import FapiaoDomain

struct JSONTests {
    @Test(arguments: [
        ("null", JSONValue.null),
        ("true", .bool(true)),
        (" false ", .bool(false)),
        ("-0", .number("-0")),
        ("520.75", .number("520.75")),
        ("1e-7", .number("1e-7")),
        ("-12.5E+3", .number("-12.5E+3")),
        (#""""#, .string("")),
        (#""a\"b\\c\/d\n\t\r\b\f""#, .string("a\"b\\c/d\n\t\r\u{8}\u{C}")),
        (#""\u0041\u00e9\u4e2d""#, .string("Aé中")),
        (#""\ud83d\ude00""#, .string("😀")),
        (#""北京财务""#, .string("北京财务")),
    ])
    func parsesScalars(text: String, expected: JSONValue) throws {
        let node = try JSONParser.parse(text)
        #expect(node.value == expected)
    }

    @Test func keepsObjectOrderAndByteRanges() throws {
        let text = #" { "b" : [1, {"x": null}], "a":"北京" ,"c":{} }"# + "\r\n"
        let bytes = Array(text.utf8)
        let root = try JSONParser.parse(bytes)
        guard case .object(let members) = root.value else { Issue.record("not an object"); return }
        #expect(members.map(\.key) == ["b", "a", "c"])
        #expect(String(decoding: bytes[members[0].node.range], as: UTF8.self) == #"[1, {"x": null}]"#)
        #expect(String(decoding: bytes[members[1].node.range], as: UTF8.self) == #""北京""#)
        #expect(String(decoding: bytes[members[2].node.range], as: UTF8.self) == "{}")
        #expect(root.range == 1..<(bytes.count - 2))
        guard case .array(let elements) = members[0].node.value else { Issue.record("not an array"); return }
        #expect(String(decoding: bytes[elements[1].range], as: UTF8.self) == #"{"x": null}"#)
    }

    @Test(arguments: [
        ("", 0, "a JSON value"),
        ("{", 1, "a member name in double quotes"),
        (#"{"a":1,}"#, 7, "a member name in double quotes"),
        ("[1,]", 3, "a JSON value"),
        ("[1 2]", 3, "',' or ']' after an array element"),
        (#"{"a" 1}"#, 5, "':' after the member name"),
        (#"{"a":1 "b":2}"#, 7, "',' or '}' after an object member"),
        ("01", 1, "'.', 'e' or the end of the number after a leading 0"),
        ("1.", 2, "a digit after '.'"),
        ("-", 1, "a digit after '-'"),
        ("1e", 2, "a digit after the exponent marker"),
        ("+1", 0, "a JSON value"),
        ("NaN", 0, "a JSON value"),
        ("tru", 3, "the literal 'true'"),
        ("nul1", 3, "the literal 'null'"),
        ("1 2", 2, "end of input after the value"),
        ("\"abc", 4, "'\"' to close the string"),
        ("\"a\u{1}\"", 2, "a control character to be escaped (\\n, \\t, \\u00XX)"),
        (#""\x""#, 2, #"an escape: one of \" \\ \/ \b \f \n \r \t \uXXXX"#),
        (#""\u12G4""#, 5, "four hex digits after \\u"),
        (#""\ud83d""#, 7, "a low surrogate \\uDC00-\\uDFFF after a high surrogate"),
        (#""\ude00""#, 1, "a high surrogate before a low surrogate"),
        (#"{"a":1,"a":2}"#, 7, "member names to be unique"),
        ("'a'", 0, "a JSON value"),
    ])
    func refusesWithOffsetAndExpectation(text: String, offset: Int, expected: String) {
        #expect(throws: JSONError.self) { try JSONParser.parse(text) }
        do {
            _ = try JSONParser.parse(text)
        } catch {
            #expect(error.offset == offset)
            #expect(error.expected == expected)
        }
    }

    @Test(arguments: [
        [0x22, 0xC3, 0x28, 0x22],         // bad continuation
        [0x22, 0xC0, 0xAF, 0x22],         // overlong '/'
        [0x22, 0xED, 0xA0, 0x80, 0x22],   // encoded surrogate
        [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], // above U+10FFFF
        [0x22, 0xE4, 0xB8, 0x22],         // truncated 3-byte sequence
        [0xEF, 0xBB, 0xBF, 0x31],         // byte-order mark
    ] as [[UInt8]])
    func refusesInvalidUTF8(bytes: [UInt8]) {
        #expect(throws: JSONError.self) { try JSONParser.parse(bytes) }
    }

    @Test func duplicateKeysAreRefusedInLargeObjectsToo() {
        let members = (0..<40).map { #""k\#($0)":\#($0)"# } + [#""k7":0"#]
        let text = "{" + members.joined(separator: ",") + "}"
        #expect(throws: JSONError.self) { try JSONParser.parse(text) }
        let unique = "{" + members.dropLast().joined(separator: ",") + "}"
        #expect((try? JSONParser.parse(unique)) != nil)
    }

    @Test func enforcesLimits() throws {
        let limits = JSONLimits(inputBytesMax: 64, depthMax: 3, stringBytesMax: 5, numberBytesMax: 4, containerElementsMax: 3)
        #expect((try? JSONParser.parse("[[[1]]]", limits: limits)) != nil)
        #expect(throws: JSONError.self) { try JSONParser.parse("[[[[1]]]]", limits: limits) }
        #expect(throws: JSONError.self) { try JSONParser.parse(#""abcdef""#, limits: limits) }
        #expect(throws: JSONError.self) { try JSONParser.parse(#""ab\ncdef""#, limits: limits) }
        #expect(throws: JSONError.self) { try JSONParser.parse("12345", limits: limits) }
        #expect(throws: JSONError.self) { try JSONParser.parse("[1,2,3,4]", limits: limits) }
        #expect(throws: JSONError.self) { try JSONParser.parse(String(repeating: " ", count: 65) + "1", limits: limits) }
    }

    @Test func deepNestingDoesNotOverflowTheStack() {
        let text = String(repeating: "[", count: 100_000)
        #expect(throws: JSONError.self) { try JSONParser.parse(text) }
    }

    @Test(arguments: [
        "plain", "quote \" and backslash \\", "controls \n\r\t\u{8}\u{C}\u{0}\u{1F}", "中文（括号）", "emoji 😀", "",
    ])
    func writerEscapesStringsThatParseBack(text: String) throws {
        let bytes = JSONWriter.encode(.string(text))
        #expect(try JSONParser.parse(bytes).value == .string(text))
        #expect(!bytes.dropFirst().dropLast().contains { $0 < 0x20 })
    }

    @Test func writerIsCompactAndOrdered() throws {
        let value = JSONValue.makeObject([
            ("z", .integer(1)), ("skipped", nil), ("a", .makeArray([.null, .bool(true), .string("x")])),
        ])
        let text = String(decoding: JSONWriter.encode(value), as: UTF8.self)
        #expect(text == #"{"z":1,"a":[null,true,"x"]}"#)
        #expect(try JSONParser.parse(text).value.kindDescription == "a JSON object")
    }
}
