// What every test target shares: a fresh directory per test (LMDB environments must never be
// opened twice in one process) and a plain failure to throw.
import FapiaoDomain
import Foundation
import Synchronization

/// A directory removed when the value goes away.
public struct TemporaryDirectory: ~Copyable {
    public let path: String

    public init(_ label: String = "test") {
        path = NSTemporaryDirectory() + "fapiao-test-\(label)-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Where a test's ledger goes (created by the ledger itself).
    public var ledgerPath: String { path + "/ledger" }

    /// Writes `text` to a file in this directory and returns its path.
    public func file(_ name: String, _ text: String) throws -> String {
        try file(name, bytes: Array(text.utf8))
    }

    public func file(_ name: String, bytes: [UInt8]) throws -> String {
        let filePath = path + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: filePath))
        return filePath
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A writer clock (microseconds since the epoch) that moves one millisecond per call: recorded
/// times never depend on the wall clock, so two ledgers fed the same events record the same times.
public final class SteppingClock: Sendable {
    private let now = Mutex<Int64>(1_735_660_800_000_000) // 2025-01-01T00:00:00+08:00

    public init() {}

    public var micros: @Sendable () -> Int64 {
        { [self] in now.withLock { $0 += 1_000; return $0 } }
    }
}

/// Domain values written as literals in tests: a typo stops the test at once.
public enum Literal {
    public static func instant(_ text: String) -> Timestamp {
        guard case .success(let time) = RFC3339.parse(text) else { preconditionFailure("bad test time \(text)") }
        return time
    }

    public static func money(_ text: String) -> Money {
        guard case .success(let money) = Money.parse(text) else { preconditionFailure("bad test amount \(text)") }
        return money
    }

    /// An issued invoice for `key` (digital: 20 digits; legacy: CODE-NUMBER) with one line of
    /// `amount` at 6%.
    public static func issued(
        _ key: String, at issuedAt: String, seller: String, sellerTaxId: String, buyer: String, buyerTaxId: String?, amount: String
    ) -> DomainEvent {
        let parts = key.split(separator: "-").map(String.init)
        let isLegacy = parts.count == 2
        let net = money(amount)
        let tax = Money(fen: (net.fen * 6 + 50) / 100)
        guard case .success(let rate) = TaxRate.parse("0.06"), case .success(let one) = ExactDecimal.parse("1"),
              case .success(let price) = ExactDecimal.parse(amount) else { preconditionFailure("bad test line") }
        let line = InvoiceLine(name: "*信息技术服务*技术服务费", quantity: one, unitPrice: price, amount: net, taxRate: rate, tax: tax)
        return .invoiceIssued(InvoiceIssued(
            number: isLegacy ? parts[1] : key, code: isLegacy ? parts[0] : nil, kind: isLegacy ? .vatSpecial : .digitalSpecial,
            issuedAt: instant(issuedAt), seller: Party(name: seller, taxId: sellerTaxId), buyer: Party(name: buyer, taxId: buyerTaxId),
            lines: [line], totalAmount: net, totalTax: tax, totalWithTax: net + tax))
    }
}
