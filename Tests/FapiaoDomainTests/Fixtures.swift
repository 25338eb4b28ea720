@testable import FapiaoDomain

/// Valid `data` objects for every event type, as upstream systems send them.
enum Fixtures {
    static let issuedData = #"""
    {"number":"24112000000015301234","code":null,"kind":"digital_special","issuedAt":"2024-12-31T16:59:26+08:00",
     "seller":{"name":"北京云栈科技有限公司","taxId":"91110108551385082Q"},
     "buyer":{"name":"杭州青禾贸易有限公司","taxId":"91330100799655058B"},
     "lines":[
       {"name":"*信息技术服务*技术服务费","quantity":"1","unitPrice":"520.75","amount":"520.75","taxRate":"0.06","tax":"31.25"},
       {"name":"*咨询服务*咨询费","spec":"月度","unit":"次","quantity":"2","unitPrice":"100","amount":"200.00","taxRate":"6%","tax":"12.00"}
     ],
     "totalAmount":"720.75","totalTax":"43.25","totalWithTax":"764.00","remarks":"合同 HT-2024-118"}
    """#

    static let dataByType: [(EventType, String)] = [
        (.invoiceIssued, issuedData),
        (.invoiceIssueFailed, #"{"reason":"tax bureau platform unavailable"}"#),
        (.invoiceVoided, #"{"reason":"wrong buyer","by":"li.na"}"#),
        (.redLetterRequested, #"{"confirmationId":"HZ-2025-0001","requestedBy":"buyer","reason":"returned goods"}"#),
        (.redLetterConfirmed, #"{"confirmationId":"HZ-2025-0001"}"#),
        (.redLetterIssued, #"{"redInvoiceNumber":"25112000000000000042","totalAmount":"-720.75","totalTax":"-43.25"}"#),
        (.deliveryAttempted, #"{"system":"beijing-finance","attempt":1}"#),
        (.deliveryFailed, #"{"system":"beijing-finance","attempt":2,"reason":"auth_expired","detail":"login expired"}"#),
        (.deliverySucceeded, #"{"system":"beijing-finance","attempt":3}"#),
        (.receiptAccepted, #"{"system":"beijing-finance"}"#),
        (.receiptRejected, #"{"system":"beijing-finance","rule":"vendor_blacklist","detail":""}"#),
        (.reviewApproved, #"{"system":"beijing-finance","by":"wang.fang"}"#),
        (.reviewRejected, #"{"system":"beijing-finance","by":"wang.fang","reason":"no contract"}"#),
        (.verificationChecked, #"{"provider":"chinatax","result":"not_found"}"#),
        (.systemRegistered, #"{"system":"beijing-finance","name":"北京财务系统","ownerTaxId":"91330100799655058B","requiresReview":true,"visibleStatuses":["approved"]}"#),
        (.maintenanceStarted, #"{"system":"beijing-finance","reason":"upgrade"}"#),
        (.maintenanceEnded, #"{"system":"beijing-finance"}"#),
        (.accessGranted, #"{"system":"beijing-finance","user":"zhang.wei","scope":{"sellerTaxIds":["91110108551385082Q"]}}"#),
        (.accessRevoked, #"{"system":"beijing-finance","user":"zhang.wei","scope":{"all":true}}"#),
        (.queryExecuted, #"{"system":"beijing-finance","user":"zhang.wei","criteria":{"number":"２４１１２０００００００１５３０１２３４","issuedFrom":"2024-12-01","issuedTo":"2024-12-31","buyerName":"杭州青禾贸易有限公司 ","statuses":["approved","pending_review"]},"resultCount":0}"#),
        (.ledgerFlagged, #"{"event":{"source":"urn:fapiao:issuer:beijing-etax","id":"iss-1","type":"fapiao.invoice.issued"},"rulesVersion":"2024-12","findings":[{"line":0,"rule":"line_tax_mismatch","expected":"31.25","actual":"31.40"},{"rule":"buyer_tax_id_invalid","expected":"a valid USCC","actual":"91320621MA1MRHG207"}]}"#),
    ]

    static func subject(for type: EventType) -> String {
        switch type.streamKind {
        case .invoice: "24112000000015301234"
        case .system: "system/beijing-finance"
        case .user: "system/beijing-finance/user/zhang.wei"
        }
    }

    /// A whole JSON line for a type with the given data.
    static func line(type: EventType, data: String, id: String = "evt-1", time: String = "2024-12-31T17:00:05+08:00") -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"urn:fapiao:sync:beijing-finance","type":"\#(type.rawValue)","subject":"\#(subject(for: type))","time":"\#(time)","datacontenttype":"application/json","data":\#(data)}"#
    }

    static func issued() -> InvoiceIssued {
        guard case .success(.invoiceIssued(let issued)) = DomainEvent.decode(type: .invoiceIssued, dataBytes: Array(issuedData.utf8)) else {
            fatalError("the issued fixture must decode")
        }
        return issued
    }

    static func micros(_ text: String) -> Int64 {
        guard case .success(let time) = RFC3339.parse(text) else { fatalError("bad fixture time \(text)") }
        return time.micros
    }
}
