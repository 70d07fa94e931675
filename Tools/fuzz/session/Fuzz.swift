// fuzz-session: libFuzzer's entry point for `SessionChecks` (Tools/fuzz/Checks), built with -DFUZZING by
// Tools/fuzz/run. An ordinary build replays the files it is given instead (no main.swift, so the
// fuzzing build, which links libFuzzer's main, has none of its own).
import RWAFuzzChecks

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    SessionChecks.check(Array(UnsafeBufferPointer(start: data, count: count)))
    return 0
}

#if !FUZZING
    @main
    enum Replay {
        static func main() { runFiles(SessionChecks.check) }
    }
#endif
