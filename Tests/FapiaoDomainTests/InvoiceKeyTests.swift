import Testing
@testable import FapiaoDomain

struct InvoiceKeyTests {
    @Test(arguments: [
        ("24112000000015301234", "24112000000015301234"),
        ("  24112000000015301234 ", "24112000000015301234"),
        ("2411 2000 0000 1530 1234", "24112000000015301234"),
        ("２４１１２０００００００１５３０１２３４", "24112000000015301234"),
        ("2411-2000-0000-1530-1234", "24112000000015301234"),
        ("011001900111-12345678", "011001900111-12345678"),
        ("12345678-011001900111", "011001900111-12345678"),
        ("011001900111 12345678", "011001900111-12345678"),
        ("011001900111／12345678", "011001900111-12345678"),
        ("011001900111－12345678", "011001900111-12345678"),
        ("011001900111 — 12345678", "011001900111-12345678"),
        ("0110 0190 0111 - 1234 5678", "011001900111-12345678"),
        ("01100190011112345678", "011001900111-12345678"),
        ("1100194320-12345678", "1100194320-12345678"),
        ("12345678 1100194320", "1100194320-12345678"),
        ("０１１００１９００１１１－１２３４５６７８", "011001900111-12345678"),
    ])
    func normalisesWhatPeopleType(typed: String, canonical: String) throws {
        let key = try InvoiceKey.parse(typed).get()
        #expect(key.description == canonical)
        #expect(InvoiceKey(canonical: canonical) == key)
    }

    @Test(arguments: [
        ("2411200000001530123", "19 digits: a digital invoice number has 20"),
        ("241120000000153012345", "21 digits: a digital invoice number has 20"),
        ("110019432012345678", "18 digits: a digital invoice number has 20; a legacy key is a 10- or 12-digit code and an 8-digit number, separated by a hyphen"),
        ("", "no digits: an invoice key is a 20-digit number or a legacy code-number pair"),
        (" - ", "no digits: an invoice key is a 20-digit number or a legacy code-number pair"),
        ("01100190011-12345678", "the code has 11 digits: a legacy invoice code has 10 or 12"),
        ("011001900111-1234567", "the number has 7 digits: a legacy invoice number has 8"),
        ("2411200000001530123A", "character 20 'A' is not a digit, space or hyphen"),
        ("No.24112000000015301234", "character 1 'N' is not a digit, space or hyphen"),
    ])
    func saysPreciselyWhatIsWrong(typed: String, message: String) {
        guard case .failure(let problem) = InvoiceKey.parse(typed) else {
            Issue.record("accepted \(typed)")
            return
        }
        #expect(problem.description == message)
    }

    @Test(arguments: [
        "24112000000015301234", "011001900111-12345678", "1100194320-12345678",
    ])
    func canonicalAcceptsCanonical(text: String) {
        #expect(InvoiceKey(canonical: text)?.description == text)
    }

    @Test(arguments: [
        "2411 2000000015301234", "01100190011112345678", "12345678-011001900111", "011001900111-12345678-1",
        "２４１１２０００００００１５３０１２３４", "0110019001-1234567", "", "-", "011001900111--12345678",
    ])
    func canonicalRefusesEverythingElse(text: String) {
        #expect(InvoiceKey(canonical: text) == nil)
    }

    @Test func decomposesDigitalNumbers() throws {
        let parts = try #require(InvoiceKey.parse("24112000000015301234").get().digitalParts)
        #expect(parts.year == 2024)
        #expect(parts.provinceCode == "11")
        #expect(parts.provinceName == "Beijing")
        #expect(parts.channel == "2")
        #expect(parts.sequence == "000000015301234")
        #expect(try InvoiceKey.parse("24442000000015301234").get().digitalParts?.provinceName == "Guangdong")
        #expect(try InvoiceKey.parse("24992000000015301234").get().digitalParts?.provinceName == nil)
    }

    @Test(arguments: [
        ("011001900111-12345678", "1100", 2019, "11", LegacyCodeKind?.some(.electronicOrdinary)),
        ("031001800104-00000001", "3100", 2018, "04", .paperOrdinary),
        ("044001900113-00000001", "4400", 2019, "13", .electronicSpecial),
        ("011001900199-00000001", "1100", 2019, "99", nil),
        ("1100194130-12345678", "1100", 2019, "1", .paperSpecial),
        ("1100194360-12345678", "1100", 2019, "3", .paperOrdinary),
    ])
    func decomposesLegacyCodes(key: String, region: String, year: Int, kindDigits: String, kind: LegacyCodeKind?) throws {
        let parts = try #require(InvoiceKey(canonical: key)?.legacyCodeParts)
        #expect(parts.region == region)
        #expect(parts.year == year)
        #expect(parts.kindDigits == kindDigits)
        #expect(parts.kind == kind)
    }
}

