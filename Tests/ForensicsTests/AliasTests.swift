import Forensics
import Foundation
import Testing

/// A paper invoice printed by the digital platform carries a 20-digit number (its key) and a
/// legacy code and number: typed as CODE-NUMBER, `why` finds it through the search index.
@Suite(.serialized) struct AliasTests {
    @Test func theLegacyAliasOfADigitalPaperInvoiceLeadsToItsKey() async throws {
        try await withScenario { s in
            var f = try s.file()
            f.register()
            let key = "24112000000015309999"
            let data: [String: Any] = [
                "number": key, "code": "011002400511", "paperNumber": "12345678", "kind": "vat_special",
                "issuedAt": "2024-12-31T16:59:26+08:00", "seller": ["name": Cast.seller, "taxId": Cast.sellerTaxId],
                "buyer": ["name": Cast.buyerName, "taxId": Cast.owner],
                "lines": [["name": "*信息技术服务*软件维护费", "quantity": "1", "unitPrice": "520.75", "amount": "520.75", "taxRate": "0.06", "tax": "31.25"]],
                "totalAmount": "520.75", "totalTax": "31.25", "totalWithTax": "552.00",
            ]
            f.event("fapiao.invoice.issued", subject: key, time: "2024-12-31T16:59:26+08:00", source: "urn:fapiao:issuer:beijing-etax", data: data)
            try await s.load(f)

            for typed in ["011002400511-12345678", "12345678 011002400511"] {
                let answer = try s.why(typed)
                #expect(answer.causes.map(\.code) == [.notInLedger])
                #expect(answer.didYouMean == [key], "\(typed): \(String(describing: answer.didYouMean))")
                #expect(answer.suggestions.first?.contains("legacy code and number") == true, "\(answer.suggestions)")
            }
        }
    }
}
