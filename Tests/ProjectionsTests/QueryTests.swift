import FapiaoDomain
import Testing
@testable import Ledger
@testable import Projections

/// `InvoiceQueries.list` (date range, status, names, pages) and `nearMisses`.
@Suite struct ListTests {
    static let system = "trusting"

    /// Keys `24112000000000000001`, `...02`, ...: sorted as numbered.
    static func key(_ number: Int) -> String {
        "2411200000" + String(repeating: "0", count: 10 - String(number).count) + String(number)
    }

    @Test func dateRangeIsInclusiveOnChinaStandardTimeIssueDates() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            let newYearCST = Self.key(1)   // 2025-01-01T00:30+08:00: still 2024-12-31 in UTC
            let newYearUTC = Self.key(2)   // written in UTC, 2025-01-01 00:30 in CST
            let newYearsEve = Self.key(3)  // 2024-12-31T23:59+08:00
            var script = Script()
            script.system(Self.system, requiresReview: false)
            for (key, time) in [(newYearCST, "2025-01-01T00:30:00+08:00"), (newYearUTC, "2024-12-31T16:30:00Z"), (newYearsEve, "2024-12-31T23:59:00+08:00")] {
                script.issue(key, at: time)
                script.accept(key, in: Self.system)
            }
            try await append(ledger, script.events)

