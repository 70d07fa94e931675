// Tools/bench/sim: the whole default fig4 and fig5 (30 seeds each), wall time, release build:
//
//     swift run -c release bench-sim
//
// The last line is one JSON object.
import Foundation
import RWASim

func seconds(_ body: () -> Void) -> Double {
    let start = ContinuousClock.now
    body()
    return (ContinuousClock.now - start) / .seconds(1)
}

var fig4Rows = 0
var fig5Rows = 0
let fig4 = seconds { fig4Rows = sweep(figure4Configurations(), seeds: 30).count }
let fig5 = seconds { fig5Rows = sweep(figure5Configurations(), seeds: 30).count }
print(String(format: "fig4: %d rows in %.3f s; fig5: %d rows in %.3f s", fig4Rows, fig4, fig5Rows, fig5))
print(String(format: #"{"bench":"sim","fig4_s":%.3f,"fig5_s":%.3f,"total_s":%.3f}"#, fig4, fig5, fig4 + fig5))
