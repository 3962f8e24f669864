// libFuzzer entry point for the XDR and RPC decoders (see docs/FUZZING.md). Built with
// `-DFUZZING` under `swift build --sanitize fuzzer`, libFuzzer supplies `main`. In a normal
// build this is a replay tool: `rpcfuzz FILE...` runs the fuzz body over each file, which is
// how crashers are reproduced.

@_spi(Fuzzing) import ONCRPC

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    DecoderFuzzing.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#endif