            func keys(from: CalendarDate?, to: CalendarDate?) throws -> [String] {
                try list(engine, InvoiceListCriteria(system: Self.system, issuedFrom: from, issuedTo: to)).items.map(\.key)
            }
            let eve = CalendarDate(year: 2024, month: 12, day: 31)!
            let day = CalendarDate(year: 2025, month: 1, day: 1)!
            #expect(try keys(from: nil, to: eve) == [newYearsEve])
            #expect(try keys(from: eve, to: eve) == [newYearsEve])
            #expect(try keys(from: day, to: day) == [newYearCST, newYearUTC])
            #expect(try keys(from: day, to: nil) == [newYearCST, newYearUTC])
            #expect(try keys(from: eve, to: day) == [newYearsEve, newYearCST, newYearUTC])
            #expect(try keys(from: CalendarDate(year: 2025, month: 1, day: 2)!, to: nil).isEmpty)
            let page = try list(engine, InvoiceListCriteria(system: Self.system, issuedTo: eve))
            #expect(page.items.first?.issueDate == "2024-12-31")
        }
    }

    @Test func statusFilter() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            var script = Script()
            script.system("reviewing", requiresReview: true)
            for number in 1...3 {
                script.issue(Self.key(number))
                script.accept(Self.key(number), in: "reviewing")
            }
            script.add(Self.key(2), .reviewApproved(ReviewApproved(system: "reviewing", by: "wang.fang")))
            script.add(Self.key(3), .reviewRejected(ReviewRejected(system: "reviewing", by: "wang.fang", reason: "no contract")))
            try await append(ledger, script.events)

            func keys(_ statuses: [VisibleStatus]?) throws -> [String] {
                try list(engine, InvoiceListCriteria(system: "reviewing", statuses: statuses)).items.map(\.key)
            }
            #expect(try keys([.pendingReview]) == [Self.key(1)])
            #expect(try keys([.approved]) == [Self.key(2)])
            #expect(try keys([.reviewRejected]) == [Self.key(3)])
            #expect(try keys([.approved, .reviewRejected]) == [Self.key(2), Self.key(3)])
            #expect(try keys(nil) == [Self.key(1), Self.key(2), Self.key(3)])
            #expect(try keys([.voided, .redLettered]).isEmpty)
            #expect(try list(engine, InvoiceListCriteria(system: "unknown")).items.isEmpty)
        }
    }

    @Test(arguments: [
        ("北京某某科技(有限公司)", true),
        ("北京某某科技（有限公司）", true),
        (" 北京某某 科技 ( 有限公司 ) ", true),
        ("北京某某科技\u{3000}（有限公司）", true),
        ("北京某某科技有限公司", false),
        ("北京某某科技(有限公司)分公司", false),
    ])
    func buyerNameSearchNormalisesBracketsAndSpaces(typed: String, matches: Bool) async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            var script = Script()
            script.system(Self.system, requiresReview: false)
            script.issue(Self.key(1), buyer: "北京某某科技（有限公司）")
            script.issue(Self.key(2), buyer: "上海另一家公司")
            script.accept(Self.key(1), in: Self.system)
            script.accept(Self.key(2), in: Self.system)
            try await append(ledger, script.events)

            let found = try list(engine, InvoiceListCriteria(system: Self.system, buyerName: typed)).items.map(\.key)
            #expect(found == (matches ? [Self.key(1)] : []))
        }
    }

    @Test func nameSearchFoldsFullWidthLettersAndCase() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            var script = Script()
            script.system(Self.system, requiresReview: false)
            script.issue(Self.key(1), buyer: "ＡＢＣ Trading（北京）", seller: "Ｘｉｎ Ｙｕｎ 科技")
            script.accept(Self.key(1), in: Self.system)
            try await append(ledger, script.events)

            #expect(try list(engine, InvoiceListCriteria(system: Self.system, buyerName: "abc trading(北京)")).items.count == 1)
            #expect(try list(engine, InvoiceListCriteria(system: Self.system, sellerName: "XINYUN科技")).items.count == 1)
            #expect(try list(engine, InvoiceListCriteria(system: Self.system, sellerName: "XINYUN")).items.isEmpty)
            // Found by name, but outside the date range or the status filter: not listed.
            #expect(try list(engine, InvoiceListCriteria(system: Self.system, buyerName: "abc trading(北京)", issuedTo: CalendarDate(year: 2025, month: 1, day: 1))).items.isEmpty)
            #expect(try list(engine, InvoiceListCriteria(system: Self.system, statuses: [.pendingReview], buyerName: "abc trading(北京)")).items.isEmpty)
            // Known by name, but not in this system.
            #expect(try list(engine, InvoiceListCriteria(system: "elsewhere", buyerName: "abc trading(北京)")).items.isEmpty)
        }
    }

    /// An invoice issued again (a flagged anomaly) is found by its new names only: the search
    /// entries written for the first issue are removed, incrementally and in a rebuild alike.
    @Test func issuedAgainReplacesItsSearchEntries() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            var script = Script()
            script.system(Self.system, requiresReview: false)
            script.issue(Self.key(1), buyer: "First Buyer", seller: "Seller A")
            script.accept(Self.key(1), in: Self.system)
            script.issue(Self.key(1), buyer: "Second Buyer", seller: "Seller A")
            try await append(ledger, script.events)
            func found(_ buyer: String) throws -> Int {
                try list(engine, InvoiceListCriteria(system: Self.system, buyerName: buyer)).items.count
            }
            #expect(try found("first buyer") == 0)
            #expect(try found("second buyer") == 1)
            try await engine.rebuild([])
            #expect(try found("first buyer") == 0)
            #expect(try found("second buyer") == 1)
            for result in try await engine.verify([]) { #expect(result.identical, "\(result.name): \(result.firstDifference ?? "")") }
        }
    }

    /// Follows `next` from page to page and returns every key listed.
    private func allPages(_ engine: ProjectionEngine, _ criteria: InvoiceListCriteria) throws -> (keys: [String], pages: Int) {
        var criteria = criteria
        var keys: [String] = []
        var pages = 0
        while pages < 100 {
            let page = try list(engine, criteria)
            pages += 1
            #expect(page.items.count <= criteria.limit)
            keys += page.items.map(\.key)
            guard let next = page.next else { break }
            criteria.after = next
        }
        return (keys, pages)
    }

    @Test(arguments: [1, 3, 4, 7, 30])
    func pagesListEveryItemOnce(limit: Int) async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            var script = Script()
            script.system("reviewing", requiresReview: true)
            var expected: [(date: String, key: String)] = []
            for number in 1...13 {
                let day = 1 + number % 4
                script.issue(Self.key(number), at: "2025-01-0\(day)T10:00:00+08:00")
                script.accept(Self.key(number), in: "reviewing")
                if number % 3 == 0 { script.add(Self.key(number), .reviewApproved(ReviewApproved(system: "reviewing", by: "wang.fang"))) }
                expected.append(("2025-01-0\(day)", Self.key(number)))
            }
            try await append(ledger, script.events)

            let sorted = expected.sorted { ($0.date, $0.key) < ($1.date, $1.key) }.map(\.key)
            let (keys, pages) = try allPages(engine, InvoiceListCriteria(system: "reviewing", limit: limit))
            #expect(keys == sorted)
            #expect(pages == (13 + limit - 1) / limit, "the last page says it is the last")
            let (filtered, _) = try allPages(engine, InvoiceListCriteria(system: "reviewing", statuses: [.pendingReview], limit: limit))
            #expect(filtered == sorted.filter { Int($0.suffix(2))! % 3 != 0 })
        }
    }

    /// Buyer and seller both given: the seller is checked on each candidate, and skipped
    /// candidates must not make a page repeat or lose items.
    @Test(arguments: [1, 2, 3, 5])
    func pagesWithBuyerAndSellerListEveryMatchOnce(limit: Int) async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            var script = Script()
            script.system(Self.system, requiresReview: false)
            var wanted: [String] = []
            for number in 1...11 {
                let mine = number % 3 != 1
                script.issue(Self.key(number), buyer: "北京某某科技（有限公司）", seller: mine ? "云栈科技" : "别家公司")
                script.accept(Self.key(number), in: Self.system)
                if mine { wanted.append(Self.key(number)) }
            }
            try await append(ledger, script.events)

            let criteria = InvoiceListCriteria(system: Self.system, buyerName: "北京某某科技(有限公司)", sellerName: "云栈科技", limit: limit)
            let (keys, _) = try allPages(engine, criteria)
            #expect(keys == wanted)
        }
    }
}

