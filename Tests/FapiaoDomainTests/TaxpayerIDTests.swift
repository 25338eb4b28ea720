import Testing
@testable import FapiaoDomain

struct TaxpayerIDTests {
    @Test func huaweiWorkedExample() {
        let id = "914403001922038216"
        #expect(TaxpayerID.weightedSum(first17: Array(id.prefix(17))) == 831)
        #expect(TaxpayerID.checkCharacter(first17: Array(id.prefix(17))) == "6")
        #expect(TaxpayerID.check(id) == .valid)
    }

    @Test func weightsArePowersOfThreeModulo31() {
        var power = 1
        for weight in TaxpayerID.weights {
            #expect(weight == power)
            power = power * 3 % 31
        }
        #expect(TaxpayerID.alphabet.count == 31)
    }

    @Test(arguments: ["914403001922038216", "91330100799655058B", "91110108551385082Q", "91320621MA1MRHG205"])
    func validCodes(id: String) {
        #expect(TaxpayerID.check(id) == .valid)
        #expect(TaxpayerID.generate(first17: String(id.prefix(17))) == id)
    }

    @Test func wrongCheckCharacterSaysWhatItShouldBe() {
        #expect(TaxpayerID.check("91320621MA1MRHG207") == .checkFailed(expected: "5", found: "7"))
    }

    /// The check catches every single-character substitution and every adjacent swap.
    @Test(arguments: ["91330100799655058B", "91110108551385082Q"])
    func catchesEverySingleTypoAndAdjacentSwap(id: String) {
        let characters = Array(id)
        for position in 0..<18 {
            for replacement in TaxpayerID.alphabet where replacement != characters[position] {
                var typo = characters
                typo[position] = replacement
                #expect(TaxpayerID.check(String(typo)) != .valid)
            }
        }
        for position in 0..<17 where characters[position] != characters[position + 1] {
            var swapped = characters
            swapped.swapAt(position, position + 1)
            #expect(TaxpayerID.check(String(swapped)) != .valid)
        }
    }

    @Test(arguments: [
        ("110108551385082", 15),
        ("11010855138508X", 15),
        ("91110108551385082", 17),
        ("11010855138508200001", 20),
    ])
    func legacyFormsAreAcceptedWithoutCheck(id: String, length: Int) {
        #expect(TaxpayerID.check(id) == .legacyForm(length: length))
        #expect(TaxpayerID.check(id).isAcceptable)
    }

    @Test(arguments: [
        ("", "0 characters: a USCC has 18 (older IDs 15, 17 or 20)"),
        ("9111010855138508", "16 characters: a USCC has 18 (older IDs 15, 17 or 20)"),
        ("91110108551385O82Q", "character 'O' at position 15 is not in the USCC alphabet (the USCC alphabet has no I, O, S, V, Z)"),
        ("91110108551385082q", "character 'q' at position 18 is not in the USCC alphabet (letters are upper-case)"),
        ("11010855138508-", "character '-' at position 15: expected a digit or an upper-case letter"),
    ])
    func malformedSaysWhy(id: String, reason: String) {
        #expect(TaxpayerID.check(id) == .malformed(reason))
        #expect(!TaxpayerID.check(id).isAcceptable)
    }

    @Test func generateRefusesCharactersOutsideTheAlphabet() {
        #expect(TaxpayerID.generate(first17: "9111010855138508I") == nil)
        #expect(TaxpayerID.generate(first17: "911101085513850") == nil)
    }
}