struct NearMissTests {
    static let actual = InvoiceKey.digital(number: "24112000000015301234")
    static let legacy = InvoiceKey.legacy(code: "011001900111", number: "12345678")

    @Test(arguments: [
        ("24112000000015301234", KeyDifference.identical),
        ("2411 2000 0000 1530 1234", .formatting),
        ("２４１１２０００００００１５３０１２３４", .fullWidthDigits),
        ("24112000000015301235", .oneDigitWrong(position: 20)),
        ("34112000000015301234", .oneDigitWrong(position: 1)),
        ("２４１１２０００００００１５３０１２３５", .oneDigitWrong(position: 20)),
        ("24112000000015302134", .adjacentSwap(position: 17)),
        ("42112000000015301234", .adjacentSwap(position: 1)),
        ("2411200000001530124", .digitMissing(position: 19)),
        ("4112000000015301234", .digitMissing(position: 1)),
        ("241120000000153012345", .extraDigit(position: 21)),
        ("241120000000153701234", .extraDigit(position: 16)),
        ("24112000000015301243", .adjacentSwap(position: 19)),
        ("24112000000015309999", .unrelated),
        ("11112000000015301234", .unrelated),
    ])
    func classifiesDigitalDifferences(typed: String, difference: KeyDifference) {
        #expect(describeDifference(typed: typed, actual: Self.actual) == difference)
    }

    @Test(arguments: [
        ("011001900111-12345678", KeyDifference.identical),
        ("12345678-011001900111", .codeNumberSwapped),
        ("1234567801100190 0111", .codeNumberSwapped),
        ("011001900111 12345678", .formatting),
        ("011001900111-12345679", .oneDigitWrong(position: 20)),
        ("12345679-011001900111", .oneDigitWrong(position: 20)),
        ("011001900111-21345678", .adjacentSwap(position: 13)),
    ])
    func classifiesLegacyDifferences(typed: String, difference: KeyDifference) {
        #expect(describeDifference(typed: typed, actual: Self.legacy) == difference)
    }

    /// Every one-edit typo lists the key it was meant to be among its candidates; a key two
    /// substitutions away is not listed.
    @Test func oneEditTyposListTheKeyTheyMeant() {
        let digits = Array(Self.actual.digits)
        var typos: [String] = []
        for position in digits.indices {
            var substituted = digits
            substituted[position] = substituted[position] == "9" ? "0" : "9"
            typos.append(String(substituted))
            var deleted = digits
            deleted.remove(at: position)
            typos.append(String(deleted))
            var inserted = digits
            inserted.insert("7", at: position)
            typos.append(String(inserted))
            if position + 1 < digits.count && digits[position] != digits[position + 1] {
                var swapped = digits
                swapped.swapAt(position, position + 1)
                typos.append(String(swapped))
            }
        }
        for typo in typos {
            #expect(InvoiceKey.nearMissCandidates(forTyped: typo).contains(Self.actual), "\(typo)")
            #expect(describeDifference(typed: typo, actual: Self.actual) != .unrelated, "\(typo)")
        }
        #expect(!InvoiceKey.nearMissCandidates(forTyped: "24112000000015309934").contains(Self.actual))
        // 180 substitutions and at most 19 swaps, each read two ways (digital, legacy 12 + 8).
        #expect(InvoiceKey.nearMissCandidates(forTyped: Self.actual.digits).count <= 2 * (180 + 19))
        #expect(InvoiceKey.nearMissCandidates(forTyped: "not a key").isEmpty)
    }

    @Test func typedCandidatesNormaliseFirst() {
        #expect(InvoiceKey.nearMissCandidates(forTyped: "12345679-011001900111").contains(Self.legacy))
        #expect(InvoiceKey.nearMissCandidates(forTyped: "０１１００１９００１１１-12345679").contains(Self.legacy))
    }

    @Test func readingsCoverBothHalvesOfALegacyPair() {
        let readings = InvoiceKey.readings(ofTyped: "12345678011001900111")
        #expect(readings.first == .digital(number: "12345678011001900111"))
        #expect(readings.contains(Self.legacy))
        #expect(InvoiceKey.readings(ofTyped: "011001900111 12345678") .first == Self.legacy)
        #expect(InvoiceKey.readings(ofTyped: "123").isEmpty)
    }
}
