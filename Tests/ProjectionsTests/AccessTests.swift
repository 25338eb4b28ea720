import FapiaoDomain
import Testing
@testable import Ledger
@testable import Projections

/// The access projection: every grant and revocation, evaluated as of any position.
@Suite struct AccessTests {
    static let system = "beijing-finance"
    static let seller = Build.sellerTaxId
    static let otherSeller = Build.otherSellerTaxId

    private func change(_ user: String, granted: Bool, _ scope: AccessScope, system: String = system) -> (String, DomainEvent) {
        let change = AccessChange(system: system, user: user, scope: scope)
        return ("system/\(system)/user/\(user)", granted ? .accessGranted(change) : .accessRevoked(change))
    }

    /// Rows are binary (v2): every field comes back, all-sellers (nil) and an empty list stay
    /// apart, and a cut or padded row is refused.
    @Test func rowBytesRoundTrip() throws {
        var row = AccessRow(system: "北京-finance", user: "chen.jing")
        row.changes = [
            .init(position: 1, at: -5, granted: true, sellerTaxIds: nil),
            .init(position: 300, at: 1_733_000_000_000_000, granted: false, sellerTaxIds: []),
            .init(position: UInt64.max, at: Int64.min, granted: true, sellerTaxIds: [Self.seller, Self.otherSeller]),
        ]
        let bytes = row.rowBytes()
        #expect(try AccessRow.fromRow(bytes) == row)
        #expect(throws: RowDecodingError.self) { try AccessRow.fromRow(Array(bytes.dropLast())) }
        #expect(throws: RowDecodingError.self) { try AccessRow.fromRow(bytes + [0]) }
        #expect(try AccessRow.fromRow(AccessRow(system: "s", user: "u").rowBytes()).changes.isEmpty)
    }

    @Test func scopeAsOfEachPosition() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            var script = Script()
            let steps = [
                change("zhang.wei", granted: true, .all),                                  // 1
                change("li.na", granted: true, .sellerTaxIds([Self.otherSeller])),        // 2: someone else
                change("zhang.wei", granted: false, .all),                                 // 3
                change("zhang.wei", granted: true, .sellerTaxIds([Self.seller])),          // 4
                change("zhang.wei", granted: true, .sellerTaxIds([Self.otherSeller])),     // 5
                change("zhang.wei", granted: false, .sellerTaxIds([Self.seller])),         // 6
                change("zhang.wei", granted: true, .all, system: "shanghai-erp"),          // 7: another system
            ]
            script.issue("24112000000015301234") // an invoice event in between changes nothing
            for (subject, event) in steps { script.add(subject, event) }
            let positions = try await append(ledger, script.events)
            let p = Array(positions.dropFirst()) // p[0] is step 1

            let row = try #require(try engine.read { snapshot in try AccessProjection.row(system: Self.system, user: "zhang.wei", in: snapshot) })
            #expect(row.changes.map(\.position) == [p[0], p[2], p[3], p[4], p[5]])
            #expect(row.changes.map(\.granted) == [true, false, true, true, false])

            func scope(_ position: UInt64) -> (all: Bool, sellers: Set<String>, evidence: [UInt64]) {
                let scope = row.scope(asOf: position)
                return (scope.all, scope.sellerTaxIds, scope.evidence)
            }
            #expect(scope(positions[0]).all == false)
            #expect(scope(positions[0]).evidence.isEmpty)
            #expect(scope(p[0]).all == true)
            #expect(scope(p[1]).all == true, "another user's grant changes nothing")
            #expect(scope(p[2]).all == false)
            #expect(scope(p[2]).sellers.isEmpty)
            #expect(scope(p[3]).sellers == [Self.seller])
            #expect(scope(p[4]).sellers == [Self.seller, Self.otherSeller])
            #expect(scope(p[5]).sellers == [Self.otherSeller])
            #expect(scope(p[5]).all == false)
            #expect(scope(p[5]).evidence == [p[0], p[2], p[3], p[4], p[5]])
            #expect(row.scope().sellerTaxIds == [Self.otherSeller])

            let other = try #require(try engine.read { snapshot in try AccessProjection.row(system: Self.system, user: "li.na", in: snapshot) })
            #expect(other.scope().sellerTaxIds == [Self.otherSeller])
            let elsewhere = try #require(try engine.read { snapshot in try AccessProjection.row(system: "shanghai-erp", user: "zhang.wei", in: snapshot) })
            #expect(elsewhere.scope().all)
            #expect(try engine.read { snapshot in try AccessProjection.row(system: Self.system, user: "nobody", in: snapshot) } == nil)
        }
    }

    @Test func revokingAllClearsSellerGrantsToo() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .async) { ledger, engine in
            var script = Script()
            for (subject, event) in [
                change("zhang.wei", granted: true, .sellerTaxIds([Self.seller, Self.otherSeller])),
                change("zhang.wei", granted: true, .all),
                change("zhang.wei", granted: false, .all),
            ] { script.add(subject, event) }
            let positions = try await append(ledger, script.events)
            try await engine.waitForCheckpoint(AccessProjection.name, atLeast: positions.last!)

            let row = try #require(try engine.read { snapshot in try AccessProjection.row(system: Self.system, user: "zhang.wei", in: snapshot) })
            #expect(row.scope(asOf: positions[1]).all)
            #expect(row.scope(asOf: positions[1]).sellerTaxIds == [Self.seller, Self.otherSeller])
            #expect(row.scope().all == false)
            #expect(row.scope().sellerTaxIds.isEmpty)
        }
    }
}
