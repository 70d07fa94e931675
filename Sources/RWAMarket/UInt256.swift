/// Just enough 256-bit unsigned arithmetic for constant-product math on `UInt128` amounts: full
/// products, division by a `UInt128`, comparison, and the wrapping sums of price accumulators.
/// Swift has no `UInt256`; every product of two amounts here needs one.
public struct UInt256: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt128
    public var low: UInt128

    public init(high: UInt128, low: UInt128) {
        self.high = high
        self.low = low
    }

    public init(_ value: UInt128) { self.init(high: 0, low: value) }

    public static let zero = UInt256(0)

    /// The exact product of two `UInt128`.
    public static func product(_ a: UInt128, _ b: UInt128) -> UInt256 {
        let (high, low) = a.multipliedFullWidth(by: b)
        return UInt256(high: high, low: low)
    }

    /// `self * factor`, or nil if the result needs more than 256 bits.
    public func multiplied(by factor: UInt128) -> UInt256? {
        let lowProduct = low.multipliedFullWidth(by: factor)
        let highProduct = high.multipliedFullWidth(by: factor)
        guard highProduct.high == 0 else { return nil }
        let (sum, overflow) = lowProduct.high.addingReportingOverflow(highProduct.low)
        guard !overflow else { return nil }
        return UInt256(high: sum, low: lowProduct.low)
    }

    /// `self * factor` modulo 2^256, as Solidity's unchecked arithmetic does for accumulators.
    public func wrappingMultiplied(by factor: UInt128) -> UInt256 {
        let lowProduct = low.multipliedFullWidth(by: factor)
        let highLow = high &* factor
        return UInt256(high: lowProduct.high &+ highLow, low: lowProduct.low)
    }

    /// Floor division by a non-zero `UInt128`, with the remainder.
    public func quotientAndRemainder(dividingBy divisor: UInt128) -> (quotient: UInt256, remainder: UInt128) {
        precondition(divisor != 0, "division by zero is a caller bug")
        let (highQuotient, highRemainder) = high.quotientAndRemainder(dividingBy: divisor)
        // highRemainder < divisor, so this quotient fits in 128 bits.
        let (lowQuotient, remainder) = divisor.dividingFullWidth((highRemainder, low))
        return (UInt256(high: highQuotient, low: lowQuotient), remainder)
    }

    /// The value if it fits in 128 bits.
    public var uint128: UInt128? { high == 0 ? low : nil }

    public static func &+ (a: UInt256, b: UInt256) -> UInt256 {
        let (low, carry) = a.low.addingReportingOverflow(b.low)
        return UInt256(high: a.high &+ b.high &+ (carry ? 1 : 0), low: low)
    }

    public static func &- (a: UInt256, b: UInt256) -> UInt256 {
        let (low, borrow) = a.low.subtractingReportingOverflow(b.low)
        return UInt256(high: a.high &- b.high &- (borrow ? 1 : 0), low: low)
    }

    public static func < (a: UInt256, b: UInt256) -> Bool {
        a.high != b.high ? a.high < b.high : a.low < b.low
    }

    /// Shifts left by fewer than 128 bits, dropping bits beyond 256.
    public func shiftedLeft(by bits: Int) -> UInt256 {
        precondition(bits > 0 && bits < 128)
        return UInt256(high: high << UInt128(bits) | low >> UInt128(128 - bits), low: low << UInt128(bits))
    }

    /// The number of significant bits.
    public var bitWidth: Int { high != 0 ? 256 - high.leadingZeroBitCount : 128 - low.leadingZeroBitCount }

    public var description: String {
        guard high != 0 else { return String(low) }
        var digits: [String] = []
        var rest = self
        let chunk: UInt128 = 10_000_000_000_000_000_000  // 10^19
        while rest.high != 0 {
            let (quotient, remainder) = rest.quotientAndRemainder(dividingBy: chunk)
            let text = String(remainder)
            digits.append(String(repeating: "0", count: 19 - text.count) + text)
            rest = quotient
        }
        return String(rest.low) + digits.reversed().joined()
    }
}
