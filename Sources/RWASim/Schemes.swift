import RWAMarket

/// What one run of one scheme achieved.
public struct Outcome: Sendable, Equatable {
    public var slicesSold: Int
    public var totalSlices: Int
    /// Orders that could not be filled whole and stay pending (RWA's "leftover orders").
    public var leftoverOrders: Int
    /// Trades voided because the winner refused to pay.
    public var defaultedTrades: Int

    /// Sold resources over initial total resources (the paper's utilization).
    public var utilization: Double { totalSlices == 0 ? 0 : Double(slicesSold) / Double(totalSlices) }
}

/// Runs `scheme` on the market drawn from `seed`.
public func simulate(_ scheme: Scheme, _ parameters: Parameters, seed: UInt64) -> Outcome {
    let market = Market(parameters, seed: seed)
    switch scheme {
    case .rwa: return RWAScheme.run(market, parameters)
    case .mpra: return LicenceAuctions.mpra(market, parameters)
    case .tra: return LicenceAuctions.tra(market, parameters)
    case .cpa: return LicenceAuctions.cpa(market, parameters)
    }
}

/// RWA (section III-B): every offered licence is tokenized into slices that sit in one
/// constant-product pool against the stablecoin, run by `RWAMarket.Pool` with Uniswap v2's exact
/// integer arithmetic. Buyers, in arrival order as the simulated chain orders them into blocks,
/// swap for exactly the slices they need with their bid as the limit; an order that cannot be
/// filled whole stays pending as a leftover order. Payment and delivery are one atomic swap, so a
/// buyer cannot take slices without paying: the default attack has nothing to act on.
enum RWAScheme {
    /// Base units per slice and per stablecoin unit (6 decimals each).
    static let unit: Double = 1_000_000

    static func run(_ market: Market, _ parameters: Parameters) -> Outcome {
        run(market, parameters, filled: { _ in })
    }

    /// As `run`, telling `filled` the index of each buyer whose order filled.
    static func run(_ market: Market, _ parameters: Parameters, filled: (Int) -> Void) -> Outcome {
        let offered = market.sellers.filter { !$0.withholds }
        var outcome = Outcome(slicesSold: 0, totalSlices: parameters.totalSlices, leftoverOrders: 0, defaultedTrades: 0)
        guard !offered.isEmpty else {
            outcome.leftoverOrders = market.buyers.count
            return outcome
        }
        let realSlices = offered.count * parameters.slicesPerLicence
        let virtualSlices = Int((Double(realSlices) * parameters.rwaVirtualDepth).rounded())
        // The sellers open the pool at their mean ask per slice.
        let openingPrice =
            offered.map(\.askPerSlice).reduce(0, +) / Double(offered.count) * parameters.rwaOpeningPriceFactor
        let poolSlices = UInt128(realSlices + virtualSlices) * UInt128(unit)
        let poolCash = UInt128((Double(realSlices + virtualSlices) * openingPrice * unit).rounded())
        var pool = Pool()
        do {
            _ = try pool.deposit(amount0: poolSlices, amount1: poolCash, timestampSeconds: 0)
        } catch {
            preconditionFailure(
                "the pool cannot open with \(poolSlices) slices and \(poolCash) cash: \(error) (parameters are validated)"
            )
        }
        let virtualFloor = UInt128(virtualSlices) * UInt128(unit)
        let want = UInt128(parameters.slicesPerBuyer) * UInt128(unit)
        var chain = SimulatedChain(parameters)
        for (index, buyer) in market.buyers.enumerated() {
            let timestamp = chain.include(arrivalSeconds: buyer.arrivalSeconds)
            guard pool.reserve0 >= virtualFloor + want else {
                outcome.leftoverOrders += 1  // not enough real slices left to fill it whole
                continue
            }
            let budget = UInt128((buyer.bidPerSlice * Double(parameters.slicesPerBuyer) * unit).rounded(.down))
            if (try? pool.swap(exactOut: want, .oneForZero, maximumIn: budget, timestampSeconds: timestamp)) != nil {
                outcome.slicesSold += parameters.slicesPerBuyer
                filled(index)
            } else {
                outcome.leftoverOrders += 1  // the price is above its bid: it waits, unfilled
            }
        }
        return outcome
    }
}

/// The chain of the paper's simulation: a block closes at `blockTransactions` transactions or
/// `blockSeconds` after it opened, whichever comes first. Transactions execute in block order;
/// the block's time is what the pool sees as its timestamp.
struct SimulatedChain {
    let transactionsMax: Int
    let seconds: Double
    var blockOpenedAt = 0.0
    var inBlock = 0

    init(_ parameters: Parameters) {
        transactionsMax = parameters.blockTransactions
        seconds = parameters.blockSeconds
    }

    /// Includes a transaction submitted at `arrivalSeconds`; returns its block's latest close time.
    mutating func include(arrivalSeconds: Double) -> UInt32 {
        if inBlock > 0 && (inBlock == transactionsMax || arrivalSeconds >= blockOpenedAt + seconds) {
            inBlock = 0  // the open block closes; this transaction opens the next
        }
        if inBlock == 0 { blockOpenedAt = arrivalSeconds }
        inBlock += 1
        return UInt32(min(blockOpenedAt + seconds, Double(UInt32.max)))
    }
}

