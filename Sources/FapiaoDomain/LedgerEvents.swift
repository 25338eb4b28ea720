// Events the ledger emits itself (source `urn:fapiao:ledger`), never sent by upstream systems.

/// Which rules an upstream fact breaks. The fact is recorded as it happened; this event,
/// appended atomically beside it on the same stream, flags it.
///
/// `data`: `{"event": {"source", "id", "type"}, "rulesVersion", "findings": [{"line"?, "rule", "expected", "actual"}]}`
public struct LedgerFlagged: Sendable, Hashable, EventData {
    public struct FlaggedEvent: Sendable, Hashable {
        public var source: String
        public var id: String
        public var type: String

        public init(source: String, id: String, type: String) {
            self.source = source
            self.id = id
            self.type = type
        }
    }

    public var event: FlaggedEvent
    public var rulesVersion: String
    public var findings: [RuleFinding]

    public static let source = "urn:fapiao:ledger"
    public static let findingsCountMax = 10_000

    public init(event: FlaggedEvent, rulesVersion: String, findings: [RuleFinding]) {
        self.event = event
        self.rulesVersion = rulesVersion
        self.findings = findings
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> LedgerFlagged? {
        let event = reader.object(fields, "event", expected: "an object naming the flagged event") { fields, reader -> FlaggedEvent? in
            let source = reader.text(fields, "source")
            let id = reader.text(fields, "id")
            let type = reader.text(fields, "type")
            guard let source, let id, let type else { return nil }
            return FlaggedEvent(source: source, id: id, type: type)
        }
        let rulesVersion = reader.text(fields, "rulesVersion")
        let findings = reader.objects(fields, "findings", countMax: findingsCountMax, expected: "an array of findings") { fields, reader -> RuleFinding? in
            let line = reader.optional(fields, "line", Field.integer(minimum: 0)) ?? nil
            let rule = reader.required(fields, "rule", Field.choice(RuleCode.self), expected: Field.choiceExpected(RuleCode.self))
            let expected = reader.text(fields, "expected", allowEmpty: true)
            let actual = reader.text(fields, "actual", allowEmpty: true)
            guard let rule, let expected, let actual else { return nil }
            return RuleFinding(lineIndex: line, rule: rule, expected: expected, actual: actual)
        }
        guard let event, let rulesVersion, let findings else { return nil }
        return LedgerFlagged(event: event, rulesVersion: rulesVersion, findings: findings)
    }

    var jsonFields: [(String, JSONValue?)] {
        [
            ("event", .makeObject([("source", .string(event.source)), ("id", .string(event.id)), ("type", .string(event.type))])),
            ("rulesVersion", .string(rulesVersion)),
            ("findings", .makeArray(findings.map { finding in
                .makeObject([
                    ("line", finding.lineIndex.map { .integer($0) }), ("rule", .string(finding.rule.rawValue)),
                    ("expected", .string(finding.expected)), ("actual", .string(finding.actual)),
                ])
            })),
        ]
    }
}
