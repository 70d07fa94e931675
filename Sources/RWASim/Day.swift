/// Beyond the paper: the leasing mode over a day. Buyers need their slices only for some hours
/// (`usageHoursMin...usageHoursMax`). In purchase mode (RWA through the pool) a buyer owns its
/// slices all day and uses them only in its hours, and buyers beyond the supply get nothing. In
/// leasing mode lessors rent slices by the hour through channels (one channel per lease, paid
/// hour by hour, so a defaulting lessee gains at most one hour): a buyer leases its slices for its
/// hours only, at the lessor's ask per slice spread over 24 hours (so it can afford a lessor when
/// that ask is at most its bid per slice, as in purchase). In every one of its hours there must be
/// room for all its slices among the lessors it can afford, first come first served, or the order
/// is left over; each hour is filled from the cheapest of them. Utilization per hour = slices in use / total slices.
public struct DayProfile: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable { case purchase, lease }
    /// Per hour 0...23: slices in use over total slices.
    public var utilizationByHour: [Double]
    public var servedBuyers: Int

    public var dailyUtilization: Double { utilizationByHour.reduce(0, +) / 24 }
}

public func simulateDay(_ mode: DayProfile.Mode, _ parameters: Parameters, seed: UInt64) -> DayProfile {
    let market = Market(parameters, seed: seed)
    var inUse = [Int](repeating: 0, count: 24)
    var served = 0
    switch mode {
    case .purchase:
        _ = RWAScheme.run(market, parameters) { index in
            served += 1
            let buyer = market.buyers[index]
            for hour in buyer.usageHours { inUse[hour] += parameters.slicesPerBuyer }
        }
    case .lease:
        // Free slices per lessor and hour; lessors sorted by ask, cheapest first.
        let lessors = market.sellers.indices.filter { !market.sellers[$0].withholds }
            .sorted { market.sellers[$0].askPerSlice < market.sellers[$1].askPerSlice }
        var free = [[Int]](repeating: [Int](repeating: parameters.slicesPerLicence, count: 24), count: lessors.count)
        let buyers = market.buyers.indices.sorted {
            market.buyers[$0].arrivalSeconds < market.buyers[$1].arrivalSeconds
        }
        for index in buyers {
            let buyer = market.buyers[index]
            let hours = buyer.usageHours
            let affordable = lessors.indices.filter { market.sellers[lessors[$0]].askPerSlice <= buyer.bidPerSlice }
            // All or nothing: every hour must have room among the lessors it can afford.
            guard
                hours.allSatisfy({ hour in affordable.reduce(0) { $0 + free[$1][hour] } >= parameters.slicesPerBuyer })
            else {
                continue
            }
            for hour in hours {
                var needed = parameters.slicesPerBuyer
                for lessor in affordable where needed > 0 {
                    let taken = min(needed, free[lessor][hour])
                    free[lessor][hour] -= taken
                    needed -= taken
                }
                inUse[hour] += parameters.slicesPerBuyer
            }
            served += 1
        }
    }
    let total = Double(parameters.totalSlices)
    return DayProfile(utilizationByHour: inUse.map { total == 0 ? 0 : Double($0) / total }, servedBuyers: served)
}

/// One hour of a day sweep: the mode's mean utilization in that hour over the seeds.
public struct DayRow: Sendable, Equatable {
    public var mode: DayProfile.Mode
    public var hour: Int
    public var utilization: Estimate
    public var servedBuyers: Double

    public static let csvHeader = "mode,hour,utilization_mean,utilization_ci95,seeds,served_buyers_mean"

    /// Fixed formatting, so the same seeds give byte-identical files.
    public var csvLine: String {
        [
            mode.rawValue, String(hour), String(format: "%.6f", utilization.mean),
            String(format: "%.6f", utilization.halfWidth),
            String(utilization.samples), String(format: "%.3f", servedBuyers),
        ].joined(separator: ",")
    }
}

public func sweepDay(_ parameters: Parameters, seeds: Int) -> [DayRow] {
    precondition(seeds >= 1, "a sweep needs at least one seed")
    return DayProfile.Mode.allCases.flatMap { mode -> [DayRow] in
        let profiles = (1...UInt64(seeds)).map { simulateDay(mode, parameters, seed: $0) }
        let served = Double(profiles.map(\.servedBuyers).reduce(0, +)) / Double(seeds)
        return (0..<24).map { hour in
            DayRow(
                mode: mode, hour: hour, utilization: Estimate(profiles.map { $0.utilizationByHour[hour] }),
                servedBuyers: served)
        }
    }
}
