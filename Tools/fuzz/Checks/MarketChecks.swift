import RWAMarket

/// The constant-product pool under deposits, withdrawals, donations and swaps (exact in, exact
/// out, and the raw `swap` with any amounts) that the input chooses: nothing traps, a refused
/// operation changes nothing, and no swap lowers the product of the reserves.
public enum MarketChecks {
    public static func check(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        var pool = Pool()
        var time: UInt32 = 1
        while !input.isExhausted {
            time &+= UInt32(input.byte())
            let before = pool
            let product = UInt256.product(pool.reserve0, pool.reserve1)
            let direction: Pool.Direction = input.bool() ? .zeroForOne : .oneForZero
            var swapped = false
            var succeeded = true
            do {
                switch input.choice(6) {
                case 0: _ = try pool.deposit(amount0: input.amount(), amount1: input.amount(), timestampSeconds: time)
                case 1: _ = try pool.withdraw(shares: input.amount(), timestampSeconds: time)
                case 2: try pool.donate(amount1: input.amount(), timestampSeconds: time)
                case 3:
                    swapped = true
                    _ = try pool.swap(exactIn: input.amount(), direction, minimumOut: 0, timestampSeconds: time)
                case 4:
                    swapped = true
                    _ = try pool.swap(exactOut: input.amount(), direction, timestampSeconds: time)
                default:
                    swapped = true
                    try pool.swap(
                        amount0In: input.amount(), amount1In: input.amount(), amount0Out: input.amount(),
                        amount1Out: input.amount(), timestampSeconds: time)
                }
            } catch {
                succeeded = false
            }
            if !succeeded && pool != before { violated("a refused operation changed the pool") }
            if succeeded && swapped && UInt256.product(pool.reserve0, pool.reserve1) < product {
                violated("a swap lowered the product of the reserves")
            }
        }
    }
}
