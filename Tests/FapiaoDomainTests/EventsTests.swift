import Testing
@testable import FapiaoDomain

struct EventsTests {
    @Test func everyTypeHasAFixture() {
        #expect(Set(Fixtures.dataByType.map(\.0)) == Set(EventType.allCases))
    }

    /// decode → encode → decode gives the same value, and encoding is stable.
    @Test(arguments: Fixtures.dataByType)
    func roundTrips(type: EventType, data: String) throws {
        let event = try DomainEvent.decode(type: type, dataBytes: Array(data.utf8)).get()
        #expect(event.type == type)
        let encoded = event.encodedData
        let again = try DomainEvent.decode(type: type, dataBytes: encoded).get()
        #expect(again == event)
        #expect(again.encodedData == encoded)
    }

    @Test func decodesTheIssuedInvoice() {
        let issued = Fixtures.issued()
        #expect(issued.kind == .digitalSpecial)
        #expect(issued.code == nil)
        #expect(issued.key == .digital(number: "24112000000015301234"))
        #expect(issued.issuedAt.dateCST.description == "2024-12-31")
        #expect(issued.buyer.taxId == "91330100799655058B")
        #expect(issued.lines.count == 2)
        #expect(issued.lines[1].taxRate == TaxRate.percent(tenths: 60))
        #expect(issued.lines[1].spec == "月度")
        #expect(issued.lines[0].spec == nil)
        #expect(issued.totalWithTax == Money(fen: 76_400))
        #expect(issued.remarks == "合同 HT-2024-118")
    }

    @Test func encodesContractFieldNamesAndNullCode() throws {
        let text = String(decoding: DomainEvent.invoiceIssued(Fixtures.issued()).encodedData, as: UTF8.self)
        #expect(text.hasPrefix(#"{"number":"24112000000015301234","code":null,"kind":"digital_special","issuedAt":"2024-12-31T16:59:26+08:00","#))
        #expect(text.contains(#""taxRate":"0.06","tax":"12.00""#))
        #expect(text.contains(#""totalWithTax":"764.00""#))
        #expect(!text.contains("spec\":null"))
    }

    @Test func toleratesUnknownFieldsAndOpenRules() throws {
        let data = #"{"system":"s1","rule":"vendor_blacklist","detail":"x","extra":{"nested":[1,2]},"priority":3}"#
        let event = try DomainEvent.decode(type: .receiptRejected, dataBytes: Array(data.utf8)).get()
        guard case .receiptRejected(let rejected) = event else { Issue.record("wrong case"); return }
        #expect(rejected.rule.rawValue == "vendor_blacklist")
        #expect(!rejected.rule.isKnown)
        #expect(ReceiptRule.duplicate.isKnown)
    }

