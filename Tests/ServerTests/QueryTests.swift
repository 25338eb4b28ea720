import FapiaoDomain
import Forensics
import Foundation
import Hummingbird
import HummingbirdTesting
import Projections
import Testing
@testable import Ledger
@testable import Server

@Suite struct QueryTests {
    @Test func anInvoiceIsItsProjectedState() async throws {
        try await withServer { server, client in
            try await seed(server, client)
            let response = try await get(client, "/v1/invoices/\(Fixture.k1)")
            #expect(response.status == .ok)
            let state = try decode(InvoiceState.self, response)
            let expected = try server.engine.read { snapshot in try InvoiceStateProjection.row(Fixture.k1, in: snapshot) }
            #expect(state == expected)
            #expect(state.systems["sys-a"]?.receipt == "accepted")
            // As people type it: spaces are fine.
            let typed = try await get(client, "/v1/invoices/2411%202000%200000%201530%201234")
            #expect(typed.status == .ok)
        }
    }

    @Test func anUnknownInvoiceIs404WithNearMisses() async throws {
        try await withServer { server, client in
            try await seed(server, client)
            let typo = String(Fixture.k1.dropLast()) + "5"
            let response = try await get(client, "/v1/invoices/\(typo)")
            #expect(response.status == .notFound)
            let body = try problem(response)
            #expect(body.type == "urn:fapiao:problem:not-found")
            #expect(body.didYouMean?.contains(Fixture.k1) == true)
        }
    }

    @Test func minPositionWaitsForTheProjection() async throws {
        try await withServer { _, client in
            let answer = try decode(AppendAnswer.self, try await post(client, Fixture.lines))
            let response = try await get(client, "/v1/invoices/\(Fixture.k3)?minPosition=\(answer.positions.max()!)")
            #expect(response.status == .ok)
        }
    }

    @Test func theWhyAnswerIsTheCLIs() async throws {
        try await withServer { server, client in
            try await seed(server, client)
            for (key, system) in [(Fixture.k1, "sys-a"), (Fixture.k3, "sys-a"), (Fixture.k2, "sys-a"), ("24112000000015301239", "sys-a")] {
                let response = try await get(client, "/v1/invoices/\(key)/why?system=\(system)")
                #expect(response.status == .ok, "\(key): \(text(response))")
                let answer = try decode(WhyAnswer.self, response)
                let expected = try server.forensics.why(WhyQuestion(typedKey: key, system: system))
                #expect(answer == expected)
                #expect(Array(response.body.readableBytesView) == (try ResponseJSON.encode(expected)) + [0x0A], "byte for byte")
            }
            // With a cutoff and query criteria, as the CLI's flags.
            let asked = try await get(client, "/v1/invoices/\(Fixture.k1)/why?system=sys-a&at=2025-01-02T10:01:00%2B08:00&issuedFrom=2025-01-03")
            let expected = try server.forensics.why(WhyQuestion(
                typedKey: Fixture.k1, system: "sys-a", cutoff: Cutoff(at: TimeInput.parse("2025-01-02T10:01:00+08:00")),
                criteria: QueryCriteria(issuedFrom: try CalendarDate.parse("2025-01-03").get())))
            #expect(try decode(WhyAnswer.self, asked) == expected)
            #expect(expected.visible == false)

            let missingSystem = try await get(client, "/v1/invoices/\(Fixture.k1)/why")
            #expect(missingSystem.status == .badRequest)
            let badTime = try await get(client, "/v1/invoices/\(Fixture.k1)/why?system=sys-a&at=yesterday")
            #expect(try problem(badTime).problems?.first?.attribute == "at")
        }
    }

    @Test func theTimelineIsTheReplay() async throws {
        try await withServer { server, client in
            try await seed(server, client)
            let response = try await get(client, "/v1/invoices/\(Fixture.k1)/timeline")
            #expect(response.status == .ok)
            #expect(try decode(Replay.self, response) == (try server.forensics.replay(typedKey: Fixture.k1)))
            let none = try await get(client, "/v1/invoices/24112000000015300000/timeline")
            #expect(none.status == .notFound)
        }
    }

    @Test func aSystemsInvoicesComeInPages() async throws {
        try await withServer { server, client in
            try await seed(server, client)
            var lines: [String] = []
            for index in 0..<5 {
                let key = "2411200000001540000\(index)"
                lines.append(Build.line(key, Build.issued(key, seller: "北京云栈科技有限公司", sellerTaxId: Fixture.sellerS1, buyer: "甲公司",
                                                          buyerTaxId: Fixture.ownerA, at: "2025-01-0\(index + 3)T10:00:00+08:00"), id: "iss-p\(index)"))
                lines.append(Build.line(key, .receiptAccepted(ReceiptAccepted(system: "sys-a")), id: "rcp-p\(index)"))
            }
            let answer = try decode(AppendAnswer.self, try await post(client, lines))
            let head = answer.positions.max()!
            var keys: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let uri = "/v1/systems/sys-a/invoices?limit=2&minPosition=\(head)" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try decode(InvoiceListAnswer.self, try await get(client, uri))
                keys += page.items.map(\.key)
                cursor = page.next
                pages += 1
            } while cursor != nil && pages < 10
            #expect(keys.count == 6)
            #expect(Set(keys).count == 6, "no item twice across pages")
            #expect(pages == 3)
            let filtered = try decode(InvoiceListAnswer.self, try await get(client, "/v1/systems/sys-a/invoices?issuedFrom=2025-01-05&issuedTo=2025-01-06&status=approved"))
            #expect(filtered.items.map(\.issueDate) == ["2025-01-05", "2025-01-06"])
            let badStatus = try await get(client, "/v1/systems/sys-a/invoices?status=lost")
            #expect(badStatus.status == .badRequest)
            let badLimit = try await get(client, "/v1/systems/sys-a/invoices?limit=0")
            #expect(try problem(badLimit).problems?.first?.attribute == "limit")
        }
    }
}
