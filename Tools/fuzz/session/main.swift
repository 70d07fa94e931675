// fuzz-session: libFuzzer's entry point for `SessionChecks` (Tools/fuzz/Checks). Built with -DFUZZING by
// Tools/fuzz/run; an ordinary build replays the files it is given instead.
import RWAFuzzChecks

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    SessionChecks.check(Array(UnsafeBufferPointer(start: data, count: count)))
    return 0
}

#if !FUZZING
runFiles(SessionChecks.check)
#endif