@Suite struct NearMissTests {
    static let digital = "24112000000015301234"
    static let legacy = "011001900111-12345678"

    @Test(arguments: [
        ("24112000000015301239", digital, KeyDifference.oneDigitWrong(position: 20)),
        ("24112000000015301254", digital, .oneDigitWrong(position: 19)),
        ("24112000000015302134", digital, .adjacentSwap(position: 17)),
        ("２４１１２０００００００１５３０１２３４", digital, .fullWidthDigits),
        ("2411 2000 0000 1530 1234", digital, .formatting),
        ("12345678-011001900111", legacy, .codeNumberSwapped),
        ("12345678 011001900111", legacy, .codeNumberSwapped),
        ("12345678011001900111", legacy, .codeNumberSwapped),
        ("011001900111-12345679", legacy, .oneDigitWrong(position: 20)),
        ("011001900111-21345678", legacy, .adjacentSwap(position: 13)),
    ])
    func nearMissFindsTheRealKey(typed: String, real: String, difference: KeyDifference) async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            var script = Script()
            for key in [Self.digital, Self.legacy, "24112000000099999999", "011001900111-87654321", "25442000000000000017"] {
                script.issue(key)
            }
            try await append(ledger, script.events)

            let found = try engine.read { snapshot in try InvoiceQueries.nearMisses(of: typed, in: snapshot) }
            #expect(found.map(\.key) == [real], "for \(typed): \(found)")
            #expect(found.first?.difference == difference)
        }
    }

    @Test func nothingNearAnUnrelatedKey() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .async) { ledger, engine in
            var script = Script()
            script.issue(Self.digital)
            let positions = try await append(ledger, script.events)
            try await engine.waitForCheckpoint(SearchProjection.name, atLeast: positions.last!)
            let found = try engine.read { snapshot in try InvoiceQueries.nearMisses(of: "24112000000015309876", in: snapshot) }
            #expect(found.isEmpty)
        }
    }
}
