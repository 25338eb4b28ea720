import Testing
@testable import FapiaoDomain

struct CloudEventTests {
    static let goodLine = Fixtures.line(type: .deliveryFailed, data: #"{"system":"beijing-finance", "attempt":2,"reason":"auth_expired","detail":"login expired"}"#)

    @Test func parsesAValidLine() throws {
        let envelope = try CloudEventParser.parse(line: Self.goodLine, lineNumber: 1).get()
        #expect(envelope.specversion == "1.0")
        #expect(envelope.id == "evt-1")
        #expect(envelope.source == "urn:fapiao:sync:beijing-finance")
        #expect(envelope.type == .deliveryFailed)
        #expect(envelope.subject == "24112000000015301234")
        #expect(envelope.stream == .invoice(.digital(number: "24112000000015301234")))
        #expect(envelope.time.text == "2024-12-31T17:00:05+08:00")
        #expect(envelope.time.micros == Fixtures.micros("2024-12-31T09:00:05Z"))
        #expect(envelope.time.offsetSeconds == 8 * 3600)
        #expect(envelope.datacontenttype == "application/json")
        #expect(envelope.event == .deliveryFailed(DeliveryFailed(system: "beijing-finance", attempt: 2, reason: .authExpired, detail: "login expired")))
    }

    /// `data` is stored as the exact bytes of the line, whitespace, escapes and all.
    @Test func keepsDataByteExact() throws {
        let data = "{ \"system\" : \"beijing-finance\",\n \"reason\":\"\\u5347\\u7ea7\" }"
        let line = Fixtures.line(type: .maintenanceStarted, data: data)
        let envelope = try CloudEventParser.parse(line: line, lineNumber: 1).get()
        #expect(envelope.data == Array(data.utf8))
        #expect(envelope.event == .maintenanceStarted(MaintenanceStarted(system: "beijing-finance", reason: "升级")))
    }

    @Test(arguments: Fixtures.dataByType)
    func everyFixtureIsAValidLine(type: EventType, data: String) throws {
        let envelope = try CloudEventParser.parse(line: Fixtures.line(type: type, data: data), lineNumber: 7).get()
        #expect(envelope.type == type)
        #expect(envelope.data == Array(data.utf8))
    }

    @Test func keepsExtensionsAndWritesLinesBack() throws {
        let line = #"{"specversion":"1.0","id":"e","source":"s","type":"fapiao.system.maintenance_ended","subject":"system/x","time":"2024-12-31T17:00:05Z","ledgerposition":1042,"dataschema":"urn:x","traced":true,"gone":null,"data":{"system":"x"}}"#
        let envelope = try CloudEventParser.parse(line: line, lineNumber: 1).get()
        #expect(envelope.extensions == [
            CloudEventExtension(name: "ledgerposition", value: .number("1042")),
            CloudEventExtension(name: "dataschema", value: .string("urn:x")),
            CloudEventExtension(name: "traced", value: .bool(true)),
        ])
        #expect(envelope.datacontenttype == nil)
        let written = envelope.encodedLine()
        let again = try CloudEventParser.parse(line: written, lineNumber: 1).get()
        #expect(again == envelope)
    }

    @Test func buildsEnvelopesFromTypedEvents() throws {
        let event = DomainEvent.reviewApproved(ReviewApproved(system: "beijing-finance", by: "wang.fang"))
        let time = Timestamp(micros: Fixtures.micros("2025-01-02T10:00:00+08:00"))
        let envelope = CloudEventEnvelope(id: "r-1", source: "urn:fapiao:erp:beijing", subject: "24112000000015301234", time: time, event: event)
        #expect(time.text == "2025-01-02T10:00:00+08:00")
        let parsed = try CloudEventParser.parse(line: envelope.encodedLine(), lineNumber: 1).get()
        #expect(parsed == envelope)
    }

    /// Each mutation of a good line breaks one rule; the problem names line, attribute,
    /// expectation and what was found.
    @Test(arguments: [
        (#"{"specversion":"1.0","#, #"{"specversion":"0.3","#, #"line 17: specversion: expected "1.0", got "0.3""#),
        (#""specversion":"1.0","#, "", "line 17: specversion: expected a non-empty string of at most 16 bytes, got nothing (the field is missing)"),
        (#""id":"evt-1""#, #""id":"""#, #"line 17: id: expected a non-empty string of at most 255 bytes, got """#),
        (#""id":"evt-1""#, #""id":17"#, "line 17: id: expected a non-empty string of at most 255 bytes, got a JSON number"),
        (#""id":"evt-1""#, #""id":""# + String(repeating: "x", count: 256) + #"""#, "line 17: id: expected a non-empty string of at most 255 bytes, got 256 bytes"),
        ("urn:fapiao:sync:beijing-finance", "urn:fapiao:sync:beijing finance", #"line 17: source: expected a URI-reference such as "urn:fapiao:issuer:beijing-etax" (no spaces or control characters), got character U+20 in "urn:fapiao:sync:beijing finance""#),
        ("fapiao.delivery.failed", "fapiao.delivery.lost", #"line 17: type: expected a known event type such as "fapiao.invoice.issued", got "fapiao.delivery.lost""#),
        (#""subject":"24112000000015301234""#, #""subject":"2411 2000 0000 1530 1234""#, #"line 17: subject: expected a canonical invoice key (20 digits, or CODE-NUMBER like "011001900111-12345678") for fapiao.delivery.failed, got "2411 2000 0000 1530 1234""#),
        (#""subject":"24112000000015301234""#, #""subject":"system/beijing-finance""#, #"line 17: subject: expected a canonical invoice key (20 digits, or CODE-NUMBER like "011001900111-12345678") for fapiao.delivery.failed, got "system/beijing-finance""#),
        (#""subject":"24112000000015301234""#, #""subject":"a\u0000b""#, #"line 17: subject: expected no NUL characters, got "a\u0000b""#),
        ("2024-12-31T17:00:05+08:00", "2024-12-31T17:00:05", #"line 17: time: expected an RFC 3339 time with offset like "2024-12-31T17:20:02+08:00", got "2024-12-31T17:00:05" (expected a UTC offset: 'Z' or ±hh:mm at character 20)"#),
        (#""datacontenttype":"application/json""#, #""datacontenttype":"text/plain""#, #"line 17: datacontenttype: expected "application/json" or no datacontenttype, got "text/plain""#),
        (#""data":{"#, #""Data":1,"data":{"#, #"line 17: Data: expected an extension attribute name of lower-case letters and digits, got "Data""#),
        (#""data":{"#, #""trace":{"a":1},"data":{"#, "line 17: trace: expected a string, number or boolean extension value, got a JSON object"),
        (#""data":{"#, #""data_base64":"AAA=","data":{"#, "line 17: data_base64: expected data as a JSON object (binary data is not accepted), got data_base64"),
        (#""attempt":2"#, #""attempt":"2""#, "line 17: data.attempt: expected a positive integer, got a JSON string"),
        (#""reason":"auth_expired""#, #""reason":"expired""#, #"line 17: data.reason: expected one of "network_timeout", "connection_refused", "http_error", "auth_expired", "payload_rejected", got "expired""#),
        (#""detail":"login expired"}}"#, #""detail":"x"},"data":{}}"#, #"line 17: byte 300: expected member names to be unique, got a second "data""#),
        (#""detail":"login expired"}}"#, #""detail":"login expired"}"#, "line 17: byte 311: expected ',' or '}' after an object member, got the end of input"),
    ])
    func reportsEachProblem(original: String, replacement: String, message: String) {
        let line = Self.goodLine.replacingOccurrences(of: original, with: replacement)
        #expect(line != Self.goodLine)
        guard case .failure(let problems) = CloudEventParser.parse(line: line, lineNumber: 17) else {
            Issue.record("accepted \(line)")
            return
        }
        #expect(problems.problems.map(\.description).contains(message), "\(problems)")
    }

    @Test func reportsEveryProblemOfALine() {
        let line = #"{"specversion":"2.0","id":"","source":"s","type":"fapiao.delivery.failed","subject":"system/x","time":"yesterday","data":{"system":"x","attempt":0,"reason":"auth_expired","detail":"d"}}"#
        guard case .failure(let problems) = CloudEventParser.parse(line: line, lineNumber: 3) else {
            Issue.record("accepted")
            return
        }
        #expect(problems.problems.map(\.attribute) == ["specversion", "id", "subject", "time", "data.attempt"])
        #expect(problems.problems.allSatisfy { $0.lineNumber == 3 })
    }

    @Test func streamEventsMustNameTheirOwnSystemAndUser() {
        let line = #"{"specversion":"1.0","id":"e","source":"s","type":"fapiao.access.granted","subject":"system/a/user/u1","time":"2024-12-31T17:00:05Z","data":{"system":"b","user":"u2","scope":{"all":true}}}"#
        guard case .failure(let problems) = CloudEventParser.parse(line: line, lineNumber: 1) else {
            Issue.record("accepted")
            return
        }
        #expect(problems.problems.map(\.description) == [
            #"line 1: data.system: expected "a" (the subject's system), got "b""#,
            #"line 1: data.user: expected "u1" (the subject's user), got "u2""#,
        ])
    }

    @Test(arguments: [
        ("system/beijing-finance", StreamSubject?.some(.system("beijing-finance"))),
        ("system/beijing-finance/user/zhang.wei", .user(system: "beijing-finance", user: "zhang.wei")),
        ("011001900111-12345678", .invoice(.legacy(code: "011001900111", number: "12345678"))),
        ("system/", nil),
        ("system/a/users/b", nil),
        ("system/a/user/", nil),
        ("tenant/a", nil),
    ])
    func parsesSubjects(subject: String, expected: StreamSubject?) {
        #expect(StreamSubject(parsing: subject) == expected)
        if let expected { #expect(expected.description == subject) }
    }

    @Test func refusesNonObjectsAndOversizedLines() {
        guard case .failure(let problems) = CloudEventParser.parse(line: "[1]", lineNumber: 2) else {
            Issue.record("accepted")
            return
        }
        #expect(problems.description == "line 2: expected a JSON object (one CloudEvent), got a JSON array")
        let huge = [UInt8](repeating: 0x20, count: CloudEventParser.lineBytesMax + 1)
        #expect(throws: EnvelopeProblems.self) { try CloudEventParser.parse(line: huge, lineNumber: 1).get() }
    }
}
