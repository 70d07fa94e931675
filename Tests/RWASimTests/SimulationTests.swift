// Goal: the case study's simulator is deterministic per seed and its mechanisms do what the
// README says: RWA sells whole orders through the real pool and cannot be defaulted on, the
// baselines trade whole licences, MPRA and TRA lose defaulted trades while CPA's escrow keeps them.
import Foundation
import RWASim
import XCTest

final class SimulationTests: XCTestCase {
    /// The committed CSV files in docs/figures were written by `rwa-sim` (Tools/plot/figures) in
    /// another process, maybe on another day: recomputing them here must give the same bytes.
    func testSameSeedsGiveByteIdenticalCSV() throws {
        let figures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/figures")
        XCTAssertEqual(
            csv(sweep(figure4Configurations(), seeds: 30)),
            try String(contentsOf: figures.appendingPathComponent("fig4.csv"), encoding: .utf8))
        XCTAssertEqual(
            csv(sweep(figure5Configurations(), seeds: 30)),
            try String(contentsOf: figures.appendingPathComponent("fig5.csv"), encoding: .utf8))
        var day = Parameters()
        day.buyers = 400
        XCTAssertEqual(
            csv(sweepDay(day, seeds: 30)),
            try String(contentsOf: figures.appendingPathComponent("day.csv"), encoding: .utf8))
    }

    func testTheSeedDecidesTheMarket() {
        let parameters = Parameters()
        XCTAssertNotEqual(simulate(.mpra, parameters, seed: 1), simulate(.mpra, parameters, seed: 2))
        XCTAssertNotEqual(
            Market(parameters, seed: 1).buyers.map(\.valuePerSlice),
            Market(parameters, seed: 2).buyers.map(\.valuePerSlice))
        // Changing the number of sellers leaves every buyer as it was.
        var fewer = parameters
        fewer.sellers = 50
        XCTAssertEqual(
            Market(parameters, seed: 1).buyers.map(\.valuePerSlice), Market(fewer, seed: 1).buyers.map(\.valuePerSlice))
    }

    func testRWASellsExactlyTheDemandWhileSupplyLasts() {
        var parameters = Parameters()
        for buyers in [100, 150, 200, 250] {
            parameters.buyers = buyers
            let outcome = simulate(.rwa, parameters, seed: 7)
            let demand = buyers * parameters.slicesPerBuyer
            XCTAssertEqual(outcome.slicesSold, min(demand, parameters.totalSlices), "\(buyers) buyers")
            XCTAssertEqual(outcome.leftoverOrders, max(0, buyers - parameters.totalSlices / parameters.slicesPerBuyer))
        }
    }

    func testRWAOrdersAboveTheirBidStayLeftover() {
        var parameters = Parameters()
        parameters.buyerValueMin = 0.1  // below the pool's opening price (the sellers' mean ask)
        parameters.buyerValueMax = 0.2
        let outcome = simulate(.rwa, parameters, seed: 1)
        XCTAssertEqual(outcome.slicesSold, 0)
        XCTAssertEqual(outcome.leftoverOrders, parameters.buyers)
    }

    func testDefaultIsImpossibleForRWAAndCPAAndVoidsMPRAAndTRATrades() {
        var parameters = Parameters()
        parameters.attack = .defaultAttack
        parameters.byzantineRatio = 0.3
        parameters.defaultProbability = 1
        var clean = parameters
        clean.byzantineRatio = 0
        for seed: UInt64 in 1...5 {
            XCTAssertEqual(
                simulate(.rwa, parameters, seed: seed).slicesSold, simulate(.rwa, clean, seed: seed).slicesSold)
            XCTAssertEqual(
                simulate(.cpa, parameters, seed: seed).slicesSold, simulate(.cpa, clean, seed: seed).slicesSold)
            for scheme in [Scheme.mpra, .tra] {
                let attacked = simulate(scheme, parameters, seed: seed)
                XCTAssertGreaterThan(attacked.defaultedTrades, 0, "\(scheme)")
                XCTAssertEqual(
                    attacked.slicesSold + attacked.defaultedTrades * parameters.slicesPerLicence,
                    simulate(scheme, clean, seed: seed).slicesSold, "\(scheme): the same trades, defaulted ones voided")
            }
        }
    }

    func testBaselinesTradeWholeLicencesAndTRANeverBeatsMPRA() {
        let parameters = Parameters()
        for seed: UInt64 in 1...10 {
            let mpra = simulate(.mpra, parameters, seed: seed)
            let tra = simulate(.tra, parameters, seed: seed)
            XCTAssertLessThanOrEqual(
                tra.slicesSold, mpra.slicesSold, "trade reduction gives up at most the marginal pair")
            XCTAssertGreaterThanOrEqual(tra.slicesSold, mpra.slicesSold - parameters.slicesPerLicence)
        }
    }

    func testConfidenceInterval() {
        let estimate = Estimate([1, 2, 3, 4])
        XCTAssertEqual(estimate.mean, 2.5)
        // s = 1.291, t(0.975, 3) = 3.182: half-width 3.182 * 1.291 / 2.
        XCTAssertEqual(estimate.halfWidth, 3.182 * (5.0 / 3).squareRoot() / 2, accuracy: 1e-9)
    }
}

final class DayTests: XCTestCase {
    func testLeasingServesBuyersPurchaseCannotAndNeverOverbooksAnHour() {
        var parameters = Parameters()
        parameters.buyers = 400
        for seed: UInt64 in 1...5 {
            let purchase = simulateDay(.purchase, parameters, seed: seed)
            let lease = simulateDay(.lease, parameters, seed: seed)
            XCTAssertEqual(
                purchase.servedBuyers, parameters.totalSlices / parameters.slicesPerBuyer,
                "purchase sells out at 200 buyers")
            XCTAssertGreaterThan(lease.servedBuyers, purchase.servedBuyers)
            XCTAssertGreaterThan(lease.dailyUtilization, purchase.dailyUtilization)
            XCTAssertTrue(lease.utilizationByHour.allSatisfy { $0 <= 1 }, "no hour leases more slices than exist")
        }
    }

    func testWhenEveryoneNeedsTheWholeDayLeasingIsPurchase() {
        var parameters = Parameters()
        parameters.buyers = 300  // more than the supply can serve
        parameters.usageHoursMin = 24
        parameters.usageHoursMax = 24
        let lease = simulateDay(.lease, parameters, seed: 3)
        let purchase = simulateDay(.purchase, parameters, seed: 3)
        XCTAssertEqual(purchase.servedBuyers, 200)
        XCTAssertEqual(lease.servedBuyers, 200, "whole-day leases leave nothing to share")
        XCTAssertEqual(lease.utilizationByHour, [Double](repeating: 1, count: 24))
        XCTAssertEqual(purchase.utilizationByHour, lease.utilizationByHour)
    }
}