    @Test(arguments: [
        (EventType.invoiceIssued, #"{"number":"24112000000015301234"}"#, "kind: expected one of \"digital_special\", \"digital_ordinary\", \"vat_special\", \"vat_ordinary\", \"vat_electronic_special\", \"vat_electronic_ordinary\", got nothing (the field is missing)"),
        (.redLetterIssued, #"{"redInvoiceNumber":"1","totalAmount":-720.75,"totalTax":"-43.25"}"#, "totalAmount: expected a decimal string like \"520.75\", got a JSON number"),
        (.redLetterIssued, #"{"redInvoiceNumber":"1","totalAmount":"-720.755","totalTax":"-43.25"}"#, "totalAmount: expected a decimal string like \"520.75\", got \"-720.755\": 3 decimal places, at most 2 allowed"),
        (.redLetterIssued, #"{"redInvoiceNumber":"1","totalAmount":"7.2e2","totalTax":"-43.25"}"#, "totalAmount: expected a decimal string like \"520.75\", got \"7.2e2\": exponent notation is not accepted"),
        (.deliveryFailed, #"{"system":"s","attempt":1,"reason":"timeout","detail":""}"#, "reason: expected one of \"network_timeout\", \"connection_refused\", \"http_error\", \"auth_expired\", \"payload_rejected\", got \"timeout\""),
        (.deliveryAttempted, #"{"system":"s","attempt":1.0}"#, "attempt: expected a positive integer, got 1.0"),
        (.deliveryAttempted, #"{"system":"s","attempt":0}"#, "attempt: expected a positive integer, got 0"),
        (.deliveryAttempted, #"{"system":"","attempt":"1"}"#, "system: expected a non-empty string without control characters, got \"\""),
        (.receiptAccepted, #"{"system":"a\u0000approved"}"#, "system: expected a non-empty string without control characters, got control character U+0000"),
        (.accessGranted, #"{"system":"s","user":"u\tv","scope":{"all":true}}"#, "user: expected a non-empty string without control characters, got control character U+0009"),
        (.redLetterRequested, #"{"confirmationId":"c","requestedBy":"tax_bureau","reason":"r"}"#, "requestedBy: expected one of \"seller\", \"buyer\", got \"tax_bureau\""),
        (.verificationChecked, #"{"provider":"p","result":"fake"}"#, "result: expected one of \"authentic\", \"not_found\", \"mismatch\", \"voided\", \"red_lettered\", \"quota_exceeded\", \"too_old\", got \"fake\""),
        (.systemRegistered, #"{"system":"s","name":"n","ownerTaxId":"t","requiresReview":"yes","visibleStatuses":["approved"]}"#, "requiresReview: expected true or false, got a JSON string"),
        (.systemRegistered, #"{"system":"s","name":"n","ownerTaxId":"t","requiresReview":true,"visibleStatuses":["approved","hidden"]}"#, "visibleStatuses: expected an array of one of \"pending_review\", \"approved\", \"review_rejected\", \"voided\", \"red_lettered\", got \"hidden\""),
        (.accessGranted, #"{"system":"s","user":"u","scope":{"all":false}}"#, "scope.all: expected true (to grant nothing, send no grant), got false"),
        (.accessGranted, #"{"system":"s","user":"u","scope":{"all":true,"sellerTaxIds":[]}}"#, "scope: expected exactly one of {\"all\": true} or {\"sellerTaxIds\": [...]}, got both"),
        (.queryExecuted, #"{"system":"s","user":"u","criteria":{"issuedFrom":"2024-12-32"},"resultCount":0}"#, "criteria.issuedFrom: expected a date like \"2024-12-31\", got \"2024-12-32\": expected a day that exists in 2024-12 at character 9"),
        (.queryExecuted, #"{"system":"s","user":"u","criteria":{},"resultCount":-1}"#, "resultCount: expected an integer ≥ 0, got -1"),
        (.receiptAccepted, #"[]"#, "expected a JSON object, got a JSON array"),
        (.receiptAccepted, #"{"system":null}"#, "system: expected a non-empty string without control characters, got null"),
    ])
    func reportsPreciseProblems(type: EventType, data: String, problem: String) {
        guard case .failure(let problems) = DomainEvent.decode(type: type, dataBytes: Array(data.utf8)) else {
            Issue.record("accepted \(data)")
            return
        }
        #expect(problems.problems.map(\.description).contains(problem), "\(problems)")
    }

    /// One pass reports every bad field, with paths into nested objects and arrays.
    @Test func reportsEveryProblemWithPaths() throws {
        let data = #"""
        {"number":"2411200000001530123","code":null,"kind":"digital_special","issuedAt":"2024-12-31T16:59:26",
         "seller":{"name":"S"},"buyer":{"name":"B"},
         "lines":[{"name":"a","quantity":"1","unitPrice":"1","amount":"1.00","taxRate":"0.06","tax":"0.06"},
                  {"name":"b","quantity":"1","unitPrice":"1","amount":1,"taxRate":"six","tax":"0.06"}, 7],
         "totalAmount":"2.00","totalTax":"0.12","totalWithTax":"2.12"}
        """#
        guard case .failure(let problems) = DomainEvent.decode(type: .invoiceIssued, dataBytes: Array(data.utf8)) else {
            Issue.record("accepted")
            return
        }
        let paths = problems.problems.map(\.path)
        #expect(paths == ["number", "issuedAt", "seller.taxId", "lines[1].amount", "lines[1].taxRate", "lines[2]"])
    }

    @Test func buyerTaxIdIsOptionalButSellerTaxIdIsNot() throws {
        let issued = Fixtures.issued()
        var individual = issued
        individual.buyer = Party(name: "张三", taxId: nil)
        let bytes = DomainEvent.invoiceIssued(individual).encodedData
        let decoded = try DomainEvent.decode(type: .invoiceIssued, dataBytes: bytes).get()
        #expect(decoded == .invoiceIssued(individual))
        #expect(!String(decoding: bytes, as: UTF8.self).contains(#""name":"张三","taxId""#))
    }

    @Test func quantitiesMayBeJSONNumbersButAmountsMayNot() throws {
        let line = #"{"name":"x","quantity":1.5,"unitPrice":2,"amount":"3.00","taxRate":"0","tax":"0.00"}"#
        let data = Fixtures.issuedData.replacingOccurrences(of: #"{"name":"*信息技术服务*技术服务费","quantity":"1","unitPrice":"520.75","amount":"520.75","taxRate":"0.06","tax":"31.25"}"#, with: line)
        #expect(data != Fixtures.issuedData)
        let event = try DomainEvent.decode(type: .invoiceIssued, dataBytes: Array(data.utf8)).get()
        guard case .invoiceIssued(let issued) = event else { Issue.record("wrong case"); return }
        #expect(issued.lines[0].quantity.description == "1.5")
        #expect(issued.lines[0].unitPrice.description == "2")
    }

    @Test func streamKindsMatchTheContract() {
        #expect(EventType.invoiceIssued.streamKind == .invoice)
        #expect(EventType.verificationChecked.streamKind == .invoice)
        #expect(EventType.maintenanceEnded.streamKind == .system)
        #expect(EventType.queryExecuted.streamKind == .user)
        #expect(EventType.ledgerFlagged.streamKind == .invoice)
        // The contract's 20 types, and the one the ledger emits itself.
        #expect(EventType.allCases.count == 21)
    }
}

extension String {
    /// Test helper without Foundation.
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
