import FapiaoDomain

// Invoice numbers, codes and lines. Every amount is exact: line amount = quantity × unit
// price rounded half-up to the fen, tax = amount × rate rounded half-up, and the totals are
// the sums, so the ledger's rule checks find nothing to flag.

enum InvoiceNumbers {
    /// Digital (数电) number: yy, `11` (Beijing's tax bureau), the issuing channel, and a
    /// 15-digit sequence. Sequences grow with the index (numbers are issued in time order)
    /// with other taxpayers' invoices in between; each index owns its own slot, so numbers
    /// never repeat.
    static func digital(yy: Int, index: Int, seed: UInt64, random: inout SplitMix) -> String {
        let channel = random.weighted([("2", 85), ("1", 10), ("3", 5)])
        let base = Int64(3_000_000_000) + Int64(SplitMix.mix(seed) % 100_000_000_000)
        let sequence = base + Int64(index) * 9_973 + Int64(random.below(9_973))
        return digits(yy, 2) + "11" + channel + digits(sequence, 15)
    }

    /// A red-letter invoice's number: a digital number from a range regular invoices never reach.
    static func redLetter(yy: Int, index: Int) -> String {
        digits(yy, 2) + "112" + digits(900_000_000_000_000 + Int64(index), 15)
    }

    /// Legacy code (发票代码) for a kind: 10 digits for paper special invoices (region 1100,
    /// year, batch, kind digit 1), 12 digits otherwise (0, region 1100, year, batch, kind 04/11/13).
    static func legacyCode(kind: InvoiceKind, yy: Int, batch: Int) -> String {
        switch kind {
        case .vatSpecial: return "1100" + digits(yy, 2) + digits(1 + batch % 9, 1) + "130"
        case .vatOrdinary: return "01100" + digits(yy, 2) + digits(batch % 1000, 3) + "04"
        case .vatElectronicSpecial: return "01100" + digits(yy, 2) + digits(batch % 1000, 3) + "13"
        default: return "01100" + digits(yy, 2) + digits(batch % 1000, 3) + "11"
        }
    }

    /// An 8-digit legacy number, distinct for every index below 10^8.
    static func legacyNumber(index: Int, seed: UInt64) -> String {
        digits((Int64(SplitMix.mix(seed ^ 0x1E6A) % 100_000_000) + Int64(index)) % 100_000_000, 8)
    }

    /// A red-letter confirmation form id (红字确认单编号): 20 digits.
    static func confirmationId(date: CalendarDate, index: Int) -> String {
        "11" + digits(date.year % 100, 2) + digits(date.month, 2) + digits(date.day, 2) + digits(Int64(index), 12)
    }

    static func digits(_ value: some BinaryInteger, _ count: Int) -> String {
        let text = String(value)
        return text.count >= count ? text : String(repeating: "0", count: count - text.count) + text
    }
}

enum InvoiceLines {
    /// 1 to 5 lines from the seller's catalogue. Small-scale sellers charge 1% (3% for some).
    static func make(for seller: Company, random: inout SplitMix) -> [InvoiceLine] {
        let products = Industry.catalog[seller.industry].products
        let count = random.weighted([(1, 62), (2, 22), (3, 10), (4, 4), (5, 2)])
        let smallScaleRate = random.chance(80) ? 10 : 30
        return (0..<count).map { _ in
            let product = random.pick(products)
            let rateTenths = product.rateTenths.map { seller.smallScale ? smallScaleRate : $0 }
            return line(product, rateTenths: rateTenths, random: &random)
        }
    }

    static func line(_ product: Industry.Product, rateTenths: Int?, random: inout SplitMix) -> InvoiceLine {
        let rate = rateTenths.map(TaxRate.percent(tenths:)) ?? TaxRate(treatment: .exempt)
        let quantity: ExactDecimal = product.decimalQuantity
            ? ExactDecimal(significand: Int128(random.int(10...product.quantityMax * 10)), scale: 1)
            : ExactDecimal(significand: Int128(random.int(1...product.quantityMax)), scale: 0)
        let unitPrice = price(product, rateTenths: rateTenths, random: &random)
        let amount = (quantity * unitPrice).roundedToFen
        let tax = rate.treatment == .taxable ? amount.times(rate.fraction).roundedToFen : .zero
        return InvoiceLine(name: product.name, spec: product.spec, unit: product.unit, quantity: quantity, unitPrice: unitPrice,
                           amount: amount, taxRate: rate, tax: tax)
    }

    /// A net unit price: mostly whole fen (round figures for services), sometimes derived from
    /// a tax-inclusive price, as shops price, which leaves up to 10 decimals.
    static func price(_ product: Industry.Product, rateTenths: Int?, random: inout SplitMix) -> ExactDecimal {
        let low = product.priceFen.lowerBound
        let span = product.priceFen.upperBound - low
        // Skewed towards cheap: u² of the range.
        let u = random.below(1_000)
        var fen = low + Int(Int64(span) * Int64(u * u) / 1_000_000)
        if fen >= 100_000 && random.chance(60) { fen = fen / 10_000 * 10_000 }
        else if fen >= 1_000 && random.chance(40) { fen = fen / 100 * 100 }
        fen = max(fen, 1)
        if let rateTenths, rateTenths > 0, random.chance(30) {
            // Tax-inclusive price ÷ (1 + rate), to 10 decimals.
            return ExactDecimal(significand: Int128(fen) * 100_000_000_000 / Int128(1_000 + rateTenths), scale: 10)
        }
        return ExactDecimal(significand: Int128(fen), scale: 2)
    }

    /// Sometimes a remark: a contract or order reference.
    static func remark(index: Int, random: inout SplitMix) -> String? {
        guard random.chance(25) else { return nil }
        switch random.below(4) {
        case 0: return "合同号：HT-" + InvoiceNumbers.digits(Int64(index % 100_000), 6)
        case 1: return "订单号：PO" + InvoiceNumbers.digits(Int64(random.below(100_000_000)), 8)
        case 2: return "项目：年度框架协议第" + String(1 + random.below(12)) + "期"
        default: return "对应结算单：JS" + InvoiceNumbers.digits(Int64(random.below(1_000_000)), 6)
        }
    }

    static func totals(_ lines: [InvoiceLine]) -> (amount: Money, tax: Money, withTax: Money) {
        let amount = lines.reduce(Money.zero) { $0 + $1.amount }
        let tax = lines.reduce(Money.zero) { $0 + $1.tax }
        return (amount, tax, amount + tax)
    }
}