/// The three baselines trade whole licences, the coarse granularity the paper contrasts with
/// tokenization: each seller offers its one licence at `ask per slice x slices per licence`, and
/// each buyer, which needs only `slicesPerBuyer` slices, bids `bid per slice x slicesPerBuyer`
/// for one licence. (The original papers were not available; what follows is exactly what is
/// implemented, described in the README.)
enum LicenceAuctions {
    struct Order {
        var index: Int
        var price: Double
    }

    static func orders(_ market: Market, _ parameters: Parameters) -> (bids: [Order], asks: [Order]) {
        let bids = market.buyers.indices.map {
            Order(index: $0, price: market.buyers[$0].bidPerSlice * Double(parameters.slicesPerBuyer))
        }
        .sorted { $0.price != $1.price ? $0.price > $1.price : $0.index < $1.index }
        let asks = market.sellers.indices.filter { !market.sellers[$0].withholds }
            .map { Order(index: $0, price: market.sellers[$0].askPerSlice * Double(parameters.slicesPerLicence)) }
            .sorted { $0.price != $1.price ? $0.price < $1.price : $0.index < $1.index }
        return (bids, asks)
    }

    /// Trades whose winner refuses to pay are voided (no escrow, no atomic settlement).
    static func settle(_ winners: ArraySlice<Order>, _ market: Market, _ parameters: Parameters, escrowed: Bool)
        -> Outcome
    {
        let defaulted = escrowed ? 0 : winners.filter { market.buyers[$0.index].defaults }.count
        return Outcome(
            slicesSold: (winners.count - defaulted) * parameters.slicesPerLicence, totalSlices: parameters.totalSlices,
            leftoverOrders: 0, defaultedTrades: defaulted)
    }

    /// MPRA: rank buyers by bid (descending) and sellers by ask (ascending), so the first pairs have
    /// the largest bid-ask spreads; find the uniform price by binary search where demand (bids at or
    /// above it) meets supply (asks at or below it); the top bidders and cheapest sellers trade.
    static func mpra(_ market: Market, _ parameters: Parameters) -> Outcome {
        let (bids, asks) = orders(market, parameters)
        guard let lowAsk = asks.first?.price, let highBid = bids.first?.price, highBid >= lowAsk else {
            return settle([], market, parameters, escrowed: false)
        }
        func demand(_ price: Double) -> Int { bids.prefix { $0.price >= price }.count }
        func supply(_ price: Double) -> Int { asks.prefix { $0.price <= price }.count }
        var low = lowAsk
        var high = highBid
        for _ in 0..<64 {  // smallest price where supply catches up with demand
            let middle = (low + high) / 2
            if supply(middle) >= demand(middle) { high = middle } else { low = middle }
        }
        let traded = max(min(demand(high), supply(high)), min(demand(low), supply(low)))
        return settle(bids.prefix(traded), market, parameters, escrowed: false)
    }

    /// TRA: McAfee's trade-reduction double auction, the truthful mechanism for one unit per agent.
    /// With k efficient pairs (k-th bid >= k-th ask), the price (b[k+1] + s[k+1]) / 2 clears all k if
    /// it lies within [s[k], b[k]]; otherwise the k-th pair is dropped so no one can gain by lying.
    static func tra(_ market: Market, _ parameters: Parameters) -> Outcome {
        let (bids, asks) = orders(market, parameters)
        var k = 0
        while k < min(bids.count, asks.count) && bids[k].price >= asks[k].price { k += 1 }
        guard k > 0 else { return settle([], market, parameters, escrowed: false) }
        var traded = k - 1
        if k < bids.count && k < asks.count {
            let price = (bids[k].price + asks[k].price) / 2
            if asks[k - 1].price <= price && price <= bids[k - 1].price { traded = k }
        }
        return settle(bids.prefix(traded), market, parameters, escrowed: false)
    }

    /// CPA: a padding double auction on a consortium chain. Each round pads the book with a virtual
    /// buyer and a virtual seller quoting a reference price r: every real buyer bidding at least r
    /// and every real seller asking at most r can trade at r, as many as the shorter side. Buyers'
    /// funds are escrowed before the round (so a winner cannot default), and unmatched buyers with
    /// their funds and unsold licences carry over: the next round's r is the midpoint of the best
    /// remaining bid and ask, while they still cross. The first r is the midpoint of the mean bid
    /// and the mean ask.
    static func cpa(_ market: Market, _ parameters: Parameters) -> Outcome {
        var (bids, asks) = orders(market, parameters)
        guard !bids.isEmpty, !asks.isEmpty else { return settle([], market, parameters, escrowed: true) }
        var reference =
            (bids.map(\.price).reduce(0, +) / Double(bids.count) + asks.map(\.price).reduce(0, +) / Double(asks.count))
            / 2
        var winners: [Order] = []
        for _ in 0..<max(1, parameters.cpaRounds) {
            let buying = bids.prefix { $0.price >= reference }.count
            let selling = asks.prefix { $0.price <= reference }.count
            let traded = min(buying, selling)
            winners += bids.prefix(traded)
            bids.removeFirst(traded)
            asks.removeFirst(traded)
            guard let bestBid = bids.first?.price, let bestAsk = asks.first?.price, bestBid >= bestAsk else { break }
            reference = (bestBid + bestAsk) / 2
        }
        return settle(winners[...], market, parameters, escrowed: true)
    }
}
